import json

import numpy as np
import PIL.Image
import pytest
import torch

from hf_dualmcmc import (
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    DualMCMCPipelineOutput,
    configs_for_image_size,
)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_sampling_outputs(tiny_pipeline):
    out = tiny_pipeline(batch_size=3, generator=seeded(), output_type="np", return_proposals=True, return_energies=True)
    assert isinstance(out, DualMCMCPipelineOutput)
    assert out.images.shape == (3, 16, 16, 3) and out.proposals.shape == (3, 16, 16, 3)
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert out.energies.shape == (5, 3)  # default 4 steps from the config, plus the initial state
    assert out.latents.shape == (3, 8)
    assert not np.array_equal(out.images, out.proposals)
    pil = tiny_pipeline(batch_size=2, generator=seeded()).images
    assert len(pil) == 2 and isinstance(pil[0], PIL.Image.Image) and pil[0].size == (16, 16)
    pt = tiny_pipeline(batch_size=2, generator=seeded(), output_type="pt").images
    assert pt.shape == (2, 3, 16, 16)
    images, proposals, energies = tiny_pipeline(batch_size=2, generator=seeded(), return_dict=False)
    assert proposals is None and energies is None and len(images) == 2


def test_zero_steps_returns_proposals_and_seed_forms(tiny_pipeline):
    out = tiny_pipeline(batch_size=2, num_inference_steps=0, generator=7, output_type="pt", return_proposals=True)
    assert torch.equal(out.images, out.proposals)
    again = tiny_pipeline(batch_size=2, num_inference_steps=0, generator=seeded(7), output_type="pt")
    assert torch.equal(out.images, again.images)
    listed = tiny_pipeline(batch_size=2, generator=[seeded(1), seeded(2)], output_type="pt").images
    listed_again = tiny_pipeline(batch_size=2, generator=[1, 2], output_type="pt").images
    assert torch.equal(listed, listed_again)


def test_latents_and_step_overrides(tiny_pipeline):
    z = torch.randn(2, 8)
    a = tiny_pipeline(latents=z, num_inference_steps=3, step_size=0.2, noise_scale=0.0, output_type="pt")
    b = tiny_pipeline(latents=z.view(2, 8, 1, 1), num_inference_steps=3, step_size=0.2, noise_scale=0.0, output_type="pt")
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.latents, z)


def test_bn_stats_choice_changes_samples(tiny_pipeline):
    with torch.no_grad():  # give the generator non-trivial running statistics
        tiny_pipeline.generator_model.train()(torch.randn(16, 8) * 3)
    batch = tiny_pipeline(batch_size=4, generator=seeded(), output_type="pt", num_inference_steps=0).images
    running = tiny_pipeline(batch_size=4, generator=seeded(), output_type="pt", num_inference_steps=0, bn_stats="running").images
    assert not torch.allclose(batch, running)
    state = {k: v.clone() for k, v in tiny_pipeline.generator_model.state_dict().items()}
    tiny_pipeline(batch_size=4, generator=seeded(), output_type="pt")
    assert all(torch.equal(v, tiny_pipeline.generator_model.state_dict()[k]) for k, v in state.items())


def test_save_load_roundtrip_is_bit_identical(tiny_pipeline, tmp_path):
    tiny_pipeline.register_to_config(step_size=0.3, num_inference_steps=6)
    tiny_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["num_inference_steps"] == 6 and index["step_size"] == 0.3 and index["noise_scale"] == 0.001
    assert index["_class_name"] == "DualMCMCPipeline"
    loaded = DualMCMCPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.num_inference_steps == 6 and loaded.config.step_size == 0.3
    kwargs = dict(batch_size=4, output_type="pt", return_energies=True)
    a = tiny_pipeline(generator=seeded(5), **kwargs)
    b = loaded(generator=seeded(5), **kwargs)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.energies, b.energies)
    ra = tiny_pipeline.reconstruct(pixel_values=a.images * 2 - 1, generator=seeded(1), output_type="pt")
    rb = loaded.reconstruct(pixel_values=a.images * 2 - 1, generator=seeded(1), output_type="pt")
    assert torch.equal(ra.images, rb.images)
    assert hasattr(loaded, "push_to_hub")


def test_pipeline_without_encoder_roundtrip(tiny_configs, tmp_path):
    e, g, _ = tiny_configs
    pipe = DualMCMCPipeline(DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g))
    pipe.save_pretrained(tmp_path)
    loaded = DualMCMCPipeline.from_pretrained(tmp_path)
    assert loaded.encoder is None
    with pytest.raises(ValueError, match="needs `encoder`"):
        loaded.reconstruct(pixel_values=torch.zeros(1, 3, 16, 16))


def test_reconstruct(tiny_pipeline):
    x = tiny_pipeline(batch_size=4, generator=seeded(), output_type="pt").images  # [0, 1]
    # an untrained generator is steep in z: a small latent step keeps the chain in its stable regime
    tiny_pipeline.register_to_config(latent_step_size=0.01, latent_noise_scale=0.01)
    out = tiny_pipeline.reconstruct(images=x, num_latent_steps=5, generator=seeded(), output_type="pt",
                                    return_proposals=True, return_energies=True)
    assert out.images.shape == (4, 3, 16, 16) and out.proposals.shape == (4, 3, 16, 16)
    assert out.latents.shape == (4, 8)
    assert out.energies.shape == (6, 4)
    assert out.energies[-1].mean() < out.energies[0].mean()  # the z-chain descends the posterior potential
    # the same images given as numpy, uint8, PIL and model-space tensors give the same reconstructions
    ref = tiny_pipeline.reconstruct(images=x, num_latent_steps=2, generator=seeded(), output_type="pt").images
    as_np = x.permute(0, 2, 3, 1).numpy()
    via_np = tiny_pipeline.reconstruct(images=as_np, num_latent_steps=2, generator=seeded(), output_type="pt").images
    via_pv = tiny_pipeline.reconstruct(pixel_values=x * 2 - 1, num_latent_steps=2, generator=seeded(), output_type="pt").images
    assert torch.allclose(ref, via_np, atol=1e-6) and torch.allclose(ref, via_pv, atol=1e-6)
    pils = tiny_pipeline.numpy_to_pil(as_np)
    via_pil = tiny_pipeline.reconstruct(images=pils, num_latent_steps=0, output_type="np", sample_posterior=False)
    assert via_pil.images.shape == (4, 16, 16, 3)


def test_interpolate(tiny_pipeline):
    out = tiny_pipeline(batch_size=2, generator=seeded(), output_type="np")
    grid = tiny_pipeline.interpolate(out.images[0], out.images[1], num_points=5, output_type="pt")
    assert grid.images.shape == (5, 3, 16, 16)
    za, zb = torch.randn(8), torch.randn(8)
    lat = tiny_pipeline.interpolate(start_latents=za, end_latents=zb, num_points=4, num_inference_steps=0, output_type="pt")
    assert torch.allclose(lat.latents[0], za) and torch.allclose(lat.latents[-1], zb)
    assert torch.allclose(lat.latents[1], za + (zb - za) / 3, atol=1e-6)
    with pytest.raises(ValueError, match="num_points must be an integer >= 2"):
        tiny_pipeline.interpolate(start_latents=za, end_latents=zb, num_points=1)
    with pytest.raises(ValueError, match="give both endpoints"):
        tiny_pipeline.interpolate(start_latents=za)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(batch_size=-2), "batch_size must be an integer >= 1"),
        (dict(num_inference_steps=-1), "revision steps must be an integer >= 0, got -1"),
        (dict(step_size=-0.1), "step size must be >= 0"),
        (dict(noise_scale=-1.0), "noise scale must be >= 0"),
        (dict(output_type="latent"), "output_type must be one of \\('pil', 'np', 'pt'\\)"),
        (dict(bn_stats="eval"), "bn_stats must be one of \\('batch', 'running'\\)"),
        (dict(latents=torch.zeros(2, 5)), "latents must have shape \\[batch, 8\\]"),
        (dict(batch_size=3, generator=[seeded(), seeded()]), "one per sample: expected 3, got 2"),
    ],
)
def test_call_bad_input(tiny_pipeline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(images=torch.rand(2, 3, 32, 32)), "expects \\(3, 16, 16\\)"),
        (dict(images=torch.rand(2, 1, 16, 16)), "expects \\(3, 16, 16\\)"),
        (dict(images=np.random.rand(2, 16, 16, 4).astype(np.float32)), "expects \\(3, 16, 16\\)"),
        (dict(images=torch.rand(2, 3, 16, 16) * 2 - 1), "images values must lie in \\[0, 1\\]"),
        (dict(images=np.full((1, 16, 16, 3), 2.0, np.float32)), "images values must lie in \\[0, 1\\]"),
        (dict(pixel_values=torch.rand(2, 3, 16, 16) * 3), "pixel_values values must lie in \\[-1, 1\\]"),
        (dict(pixel_values=torch.full((1, 3, 16, 16), float("nan"))), "must lie in \\[-1, 1\\]"),
        (dict(images=[PIL.Image.new("RGB", (32, 32))]), "expects \\(3, 16, 16\\)"),
        (dict(images="cat.png"), "images must be PIL image\\(s\\), a numpy array or a torch tensor"),
        (dict(), "pass exactly one of `images`"),
        (dict(num_latent_steps=-3, images=torch.rand(1, 3, 16, 16)), "integer >= 0, got -3"),
    ],
)
def test_reconstruct_bad_input(tiny_pipeline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline.reconstruct(**kwargs)


def test_mismatched_components_rejected():
    e16, g16, i16 = configs_for_image_size(16, 3, latent_dim=8, ngf=16, ndf=16, nif=8)
    e32, _, _ = configs_for_image_size(32, 3, latent_dim=8, ngf=16, ndf=16, nif=8)
    e1, _, i1 = configs_for_image_size(16, 1, latent_dim=8, ngf=16, ndf=16, nif=8)
    _, _, i_lat = configs_for_image_size(16, 3, latent_dim=4, ngf=16, ndf=16, nif=8)
    G = DualMCMCGeneratorModel(g16)
    with pytest.raises(ValueError, match="3x16x16 images but energy_model expects 3x32x32"):
        DualMCMCPipeline(DualMCMCEnergyModel(e32), G)
    with pytest.raises(ValueError, match="energy_model expects 1x16x16"):
        DualMCMCPipeline(DualMCMCEnergyModel(e1), G)
    with pytest.raises(ValueError, match="encoder expects 1x16x16"):
        DualMCMCPipeline(DualMCMCEnergyModel(e16), G, DualMCMCEncoderModel(i1))
    with pytest.raises(ValueError, match="encoder latent_dim 4 != generator_model latent_dim 8"):
        DualMCMCPipeline(DualMCMCEnergyModel(e16), G, DualMCMCEncoderModel(i_lat))
    with pytest.raises(ValueError, match="energy_model must be a DualMCMCEnergyModel"):
        DualMCMCPipeline(G, G)
    with pytest.raises(ValueError, match="revision steps must be an integer >= 0"):
        DualMCMCPipeline(DualMCMCEnergyModel(e16), G, num_inference_steps=-5)


def test_grayscale_pipeline_pil_output():
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=4)
    pipe = DualMCMCPipeline(DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=2, generator=seeded()).images
    assert images[0].mode == "L" and images[0].size == (8, 8)
    recon = pipe.reconstruct(images=images, num_latent_steps=1, output_type="np")
    assert recon.images.shape == (2, 8, 8, 1)

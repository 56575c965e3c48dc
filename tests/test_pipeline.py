import json
import subprocess
import sys

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
    energy_langevin,
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
    # return_dict=False: (images,) as diffusers, extended by the requested proposals and energies, in that order
    (images,) = tiny_pipeline(batch_size=2, generator=seeded(), return_dict=False)
    assert len(images) == 2 and isinstance(images[0], PIL.Image.Image)
    images, energies = tiny_pipeline(batch_size=2, generator=seeded(), return_dict=False, return_energies=True)
    assert energies.shape == (5, 2)
    images, proposals, energies = tiny_pipeline(
        batch_size=2,
        generator=seeded(),
        output_type="pt",
        return_dict=False,
        return_proposals=True,
        return_energies=True,
    )
    assert images.shape == proposals.shape == (2, 3, 16, 16) and energies.shape == (5, 2)
    assert torch.equal(images, pt)


def test_latent_output_is_the_unclamped_chain_state(tiny_pipeline):
    kwargs = dict(batch_size=3, generator=2, num_inference_steps=3, step_size=3.0, return_proposals=True)
    latent = tiny_pipeline(output_type="latent", **kwargs)
    pt = tiny_pipeline(output_type="pt", **kwargs)
    assert latent.images.dtype == torch.float32 and latent.images.shape == (3, 3, 16, 16)
    assert latent.images.abs().max() > 1  # a large step leaves [-1, 1]: "latent" does not clamp
    assert torch.equal((latent.images / 2 + 0.5).clamp(0, 1), pt.images)
    assert torch.equal((latent.proposals / 2 + 0.5).clamp(0, 1), pt.proposals)
    recon = tiny_pipeline.reconstruct(
        pixel_values=latent.proposals, num_latent_steps=1, generator=1, output_type="latent"
    )
    assert recon.images.shape == (3, 3, 16, 16) and recon.images.min() < 0  # model space


def test_zero_steps_returns_proposals_and_seed_forms(tiny_pipeline):
    out = tiny_pipeline(batch_size=2, num_inference_steps=0, generator=7, output_type="pt", return_proposals=True)
    assert torch.equal(out.images, out.proposals)
    again = tiny_pipeline(batch_size=2, num_inference_steps=0, generator=seeded(7), output_type="pt")
    assert torch.equal(out.images, again.images)
    listed = tiny_pipeline(batch_size=2, generator=[seeded(1), seeded(2)], output_type="pt").images
    listed_again = tiny_pipeline(batch_size=2, generator=[1, 2], output_type="pt").images
    assert torch.equal(listed, listed_again)
    # numpy integers are integers: batch size, steps and seeds
    as_numpy = tiny_pipeline(
        batch_size=np.int64(2), num_inference_steps=np.int32(4), generator=[np.int64(1), 2], output_type="pt"
    ).images
    assert torch.equal(as_numpy, listed)


def test_sampler_settings_default_to_the_official_sampler_and_are_checked_by_name(tiny_pipeline):
    from hf_dualmcmc.configuration_dualmcmc import OFFICIAL_SAMPLER
    from hf_dualmcmc.pipeline_dualmcmc import check_sampler_settings

    defaults = check_sampler_settings()
    assert defaults == {**OFFICIAL_SAMPLER, "proposal": "generator", "noise_init_range": 1.0}
    assert list(defaults) == list(OFFICIAL_SAMPLER) + ["proposal", "noise_init_range"]
    pipe = DualMCMCPipeline(tiny_pipeline.energy_model, tiny_pipeline.generator_model)
    assert {k: pipe.config[k] for k in defaults} == defaults
    got = check_sampler_settings(num_inference_steps=np.int64(5), step_size=1, noise_scale=None, bn_stats="running")
    assert got == {**defaults, "num_inference_steps": 5, "step_size": 1.0, "bn_stats": "running"}
    assert type(got["num_inference_steps"]) is int and type(got["step_size"]) is float
    for bad, message in [
        (dict(latent_step_size=0.0), "latent_step_size must be a finite number > 0, got 0.0"),
        (dict(latent_noise_scale=float("nan")), "latent_noise_scale must be a finite number >= 0, got nan"),
        (dict(num_latent_steps=1.5), "num_latent_steps must be an integer >= 0, got 1.5"),
        (dict(proposal="data"), r"proposal must be one of \('generator', 'noise'\), got 'data'"),
        (dict(num_revision_steps=5), r"unknown sampler setting\(s\) \['num_revision_steps'\]: expected some of"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_sampler_settings(**bad)
    with pytest.raises(ValueError, match="noise_init_range must be a finite number > 0, got -1"):
        DualMCMCPipeline(tiny_pipeline.energy_model, tiny_pipeline.generator_model, noise_init_range=-1)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0, got inf"):
        tiny_pipeline(step_size=float("inf"))


def test_callback_on_step_end_replaces_the_chain_state(tiny_pipeline):
    seen = []

    def reset_after_step_1(pipe, step, timestep, callback_kwargs):
        assert pipe is tiny_pipeline and step == timestep and set(callback_kwargs) == {"sample"}
        seen.append(callback_kwargs["sample"].clone())
        return {"sample": torch.zeros_like(callback_kwargs["sample"])} if step == 1 else callback_kwargs

    kwargs = dict(
        batch_size=2, num_inference_steps=4, step_size=0.5, noise_scale=0.0, output_type="latent", return_energies=True
    )
    out = tiny_pipeline(generator=seeded(3), callback_on_step_end=reset_after_step_1, **kwargs)
    assert len(seen) == 4 and seen[1].abs().sum() > 0 and torch.equal(seen[3], out.images)
    # the chain went on from the replaced state: steps 2 and 3 are two descent steps from the zero image
    energy = tiny_pipeline.energy_model.eval()
    expected = energy_langevin(energy, torch.zeros(2, 3, 16, 16), 2, 0.5, 0.0, return_energies=True)
    assert torch.allclose(out.images, expected.sample, atol=1e-6)
    assert torch.allclose(out.energies[2:], expected.energies, atol=1e-5)
    untouched = tiny_pipeline(generator=seeded(3), **kwargs)
    assert torch.equal(untouched.energies[:2], out.energies[:2]) and not torch.allclose(untouched.images, out.images)
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs must be in \['sample'\]"):
        tiny_pipeline(callback_on_step_end=reset_after_step_1, callback_on_step_end_tensor_inputs=["latents"])
    with pytest.raises(ValueError, match="callback_on_step_end must return a dict, got Tensor"):
        tiny_pipeline(callback_on_step_end=lambda p, i, t, kw: kw["sample"])


def test_pipeline_callback_objects_work(tiny_pipeline):
    from diffusers.callbacks import PipelineCallback

    class Halve(PipelineCallback):
        tensor_inputs = ["sample"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            return {"sample": callback_kwargs["sample"] / 2}

    kwargs = dict(batch_size=2, num_inference_steps=1, generator=1, output_type="latent", return_proposals=True)
    halved = tiny_pipeline(callback_on_step_end=Halve(), **kwargs)
    plain = tiny_pipeline(**kwargs)
    assert torch.allclose(halved.images, plain.images / 2)


def test_latents_and_step_overrides(tiny_pipeline):
    z = torch.randn(2, 8)
    a = tiny_pipeline(latents=z, num_inference_steps=3, step_size=0.2, noise_scale=0.0, output_type="pt")
    b = tiny_pipeline(
        latents=z.view(2, 8, 1, 1), num_inference_steps=3, step_size=0.2, noise_scale=0.0, output_type="pt"
    )
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.latents, z)


def test_bn_stats_choice_changes_samples(tiny_pipeline):
    with torch.no_grad():  # give the generator non-trivial running statistics
        tiny_pipeline.generator_model.train()(torch.randn(16, 8) * 3)
    batch = tiny_pipeline(batch_size=4, generator=seeded(), output_type="pt", num_inference_steps=0).images
    running = tiny_pipeline(
        batch_size=4, generator=seeded(), output_type="pt", num_inference_steps=0, bn_stats="running"
    ).images
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
    out = tiny_pipeline.reconstruct(
        images=x, num_latent_steps=5, generator=seeded(), output_type="pt", return_proposals=True, return_energies=True
    )
    assert out.images.shape == (4, 3, 16, 16) and out.proposals.shape == (4, 3, 16, 16)
    assert out.latents.shape == (4, 8)
    assert out.energies.shape == (6, 4)
    assert out.energies[-1].mean() < out.energies[0].mean()  # the z-chain descends the posterior potential
    # the same images given as numpy, uint8, PIL and model-space tensors give the same reconstructions
    ref = tiny_pipeline.reconstruct(images=x, num_latent_steps=2, generator=seeded(), output_type="pt").images
    as_np = x.permute(0, 2, 3, 1).numpy()
    via_np = tiny_pipeline.reconstruct(images=as_np, num_latent_steps=2, generator=seeded(), output_type="pt").images
    via_pv = tiny_pipeline.reconstruct(
        pixel_values=x * 2 - 1, num_latent_steps=2, generator=seeded(), output_type="pt"
    ).images
    assert torch.equal(ref, via_np) and torch.equal(ref, via_pv)  # one memory layout, whatever the format
    pils = tiny_pipeline.numpy_to_pil(as_np)
    via_pil = tiny_pipeline.reconstruct(images=pils, num_latent_steps=0, output_type="np", sample_posterior=False)
    assert via_pil.images.shape == (4, 16, 16, 3)


def test_interpolate(tiny_pipeline):
    out = tiny_pipeline(batch_size=2, generator=seeded(), output_type="np")
    grid = tiny_pipeline.interpolate(out.images[0], out.images[1], num_points=5, output_type="pt")
    assert grid.images.shape == (5, 3, 16, 16)
    za, zb = torch.randn(8), torch.randn(8)
    lat = tiny_pipeline.interpolate(
        start_latents=za, end_latents=zb, num_points=4, num_inference_steps=0, output_type="pt"
    )
    assert torch.allclose(lat.latents[0], za) and torch.allclose(lat.latents[-1], zb)
    assert torch.allclose(lat.latents[1], za + (zb - za) / 3, atol=1e-6)
    with pytest.raises(ValueError, match="one start and one end image or latent vector, got 3"):
        tiny_pipeline.interpolate(out.images[:2], out.images[1], num_points=3)


def test_zero_steps_and_zero_noise_are_allowed(tiny_pipeline):
    out = tiny_pipeline(
        batch_size=2,
        num_inference_steps=0,
        noise_scale=0.0,
        generator=1,
        output_type="pt",
        return_proposals=True,
        return_energies=True,
    )
    assert torch.equal(out.images, out.proposals) and out.energies.shape == (1, 2)


def test_numpy_settings_and_noise_pipeline_latents(tiny_configs):
    # the table of refused settings is in tests/test_bad_inputs.py
    e, g, _ = tiny_configs
    E, G = DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g)
    pipe = DualMCMCPipeline(E, G, num_inference_steps=np.int64(3), step_size=np.float32(0.5))
    assert type(pipe.config.num_inference_steps) is int and type(pipe.config.step_size) is float
    noise = DualMCMCPipeline(E, None, proposal="noise")
    with pytest.raises(ValueError, match="latents must be a torch.Tensor .* got Tensor .with proposal='noise'."):
        noise(latents=torch.zeros(1, 8))


def test_mismatched_components_rejected():
    e16, g16, i16 = configs_for_image_size(16, 3, latent_dim=8, ngf=16, ndf=16, nif=8)
    e32, _, _ = configs_for_image_size(32, 3, latent_dim=8, ngf=16, ndf=16, nif=8)
    e1, _, i1 = configs_for_image_size(16, 1, latent_dim=8, ngf=16, ndf=16, nif=8)
    _, _, i_lat = configs_for_image_size(16, 3, latent_dim=4, ngf=16, ndf=16, nif=8)
    G = DualMCMCGeneratorModel(g16)
    disagree = r"the components disagree on \(num_channels, image_size\): \{'generator_model': \(3, 16\), "
    with pytest.raises(ValueError, match=disagree + r"'energy_model': \(3, 32\)\}"):
        DualMCMCPipeline(DualMCMCEnergyModel(e32), G)
    with pytest.raises(ValueError, match=disagree + r"'energy_model': \(1, 16\)\}"):
        DualMCMCPipeline(DualMCMCEnergyModel(e1), G)
    with pytest.raises(ValueError, match=disagree + r"'energy_model': \(3, 16\), 'encoder': \(1, 16\)\}"):
        DualMCMCPipeline(DualMCMCEnergyModel(e16), G, DualMCMCEncoderModel(i1))
    with pytest.raises(ValueError, match="encoder latent_dim 4 != generator_model latent_dim 8"):
        DualMCMCPipeline(DualMCMCEnergyModel(e16), G, DualMCMCEncoderModel(i_lat))
    with pytest.raises(ValueError, match="energy_model must be a DualMCMCEnergyModel"):
        DualMCMCPipeline(G, G)
    with pytest.raises(ValueError, match="num_inference_steps must be an integer >= 0"):
        DualMCMCPipeline(DualMCMCEnergyModel(e16), G, num_inference_steps=-5)
    with pytest.raises(ValueError, match="an encoder needs generator_model"):
        DualMCMCPipeline(DualMCMCEnergyModel(e16), None, DualMCMCEncoderModel(i16), proposal="noise")


def test_per_sample_reproducible_mode(tiny_pipeline):
    with torch.no_grad():  # non-trivial running statistics
        tiny_pipeline.generator_model.train()(torch.randn(16, 8) * 3)
    kwargs = dict(num_inference_steps=3, output_type="latent", return_proposals=True)
    alone = tiny_pipeline(generator=[12], bn_stats="running", **kwargs)
    for seeds in ([12, 5], [7, 12, 9]):
        batch = tiny_pipeline(batch_size=len(seeds), generator=seeds, bn_stats="running", **kwargs)
        i = seeds.index(12)
        assert torch.equal(batch.latents[i], alone.latents[0])
        # equal up to float rounding (convolutions may sum in a batch-size-dependent order)
        assert torch.allclose(batch.proposals[i], alone.proposals[0], atol=1e-5)
        assert torch.allclose(batch.images[i], alone.images[0], atol=1e-5)
    # with batch statistics (the default) the same seed gives a different sample in another batch
    in_two = tiny_pipeline(batch_size=2, generator=[12, 5], bn_stats="batch", **kwargs)
    in_three = tiny_pipeline(batch_size=3, generator=[7, 12, 9], bn_stats="batch", **kwargs)
    assert (in_two.images[0] - in_three.images[1]).abs().max() > 0.01


def _saved(tiny_pipeline, path):
    tiny_pipeline.save_pretrained(path)
    return path


def test_diffusion_pipeline_from_pretrained_finds_the_class(tiny_pipeline, tmp_path):
    from diffusers import DiffusionPipeline

    saved = _saved(tiny_pipeline, tmp_path / "pipe")
    loaded = DiffusionPipeline.from_pretrained(saved)
    assert type(loaded) is DualMCMCPipeline and loaded.config.num_inference_steps == 4
    loaded.set_progress_bar_config(disable=True)
    kwargs = dict(batch_size=2, generator=3, output_type="pt")
    assert torch.equal(loaded(**kwargs).images, tiny_pipeline(**kwargs).images)
    # in a clean interpreter: `import hf_dualmcmc` is all it takes
    code = (
        "import sys, hf_dualmcmc\nfrom diffusers import DiffusionPipeline\n"
        "pipe = DiffusionPipeline.from_pretrained(sys.argv[1])\nprint(type(pipe).__module__, type(pipe).__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["hf_dualmcmc.pipeline_dualmcmc", "DualMCMCPipeline"]


def test_grayscale_pipeline_pil_output():
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=4)
    pipe = DualMCMCPipeline(DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=2, generator=seeded()).images
    assert images[0].mode == "L" and images[0].size == (8, 8)
    recon = pipe.reconstruct(images=images, num_latent_steps=1, output_type="np")
    assert recon.images.shape == (2, 8, 8, 1)


def test_docstring_example_runs(tiny_pipeline, tmp_path):
    saved = _saved(tiny_pipeline, tmp_path / "pipe")
    example = DualMCMCPipeline.__call__.__doc__.split("```py")[1].split("```")[0]
    code = "\n".join(line.strip()[4:] for line in example.splitlines() if line.strip().startswith(">>> "))
    namespace = {}
    exec(code.replace('"outputs/digits/pipeline"', repr(str(saved))), namespace)
    assert len(namespace["out"].images) == 16 and len(namespace["out"].proposals) == 16
    assert len(namespace["pair"]) == 2 and len(namespace["recon"]) == 16

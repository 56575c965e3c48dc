"""Energy / reconstruction OOD scores (hf_dualmcmc.evaluation.ood)."""

import numpy as np
import pytest
import torch

from hf_dualmcmc import (
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    configs_for_image_size,
)
from hf_dualmcmc.data import load_digits_images
from hf_dualmcmc.evaluation.ood import ood_evaluation, ood_metrics, ood_scores, synthetic_ood_sets
from hf_dualmcmc.training import energy_loss


def test_metrics_conventions():
    ind = np.arange(100.0)
    perfect = ood_metrics(ind, ind + 1000)
    assert perfect == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    reversed_ = ood_metrics(ind + 1000, ind)
    assert reversed_["auroc"] == 0.0 and reversed_["fpr95"] == 1.0
    assert ood_metrics(ind, ind)["auroc"] == pytest.approx(0.5)
    # half of the OOD set looks more in-distribution than everything: it is accepted at the 95 % threshold
    half = ood_metrics(ind, np.r_[np.full(50, -1.0), np.full(50, 1000.0)])
    assert half["fpr95"] == pytest.approx(0.5) and half["auroc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="finite"):
        ood_metrics(ind, np.r_[ind[:-1], np.inf])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        ood_metrics(ind, [])


def test_synthetic_sets():
    digits = load_digits_images("test")[:40, ..., None]
    other = np.random.default_rng(1).integers(0, 256, size=(30, 8, 8, 1), dtype=np.uint8)
    sets = synthetic_ood_sets(digits, other=other, num_images=20, seed=3)
    assert sorted(sets) == sorted(["uniform_noise", "gaussian_noise", "constant", "inverted", "other_digits"])
    for name, images in sets.items():
        assert images.shape == (20, 8, 8, 1) and images.dtype == np.uint8, name
    assert all(len(np.unique(im)) == 1 for im in sets["constant"])
    inverted = {(255 - im).tobytes() for im in sets["inverted"]}
    assert inverted <= {im.tobytes() for im in digits}
    again = synthetic_ood_sets(digits, other=other, num_images=20, seed=3)
    assert all(np.array_equal(again[k], sets[k]) for k in sets)
    assert "other_digits" not in synthetic_ood_sets(digits, num_images=5)


@pytest.fixture(scope="module")
def digits_pipeline():
    """A tiny 8x8 pipeline whose energy was fitted for a few steps to separate digits from uniform noise."""
    torch.manual_seed(0)
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=8)
    energy = DualMCMCEnergyModel(e)
    data = torch.from_numpy(load_digits_images("train")).float()[:, None] / 127.5 - 1
    opt = torch.optim.Adam(energy.parameters(), lr=1e-2)
    for _ in range(20):
        x = data[torch.randint(0, len(data), (64,))]
        noise = torch.rand_like(x) * 2 - 1
        loss = energy_loss(energy(x).energy, energy(noise).energy) + 0.1 * energy(x).energy.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pipe = DualMCMCPipeline(energy, DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i), num_latent_steps=2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_energy_scores_rank_digits_above_noise(digits_pipeline):
    held_out = load_digits_images("test")[..., None]
    sets = synthetic_ood_sets(held_out, num_images=100, seed=0)
    result = ood_evaluation(digits_pipeline, held_out, {"uniform_noise": sets["uniform_noise"]}, scores=["energy"])
    (row,) = result["rows"]
    assert row["auroc"] > 0.95 and row["fpr95"] < 0.2, row
    assert result["mean_scores"]["energy"]["in_distribution"] < result["mean_scores"]["energy"]["uniform_noise"]
    assert "| energy | uniform_noise |" in result["markdown"]


def test_scores_match_the_models(digits_pipeline):
    pipe = digits_pipeline
    images = load_digits_images("test")[:6, ..., None]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    pipe.energy_model.train()
    energy = ood_scores(pipe, images, "energy", batch_size=4)
    assert pipe.energy_model.training  # the mode is restored
    pipe.energy_model.eval()
    with torch.no_grad():
        assert np.allclose(energy, pipe.energy_model(x).energy.numpy(), atol=1e-6)
    recon = ood_scores(pipe, images, "recon", seed=5)
    rec = pipe.reconstruct(pixel_values=x, generator=5, sample_posterior=False, output_type="pt").images * 2 - 1
    assert np.allclose(recon, (rec - x).pow(2).flatten(1).sum(1).numpy(), atol=1e-5)
    rows = ood_evaluation(pipe, images, {"inverted": 255 - images})["rows"]
    assert [r["score"] for r in rows] == ["energy", "recon"]


def test_bad_inputs(digits_pipeline):
    images = load_digits_images("test")[:4, ..., None]
    with pytest.raises(ValueError, match="score must be one of"):
        ood_scores(digits_pipeline, images, "likelihood")
    with pytest.raises(ValueError, match=r"images must be \[N, 8, 8, 1\] uint8"):
        ood_scores(digits_pipeline, np.zeros((2, 16, 16, 1), np.uint8))
    no_encoder = DualMCMCPipeline(digits_pipeline.energy_model, digits_pipeline.generator_model)
    with pytest.raises(ValueError, match="needs a pipeline with an encoder"):
        ood_scores(no_encoder, images, "recon")
    with pytest.raises(ValueError, match="num_images must be >= 1"):
        synthetic_ood_sets(images, num_images=0)
    with pytest.raises(ValueError, match=r"shape \[N, 8, 8, 1\], got \[2, 28, 28, 1\]: load them with load_images"):
        synthetic_ood_sets(images, other=np.zeros((2, 28, 28, 1), np.uint8))

"""Baselines (teaching.method), the 2-D toy suite (data, exact grid density, MMD) and the baselines' pipelines."""

import copy
import math

import numpy as np
import pytest
import torch
from conftest import load_module

from hf_dualmcmc import (
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    configs_for_image_size,
)
from hf_dualmcmc.training import METHODS, dual_mcmc_step, make_optimizers, teaching_step
from hf_dualmcmc.training_config import TeachingConfig

toy = load_module("benchmarks/toy.py", "toy")  # the 2-D toy suite (benchmarks/toy.py)
DualMCMCToyEnergyModel, toy_models, TOY_BOUNDS, TOY_DATASETS = (
    toy.DualMCMCToyEnergyModel,
    toy.toy_models,
    toy.TOY_BOUNDS,
    toy.TOY_DATASETS,
)
evaluate_toy, grid_density, histogram_mass, kl_from_mass = (
    toy.evaluate_toy,
    toy.grid_density,
    toy.histogram_mass,
    toy.kl_from_mass,
)
mmd_rbf, plot_toy, sample_toy, toy_teaching_config, train_toy = (
    toy.mmd_rbf,
    toy.plot_toy,
    toy.sample_toy,
    toy.toy_teaching_config,
    toy.train_toy,
)


# ----------------------------------------------------------------------------------------------------------------
# toy data
# ----------------------------------------------------------------------------------------------------------------


def test_toy_samplers_match_their_definitions():
    for name in TOY_DATASETS:
        x = sample_toy(name, 4000, seed=0)
        assert x.shape == (4000, 2) and x.dtype == np.float32 and np.isfinite(x).all()
        inside = (np.abs(x) <= TOY_BOUNDS[name]).all(1).mean()
        assert inside > 0.995, name
        assert np.array_equal(x, sample_toy(name, 4000, seed=0)) and not np.array_equal(x, sample_toy(name, 4000, 1))
    # 8 gaussians: modes at radius 4 / 1.414, std 0.5 / 1.414
    r = np.linalg.norm(sample_toy("8gaussians", 20000, 0), axis=1)
    assert abs(np.median(r) - 4 / 1.414) < 0.05
    # rings: four radii 3, 2.25, 1.5, 0.75 with noise 0.08
    r = np.linalg.norm(sample_toy("rings", 20000, 0), axis=1)
    nearest = np.abs(r[:, None] - np.array([3.0, 2.25, 1.5, 0.75])[None]).min(1)
    assert np.quantile(nearest, 0.99) < 0.3
    # checkerboard: uniform on the 8 squares of [-4, 4]^2 where floor(x1/2) + floor(x2/2) is even
    x = sample_toy("checkerboard", 20000, 0)
    parity = (np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2
    assert (parity == parity[0]).all() and np.abs(x).max() <= 4
    mass = histogram_mass(x, 4.0, 4)
    assert np.count_nonzero(mass) == 8 and np.allclose(mass[mass > 0], 1 / 8, atol=0.02)
    with pytest.raises(ValueError, match="unknown toy"):
        sample_toy("moons", 3)


# ----------------------------------------------------------------------------------------------------------------
# exact evaluation
# ----------------------------------------------------------------------------------------------------------------


def gaussian_energy(mean, std):
    mean = torch.tensor(mean, dtype=torch.float32)
    return lambda x: (x - mean).pow(2).sum(1) / (2 * std**2)


def test_grid_density_of_a_gaussian_energy_is_normalised_and_exact():
    mean, std, T = (0.5, -0.3), 0.7, 2.0
    # at temperature T, exp(-E/T) with E = |x - m|^2 / (2 s^2) is N(m, s^2 T)
    d = grid_density(gaussian_energy(mean, std), bound=5.0, resolution=200, temperature=T)
    assert d.log_mass.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    var = std**2 * T
    assert d.log_z == pytest.approx(math.log(2 * math.pi * var), abs=1e-3)  # Z = 2 pi var of exp(-|x-m|^2/(2 var))
    x = torch.tensor([[0.5, -0.3], [1.0, 1.0]])
    exact = -(x - torch.tensor(mean)).pow(2).sum(1) / (2 * var) - math.log(2 * math.pi * var)
    assert torch.allclose(d.log_prob(gaussian_energy(mean, std)(x)).float(), exact, atol=1e-3)


def test_kl_of_a_gaussian_energy_against_its_own_distribution_is_about_zero():
    rng = np.random.default_rng(0)
    mean, std = np.array([0.5, -0.3]), 0.7
    data = rng.normal(size=(1_000_000, 2)) * std + mean
    mass = histogram_mass(data, 5.0, 100)
    own = grid_density(gaussian_energy(tuple(mean), std), 5.0, 100, 1.0)
    wrong = grid_density(gaussian_energy((1.5, -0.3), std), 5.0, 100, 1.0)
    kl_own, kl_wrong = kl_from_mass(mass, own.log_mass), kl_from_mass(mass, wrong.log_mass)
    assert 0 <= kl_own < 0.01
    assert kl_wrong == pytest.approx(1.0**2 / (2 * std**2), rel=0.05)  # KL of two Gaussians, shifted by 1
    # held-out NLL of the right density is its entropy, log(2 pi e s^2)
    test = torch.from_numpy(rng.normal(size=(20000, 2)) * std + mean).float()
    nll = -own.log_prob(gaussian_energy(tuple(mean), std)(test)).mean().item()
    assert nll == pytest.approx(math.log(2 * math.pi * math.e * std**2), abs=0.03)
    with pytest.raises(ValueError, match="same grid shape"):
        kl_from_mass(mass, own.log_mass[:-1])


def test_mmd_sanity():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
    shifted = torch.randn(500, 2, generator=g) + torch.tensor([1.0, 0.0])
    same, h = mmd_rbf(a, b)
    moved, _ = mmd_rbf(a, shifted)
    assert abs(same) < 0.01 and moved > 10 * max(abs(same), 1e-3) and h > 0
    assert mmd_rbf(a, a + 0.0)[0] == pytest.approx(mmd_rbf(a, a)[0])
    farther, _ = mmd_rbf(a, shifted + torch.tensor([2.0, 0.0]), bandwidth=h)
    assert farther > moved
    with pytest.raises(ValueError):
        mmd_rbf(a[:1], b)


# ----------------------------------------------------------------------------------------------------------------
# the baselines on toy MLPs
# ----------------------------------------------------------------------------------------------------------------


def toy_teaching(**kw):
    return toy_teaching_config(num_steps=3, num_latent_steps=2, **kw)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_runs_on_toys_and_trains_only_its_networks(method):
    torch.manual_seed(0)
    nets = dict(zip(("energy", "generator", "encoder"), toy_models(hidden_dim=16, num_layers=2, latent_dim=4)))
    used = {k: (v if k in METHODS[method].networks else None) for k, v in nets.items()}
    before = {k: copy.deepcopy(v.state_dict()) for k, v in nets.items()}
    cfg = toy_teaching(method=method)
    opts = make_optimizers(used["energy"], used["generator"], used["encoder"], cfg)
    assert [o is not None for o in opts] == [used[k] is not None for k in ("energy", "generator", "encoder")]
    data = torch.from_numpy(sample_toy("8gaussians", 16, 0))
    for _ in range(2):
        out = teaching_step(data, used["energy"], used["generator"], used["encoder"], opts, cfg, keep_tensors=True)
        assert out.is_finite()
    for name, net in nets.items():
        moved = any(not torch.equal(a, before[name][k]) for k, a in net.state_dict().items())
        assert moved == (name in METHODS[method].networks), (method, name)
    if method == "short_run":  # chain initialised by uniform noise over [-r, r]
        assert out.extras["proposals"].abs().max() <= cfg.noise_init_range and out.loss_generator == 0.0
    if method == "inference_only":
        assert out.loss_energy == 0.0 and out.recon_sse > 0
    # a missing network is refused
    if method != "short_run":
        with pytest.raises(ValueError, match="needs the generator"):
            teaching_step(data, used["energy"], None, used["encoder"], opts, cfg)


def test_dispatcher_default_is_the_dual_mcmc_step_bit_for_bit():
    data = torch.from_numpy(sample_toy("rings", 16, 0))
    cfg = toy_teaching()
    outs, states = [], []
    for fn in (teaching_step, dual_mcmc_step):
        torch.manual_seed(0)
        e, g, i = toy_models(hidden_dim=16, num_layers=2, latent_dim=4)
        torch.manual_seed(1)
        outs.append(fn(data, e, g, i, make_optimizers(e, g, i, cfg), cfg).as_dict())
        states.append([p.clone() for m in (e, g, i) for p in m.parameters()])
    assert outs[0] == outs[1]
    assert all(torch.equal(a, b) for a, b in zip(*states))


def test_cooperative_generator_learns_only_from_revised_samples():
    # the data never reach the cooperative generator: its update is the same for any data batch
    cfg = toy_teaching(method="cooperative")
    grads = []
    for seed in (0, 1):
        torch.manual_seed(0)
        e, g, _ = toy_models(hidden_dim=16, num_layers=2, latent_dim=4)
        data = torch.from_numpy(sample_toy("8gaussians", 16, seed))
        opts = make_optimizers(e, g, None, cfg)
        torch.manual_seed(5)
        teaching_step(data, e, g, None, opts, cfg)
        grads.append([p.clone() for p in g.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_teaching_config_validates_method():
    with pytest.raises(ValueError, match=r"teaching.method: expected one of \[.dual_mcmc., .short_run"):
        TeachingConfig(method="vae")
    with pytest.raises(ValueError, match="noise_init_range"):
        TeachingConfig(noise_init_range=0.0)
    assert TeachingConfig().method == "dual_mcmc"


def test_train_and_evaluate_toy_runs_end_to_end(tmp_path):
    panels = {}
    for method in METHODS:
        run = train_toy(
            "8gaussians",
            method,
            seed=0,
            iterations=3,
            batch_size=32,
            hidden_dim=16,
            num_layers=2,
            teaching=toy_teaching(),
        )
        assert run.iterations == 3 and run.seconds > 0 and run.teaching.method == method
        metrics, arrays = evaluate_toy(run, num_samples=200, resolution=32, num_data_hist=20000, num_test=300)
        has_energy = "energy" in METHODS[method].networks
        assert ("kl" in metrics) == has_energy and ("log_density" in arrays) == has_energy
        assert ("recon_mse_inf_l" in metrics) == ("encoder" in METHODS[method].networks)
        assert all(np.isfinite(v) for v in metrics.values())
        panels[method] = arrays
    assert (
        train_toy(
            "8gaussians", "short_run", iterations=1, batch_size=8, hidden_dim=8, num_layers=1, teaching=toy_teaching()
        ).teaching.noise_init_range
        == TOY_BOUNDS["8gaussians"]
    )
    plot_toy("8gaussians", panels, tmp_path / "toy.png")
    assert (tmp_path / "toy.png").stat().st_size > 1000


def test_toy_models_round_trip(tmp_path):
    e, _, _ = toy_models(hidden_dim=8, num_layers=1)
    e.save_pretrained(tmp_path)
    loaded = DualMCMCToyEnergyModel.from_pretrained(tmp_path)
    x = torch.randn(5, 2)
    assert torch.equal(loaded.energy(x), e.energy(x))
    with pytest.raises(ValueError, match=r"shape \[batch, 2\]"):
        e.energy(torch.randn(5, 3))


# ----------------------------------------------------------------------------------------------------------------
# the baselines on tiny image networks, and their pipelines
# ----------------------------------------------------------------------------------------------------------------


def tiny_image_models():
    torch.manual_seed(0)
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=4)
    return DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i)


@pytest.mark.parametrize("method", ["short_run", "cooperative", "inference_only"])
def test_each_baseline_runs_on_tiny_images_and_exports_a_working_pipeline(method, tmp_path):
    nets = dict(zip(("energy", "generator", "encoder"), tiny_image_models()))
    used = {k: (v if k in METHODS[method].networks else None) for k, v in nets.items()}
    cfg = TeachingConfig(num_steps=2, num_latent_steps=2, method=method)
    opts = make_optimizers(used["energy"], used["generator"], used["encoder"], cfg)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    for _ in range(2):
        assert teaching_step(x, used["energy"], used["generator"], used["encoder"], opts, cfg).is_finite()
    from hf_dualmcmc.trainer import build_pipeline
    from hf_dualmcmc.training_config import SamplerSettings

    pipe = build_pipeline(
        used["energy"], used["generator"], used["encoder"], SamplerSettings(num_inference_steps=2), cfg
    )
    pipe.save_pretrained(tmp_path)
    pipe = DualMCMCPipeline.from_pretrained(tmp_path)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=3, output_type="pt", return_proposals=True, generator=0)
    assert out.images.shape == (3, 1, 8, 8)
    if method == "short_run":
        assert pipe.config.proposal == "noise" and pipe.generator_model is None and out.latents is None
        assert pipe.encoder is None
    if method == "inference_only":
        assert pipe.energy_model is None and pipe.config.num_inference_steps == 0
        assert torch.equal(out.images, out.proposals)
        assert pipe.reconstruct(pixel_values=x, output_type="pt").images.shape == (4, 1, 8, 8)
        with pytest.raises(ValueError, match="no energy_model"):
            pipe(batch_size=1, num_inference_steps=3)
    if method == "cooperative":
        assert pipe.encoder is None and pipe.config.proposal == "generator"


def test_pipeline_proposal_option_validation():
    e, g, i = tiny_image_models()
    with pytest.raises(ValueError, match="proposal must be one of"):
        DualMCMCPipeline(e, g, proposal="prior")
    with pytest.raises(ValueError, match="needs generator_model"):
        DualMCMCPipeline(e, None)
    with pytest.raises(ValueError, match="num_inference_steps=0"):
        DualMCMCPipeline(None, g, i)
    pipe = DualMCMCPipeline(e, None, proposal="noise", noise_init_range=0.5, num_inference_steps=0)
    pipe.set_progress_bar_config(disable=True)
    noise = pipe(batch_size=64, output_type="pt", generator=0).images  # [0, 1] scale: 0.5 +- 0.25
    assert noise.min() >= 0.25 - 1e-6 and noise.max() <= 0.75 + 1e-6 and noise.std() > 0.1
    # default: unchanged generator-initialised sampler
    assert DualMCMCPipeline(e, g, i).config.proposal == "generator"


def test_trainer_runs_a_baseline(tmp_path):
    from conftest import tiny_config

    from hf_dualmcmc.trainer import train

    cfg = tiny_config(tmp_path, max_steps=2, checkpoint_every=0)
    cfg.teaching.method = "cooperative"
    result = train(cfg)
    assert result.step == 2 and all(r["loss_encoder"] == 0.0 for r in result.history)
    pipe = DualMCMCPipeline.from_pretrained(result.pipeline_dir)
    assert pipe.encoder is None and (result.pipeline_dir / "README.md").is_file()

"""The two chains against analytic answers: a quadratic energy and a linear-Gaussian generator."""

import numpy as np
import pytest
import torch
from torch import nn

from hf_dualmcmc import (
    DualMCMCEnergyModel,
    chain_mode,
    energy_langevin,
    mcmc_temperature,
    posterior_langevin,
    posterior_potential,
)


def test_x_chain_converges_to_quadratic_mean_and_ula_variance():
    torch.manual_seed(0)
    dim, chains = 3, 4000
    m = torch.tensor([0.5, -1.0, 2.0])
    s2 = 0.25  # E(x) = ||x - m||^2 / (2 s2)
    delta, sigma_n = 0.3, 0.05

    def energy(x):
        return (x - m).pow(2).sum(1) / (2 * s2)

    out = energy_langevin(energy, torch.zeros(chains, dim), 400, delta, sigma_n, return_energies=True)
    x = out.sample
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(0), m, atol=0.01)
    # x <- (1 - a) x + a m + sigma_n eps with a = 0.5 delta^2 / s2: stationary variance sigma_n^2 / (1 - (1 - a)^2)
    a = 0.5 * delta**2 / s2
    expected_var = sigma_n**2 / (1 - (1 - a) ** 2)
    assert torch.allclose(x.var(0), torch.full((dim,), expected_var), rtol=0.1)
    # which is the Langevin variance of exp(-E/T) with T = (sigma_n/delta)^2, up to the O(a) discretisation bias
    T = mcmc_temperature(delta, sigma_n)
    assert abs(expected_var / (T * s2) - 1) < a
    assert out.energies.shape == (401, chains)
    assert out.energies[0].mean() > out.energies[-1].mean()


def test_z_chain_matches_linear_gaussian_posterior():
    torch.manual_seed(0)
    nz, nx, chains = 2, 3, 4000
    dec = nn.Linear(nz, nx)
    with torch.no_grad():
        dec.weight.copy_(torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -0.4]]))
        dec.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    sigma, prior = 0.8, 1.0
    x_obs = torch.tensor([0.7, -0.4, 0.2])
    A, b = dec.weight.detach(), dec.bias.detach()
    # potential U(z) = ||Az + b - x||^2 / sigma^2 + ||z||^2 / 2  ->  precision and mean of the Gaussian posterior
    precision = 2 * A.T @ A / sigma**2 + torch.eye(nz) / prior**2
    mean = torch.linalg.solve(precision, 2 * A.T @ (x_obs - b) / sigma**2)
    s = 0.1
    h = 0.5 * s**2
    # unadjusted Langevin's exact stationary covariance for a Gaussian target: (P (I - h P / 2))^-1
    ula_cov = torch.linalg.inv(precision @ (torch.eye(nz) - h * precision / 2))
    x = x_obs.expand(chains, nx)
    out = posterior_langevin(dec, torch.zeros(chains, nz), x, 1500, s, s, sigma, prior, return_errors=True)
    z = out.sample
    assert torch.allclose(z.mean(0), mean, atol=0.03)
    cov = torch.cov(z.T)
    assert torch.allclose(cov, ula_cov, atol=0.03)
    assert torch.allclose(ula_cov, torch.linalg.inv(precision), atol=0.03)  # small step: close to the posterior
    assert dec.weight.grad is None and dec.weight.requires_grad
    assert out.errors.shape == (1501, chains)


def test_posterior_potential_formula():
    dec = torch.randn(4, 2, 3, 3)
    x = torch.randn(4, 2, 3, 3)
    z = torch.randn(4, 5)
    pot, sse = posterior_potential(dec, x, z, observation_std=0.3, prior_std=2.0)
    ref_sse = ((dec - x) ** 2).sum((1, 2, 3))
    assert torch.allclose(sse, ref_sse)
    assert torch.allclose(pot, ref_sse / 0.09 + (z**2).sum(1) / 8.0)


def test_chains_leave_parameters_untouched(tiny_configs):
    e, _, _ = tiny_configs
    model = DualMCMCEnergyModel(e)
    model.head.parametrizations.weight.original.requires_grad_(False)  # a user-frozen parameter stays frozen
    x0 = torch.randn(3, 3, 16, 16)
    with torch.no_grad():  # the chain enables gradients itself
        out = energy_langevin(model, x0, 3, 0.5, 0.001)
    assert out.sample.requires_grad is False
    assert not torch.equal(out.sample, x0)
    assert all(p.grad is None for p in model.parameters())
    flags = [p.requires_grad for p in model.parameters()]
    assert flags.count(False) == 1


def test_spectral_norm_computed_once_per_chain(tiny_configs, monkeypatch):
    from torch.nn.utils.parametrizations import _SpectralNorm

    calls = []
    original = _SpectralNorm._power_method

    def counting(self, w, n):
        calls.append(id(self))
        return original(self, w, n)

    monkeypatch.setattr(_SpectralNorm, "_power_method", counting)
    model = DualMCMCEnergyModel(tiny_configs[0]).train()
    n_layers = sum(1 for m in model.modules() if isinstance(m, _SpectralNorm))
    calls.clear()  # construction ran its own power iterations
    energy_langevin(model, torch.randn(2, 3, 16, 16), 5, 0.5, 0.001)
    assert len(calls) == n_layers  # one power iteration per layer for the whole 5-step chain
    calls.clear()
    model(torch.randn(2, 3, 16, 16))
    assert len(calls) == n_layers  # outside a chain: the usual one per forward


def test_chain_state_stays_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    lin = nn.Linear(16, 1, bias=False)

    def energy(x):
        return lin(x).squeeze(-1)

    x0 = torch.ones(4, 16)
    # each step moves x by 0.5 * delta^2 * w ~ 1e-5, far below bf16 resolution at 1.0 (2^-7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = energy_langevin(energy, x0, 10, 0.005, 0.0)
    ref = energy_langevin(energy, x0, 10, 0.005, 0.0)
    assert out.sample.dtype == torch.float32
    expected = x0 - 10 * 0.5 * 0.005**2 * lin.weight.detach()
    assert torch.allclose(ref.sample, expected, atol=1e-7)
    assert not torch.equal(out.sample, x0)
    assert torch.allclose(out.sample, ref.sample, rtol=0, atol=2e-6)  # bf16 gradient, fp32 accumulation
    # a bf16 chain state would have dropped every one of these updates
    assert torch.equal((x0.bfloat16() + (expected - x0).bfloat16() / 10).float(), x0)


def test_chain_is_reproducible_with_generator():
    def energy(x):
        return x.pow(2).sum(1)

    a = energy_langevin(energy, torch.zeros(3, 2), 5, 0.1, 0.1, generator=torch.Generator().manual_seed(3))
    b = energy_langevin(energy, torch.zeros(3, 2), 5, 0.1, 0.1, generator=torch.Generator().manual_seed(3))
    c = energy_langevin(energy, torch.zeros(3, 2), 5, 0.1, 0.1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.sample, b.sample) and not torch.equal(a.sample, c.sample)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_steps=-1), "num_steps must be an integer >= 0, got -1"),
        (dict(num_steps=2.0), "num_steps must be an integer >= 0, got 2.0"),
        (dict(num_steps=True), "num_steps must be an integer >= 0, got True"),
        (dict(step_size=float("nan")), "step_size must be a finite number > 0, got nan"),
        (dict(step_size=float("inf")), "step_size must be a finite number > 0, got inf"),
        (dict(step_size=0.0), "step_size must be a finite number > 0, got 0.0"),
        (dict(step_size=-0.1), "step_size must be a finite number > 0, got -0.1"),
        (dict(noise_scale=-0.1), "noise_scale must be a finite number >= 0, got -0.1"),
        (dict(noise_scale=float("nan")), "noise_scale must be a finite number >= 0, got nan"),
    ],
)
def test_chain_argument_errors(kwargs, message):
    args = dict(num_steps=1, step_size=0.1, noise_scale=0.1) | kwargs
    with pytest.raises(ValueError, match=message):
        energy_langevin(lambda x: x.sum(1), torch.zeros(1, 2), **args)
    with pytest.raises(ValueError, match=message):
        posterior_langevin(lambda z: z, torch.zeros(1, 2), torch.zeros(1, 2), **args, observation_std=0.3)


def test_posterior_chain_std_errors_and_numpy_integers():
    with pytest.raises(ValueError, match="observation_std must be a finite number > 0, got 0.0"):
        posterior_langevin(lambda z: z, torch.zeros(1, 2), torch.zeros(1, 2), 1, 0.1, 0.1, 0.0)
    with pytest.raises(ValueError, match="prior_std must be a finite number > 0, got inf"):
        posterior_langevin(lambda z: z, torch.zeros(1, 2), torch.zeros(1, 2), 1, 0.1, 0.1, 0.3, float("inf"))
    out = energy_langevin(
        lambda x: x.pow(2).sum(1), torch.ones(1, 2), np.int64(2), np.float32(0.5), 0, return_energies=True
    )
    assert out.energies.shape == (3, 1)


def test_callback_can_replace_the_chain_state():
    def energy(x):
        return x.pow(2).sum(1) / 2  # gradient x: each step multiplies the state by 1 - 0.5 * delta^2

    seen = []

    def jump_after_step_0(step, x):
        seen.append((step, x.clone()))
        return torch.full_like(x, 10.0) if step == 0 else None

    out = energy_langevin(energy, torch.ones(2, 3), 3, 1.0, 0.0, callback=jump_after_step_0, return_energies=True)
    assert [s for s, _ in seen] == [0, 1, 2] and torch.allclose(seen[0][1], torch.full((2, 3), 0.5))
    assert torch.allclose(seen[1][1], torch.full((2, 3), 5.0))  # the step after the jump starts from 10
    assert torch.allclose(out.sample, torch.full((2, 3), 10.0 * 0.5**2))
    assert torch.allclose(out.energies[1], torch.full((2,), 3 * 100 / 2))  # energy of the replaced state
    # a callback that mutates in place and returns the state (or None) keeps going from it
    kept = energy_langevin(energy, torch.ones(1, 1), 2, 1.0, 0.0, callback=lambda i, x: x.mul_(2))
    assert torch.allclose(kept.sample, torch.full((1, 1), 1.0))  # (1 * 0.5 * 2) * 0.5 * 2
    z = posterior_langevin(
        lambda z: z, torch.ones(1, 2), torch.zeros(1, 2), 1, 0.1, 0.0, 1.0, callback=lambda i, z: torch.zeros_like(z)
    ).sample
    assert torch.equal(z, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"callback must return None or a tensor of the chain state's shape \(2, 3\)"):
        energy_langevin(energy, torch.ones(2, 3), 1, 1.0, 0.0, callback=lambda i, x: x[:1])


def test_chain_mode_restores_flags_on_error():
    lin = nn.Linear(2, 2)
    with pytest.raises(RuntimeError):
        with chain_mode(lin):
            assert not lin.weight.requires_grad
            raise RuntimeError("boom")
    assert lin.weight.requires_grad

"""A plain, eager, float32 Dual-MCMC iteration and sampler: the baseline that every optimisation is measured against.

This module deliberately contains none of the package's speed-ups, so that ``benchmarks/bench_step.py --reference``
and ``tests/test_performance.py`` can time and check the optimised code (:func:`hf_dualmcmc.training.dual_mcmc_step`,
:class:`~hf_dualmcmc.DualMCMCPipeline`) against the iteration as the authors run it:

* the networks stay in whatever mode the caller left them (train mode in training, as the authors: every energy
  forward runs one spectral-norm power iteration and every generator forward uses batch statistics and updates the
  BatchNorm running statistics); no ``parametrize.cached()``;
* parameters keep ``requires_grad=True`` during the chains (gradients are taken with respect to the chain state only,
  so no ``.grad`` is touched, but autograd records the spectral-norm computation at every step);
* every update is the out-of-place ``x = x - a * g + s * noise``; no caching, no memory-format or precision changes.

The random numbers are drawn from the global torch RNG in the same order as :func:`~hf_dualmcmc.training.dual_mcmc_step`
(``z``, x-chain noise, ``eps``, z-chain noise, second x-chain noise), so both give the same iteration for one seed.
"""

from __future__ import annotations

import torch
from torch import nn

from hf_dualmcmc.training import StepOutput
from hf_dualmcmc.training_config import TeachingConfig


def reference_energy_chain(
    energy: nn.Module, x: torch.Tensor, num_steps: int, step_size: float, noise_scale: float
) -> torch.Tensor:
    """``x <- x - 0.5 * step_size^2 * d/dx sum_i E(x_i) + noise_scale * N(0, I)``, ``num_steps`` times (no noise drawn when
    ``noise_scale == 0``). Returns the detached final state."""
    x = x.detach().clone()
    for _ in range(num_steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x, return_dict=False)[0].sum(), x)
        x = x.detach() - 0.5 * step_size**2 * grad
        if noise_scale > 0:
            x = x + noise_scale * torch.randn_like(x)
    return x.detach()


def reference_posterior_chain(
    generator: nn.Module,
    z: torch.Tensor,
    x: torch.Tensor,
    num_steps: int,
    step_size: float,
    noise_scale: float,
    observation_std: float,
    prior_std: float = 1.0,
) -> torch.Tensor:
    """``z <- z - 0.5 * s^2 * d/dz (||G(z) - x||^2_sum / sigma^2 + ||z||^2 / (2 prior^2)) + n * N(0, I)``."""
    z = z.detach().clone()
    x = x.detach()
    for _ in range(num_steps):
        z.requires_grad_(True)
        sse = ((generator(z, return_dict=False)[0] - x) ** 2).sum()
        potential = sse / observation_std**2 + (z**2).sum() / (2 * prior_std**2)
        (grad,) = torch.autograd.grad(potential, z)
        z = z.detach() - 0.5 * step_size**2 * grad
        if noise_scale > 0:
            z = z + noise_scale * torch.randn_like(z)
    return z.detach()


def _nll(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * logvar.sum(1) + 0.5 * ((z - mean) ** 2 / (1e-6 + torch.exp(logvar))).sum(1)


def reference_dual_mcmc_step(
    data: torch.Tensor,
    energy: nn.Module,
    generator: nn.Module,
    encoder: nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer, torch.optim.Optimizer],
    config: TeachingConfig,
) -> StepOutput:
    """One Dual-MCMC teaching iteration written out plainly (the authors' order; see :mod:`hf_dualmcmc.training`).

    Same arguments and same :class:`~hf_dualmcmc.training.StepOutput` as
    :func:`~hf_dualmcmc.training.dual_mcmc_step` (without its ``backward`` / ``autocast`` / ``unwrap`` hooks: plain
    modules, float32, ``loss.backward()``).
    """
    cfg = config
    opt_e, opt_g, opt_i = optimizers
    batch = data.shape[0]
    noise_scale = cfg.noise_scale if cfg.use_noise else 0.0
    gen_cfg = generator.config

    # 1. generator proposals revised by the EBM
    z = torch.randn(batch, gen_cfg.latent_dim, device=data.device)
    x0 = generator(z, return_dict=False)[0]
    x_rev = reference_energy_chain(energy, x0, cfg.num_steps, cfg.step_size, noise_scale)
    # 2. generator update
    mean, logvar = encoder(data, return_dict=False)
    z0 = mean.detach() + torch.exp(0.5 * logvar.detach()) * torch.randn_like(mean)
    z_rev = reference_posterior_chain(
        generator,
        z0,
        data,
        cfg.num_latent_steps,
        cfg.latent_step_size,
        cfg.latent_noise_scale,
        gen_cfg.observation_std,
        gen_cfg.prior_std,
    )
    recon = generator(z_rev, return_dict=False)[0]
    loss_g = (
        cfg.data_weight * ((recon - data) ** 2).sum() / batch
        + cfg.generator_teaching_weight * ((x0 - x_rev) ** 2).sum() / batch
    )
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    # 3. encoder update
    mean_rev, logvar_rev = encoder(x_rev, return_dict=False)
    loss_i = (
        cfg.data_weight * _nll(z_rev, mean, logvar).mean()
        + cfg.encoder_teaching_weight * _nll(z, mean_rev, logvar_rev).mean()
    )
    opt_i.zero_grad(set_to_none=True)
    loss_i.backward()
    opt_i.step()
    # 4. energy update against the updated generator's (revised) proposals
    with torch.no_grad():
        x1 = generator(z, return_dict=False)[0]
    if cfg.rerun_chain_for_energy:
        x1 = reference_energy_chain(energy, x1, cfg.num_steps, cfg.step_size, noise_scale)
    e_data = energy(data, return_dict=False)[0]
    e_samples = energy(x1, return_dict=False)[0]
    loss_e = (e_data.mean() - e_samples.mean()) / cfg.temperature
    opt_e.zero_grad(set_to_none=True)
    loss_e.backward()
    opt_e.step()

    return StepOutput(
        loss_energy=loss_e.item(),
        loss_generator=loss_g.item(),
        loss_encoder=loss_i.item(),
        energy_data=e_data.mean().item(),
        energy_samples=e_samples.mean().item(),
        recon_sse=((recon.detach() - data) ** 2).sum().item() / batch,
        proposal_gap=((x0.detach() - x_rev) ** 2).sum().item() / batch,
    )


@torch.no_grad()
def reference_sample(
    energy: nn.Module,
    generator: nn.Module,
    latents: torch.Tensor,
    num_steps: int = 70,
    step_size: float = 0.4,
    noise_scale: float = 0.001,
) -> torch.Tensor:
    """The authors' sampler written out plainly: ``x0 = G(z)`` then :func:`reference_energy_chain` (images in about
    ``[-1, 1]``, float32, not clamped). The networks run in the mode the caller chose."""
    x0 = generator(latents, return_dict=False)[0]
    with torch.enable_grad():
        return reference_energy_chain(energy, x0, num_steps, step_size, noise_scale)


__all__ = ["reference_dual_mcmc_step", "reference_energy_chain", "reference_posterior_chain", "reference_sample"]

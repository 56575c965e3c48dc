"""The paper's baselines as settings of the same iteration: ``TeachingConfig.method`` picks the learning scheme.

Every scheme reuses the chains of :mod:`hf_dualmcmc.langevin` and the objectives of :mod:`hf_dualmcmc.training`
(never a copy of them), runs in the same order as :func:`~hf_dualmcmc.training.dual_mcmc_step` and returns the same
:class:`~hf_dualmcmc.training.StepOutput` (the losses of networks a scheme does not have are reported as ``0.0``).

============================  =====================  ===============================================================
``method``                    networks               one iteration
============================  =====================  ===============================================================
``"dual_mcmc"`` (default)     energy, generator,     :func:`~hf_dualmcmc.training.dual_mcmc_step` (Cui & Han 2023),
                              encoder                unchanged.
``"short_run"``               energy                 ``x0 ~ Uniform[-r, r]`` (``r = noise_init_range``), ``x~ =
                                                     T^x(x0)``; energy step on ``(E(x), E(x~))`` -- the
                                                     noise-initialised short-run EBM of Nijkamp et al. (2019).
``"cooperative"``             energy, generator      ``x0 = G(z)``, ``x~ = T^x(x0)``; generator step on the
                                                     teaching term only (``||G(z) - x~||^2``: it learns from the
                                                     revised samples, never from data); energy step as in dual-MCMC
                                                     (updated generator, second chain when
                                                     ``rerun_chain_for_energy``) --
                                                     CoopNets (Xie et al. 2018).
``"inference_only"``          generator, encoder     ``z0 ~ q(z|x)``, ``z~ = T^z(z0 | x)``; generator step on the
                                                     data term (``||G(z~) - x||^2``), encoder step on
                                                     ``-log q(z~|x)`` -- the paper's "Inf"/"Inf+L" generator with
                                                     encoder-initialised posterior MCMC and no EBM.
============================  =====================  ===============================================================

All randomness comes from the global torch RNG, in the same order as the dual-MCMC step for the parts that exist.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .training import (
    TEACHING_METHODS,
    StepOutput,
    TeachingConfig,
    dual_mcmc_step,
    encoder_data_term,
    energy_loss,
    energy_update,
    generator_data_term,
    generator_teaching_term,
    infer_revised_latents,
    optimizer_step,
    revise_with_energy,
    step_defaults,
    sum_squared_error,
    under_autocast,
)

METHOD_NETWORKS: dict[str, tuple[str, ...]] = {
    "dual_mcmc": ("energy", "generator", "encoder"),
    "short_run": ("energy",),
    "cooperative": ("energy", "generator"),
    "inference_only": ("generator", "encoder"),
}
"""Which of ``("energy", "generator", "encoder")`` each method learns (and exports)."""


def method_networks(method: str) -> tuple[str, ...]:
    """The networks ``method`` learns, e.g. ``("energy", "generator")`` for ``"cooperative"``."""
    if method not in METHOD_NETWORKS:
        raise ValueError(f"method must be one of {TEACHING_METHODS}, got {method!r}")
    return METHOD_NETWORKS[method]


def _check_networks(method: str, energy, generator, encoder) -> None:
    given = {"energy": energy, "generator": generator, "encoder": encoder}
    missing = [name for name in method_networks(method) if given[name] is None]
    if missing:
        raise ValueError(f"method {method!r} needs the {', '.join(missing)} model(s) (got None)")


def short_run_step(
    data: torch.Tensor,
    energy: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TeachingConfig,
    *,
    backward: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], object] | None = None,
    unwrap: Callable[[nn.Module], nn.Module] | None = None,
    keep_tensors: bool = False,
) -> StepOutput:
    """One short-run EBM iteration: uniform-noise-initialised x-chain, then :func:`~hf_dualmcmc.training.energy_loss`.

    ``x0 ~ Uniform[-r, r]`` with the data's shape (``r = config.noise_init_range``), ``x~ = T^x(x0)`` with the same
    chain settings as dual-MCMC (``num_steps``, ``step_size``, ``noise_scale``, ``use_noise``); energy step on
    ``(E(x) - E(x~)) / T``. ``rerun_chain_for_energy`` does not apply (there is no generator to update between two
    chains).
    """
    backward, autocast, unwrap = step_defaults(backward, autocast, unwrap)
    cfg = config
    e_raw = unwrap(energy)
    batch = data.shape[0]

    energy_fn = under_autocast(e_raw.energy, autocast)

    r = cfg.noise_init_range
    x0 = (torch.rand(data.shape, device=data.device, dtype=torch.float32) * 2 - 1) * r
    x_rev = revise_with_energy(e_raw, energy_fn, x0, cfg)
    with autocast():
        e_data = energy(data, return_dict=False)[0]
        e_samples = energy(x_rev, return_dict=False)[0]
    loss_e = energy_loss(e_data, e_samples, cfg.temperature)
    optimizer_step(optimizer, loss_e, backward)
    out = StepOutput(
        loss_energy=loss_e.item(),
        loss_generator=0.0,
        loss_encoder=0.0,
        energy_data=e_data.float().mean().item(),
        energy_samples=e_samples.float().mean().item(),
        recon_sse=0.0,
        proposal_gap=sum_squared_error(x0, x_rev).item() / batch,
    )
    if keep_tensors:
        out.extras = {"proposals": x0, "revised": x_rev, "samples": x_rev}
    return out


def cooperative_step(
    data: torch.Tensor,
    energy: nn.Module,
    generator: nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    config: TeachingConfig,
    *,
    backward: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], object] | None = None,
    unwrap: Callable[[nn.Module], nn.Module] | None = None,
    keep_tensors: bool = False,
) -> StepOutput:
    """One cooperative-learning (CoopNets) iteration: dual-MCMC without the encoder and without learning from data.

    1. ``z ~ N(0, I)``, ``x0 = G(z)``, ``x~ = T^x(x0)``.
    2. generator step on ``generator_teaching_weight *`` :func:`~hf_dualmcmc.training.generator_teaching_term`
       (``||G(z) - x~||^2 / B``: the generator absorbs the EBM's revision; there is no data term).
    3. ``x1 = G(z)`` with the updated generator, ``x1 = T^x(x1)`` when ``rerun_chain_for_energy``; energy step on
       ``(E(x), E(x1))``.
    """
    backward, autocast, unwrap = step_defaults(backward, autocast, unwrap)
    opt_e, opt_g = optimizers
    cfg = config
    e_raw, g_raw = unwrap(energy), unwrap(generator)
    batch = data.shape[0]

    energy_fn = under_autocast(e_raw.energy, autocast)

    z = torch.randn(batch, g_raw.config.latent_dim, device=data.device)
    with autocast():
        x0 = generator(z, return_dict=False)[0]
    x_rev = revise_with_energy(e_raw, energy_fn, x0, cfg)
    loss_g = cfg.generator_teaching_weight * generator_teaching_term(x0, x_rev)
    optimizer_step(opt_g, loss_g, backward)
    loss_e, e_data, e_samples, x1 = energy_update(
        energy, e_raw, g_raw, z, data, opt_e, cfg, energy_fn, backward=backward, autocast=autocast
    )
    out = StepOutput(
        loss_energy=loss_e.item(),
        loss_generator=loss_g.item(),
        loss_encoder=0.0,
        energy_data=e_data.float().mean().item(),
        energy_samples=e_samples.float().mean().item(),
        recon_sse=0.0,
        proposal_gap=sum_squared_error(x0.detach(), x_rev).item() / batch,
    )
    if keep_tensors:
        out.extras = {"proposals": x0.detach(), "revised": x_rev, "samples": x1.detach()}
    return out


def inference_only_step(
    data: torch.Tensor,
    generator: nn.Module,
    encoder: nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    config: TeachingConfig,
    *,
    backward: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], object] | None = None,
    unwrap: Callable[[nn.Module], nn.Module] | None = None,
    keep_tensors: bool = False,
) -> StepOutput:
    """One iteration of generator + encoder learning with encoder-initialised posterior MCMC, no EBM.

    1. ``(mu, logvar) = q(x)``, ``z0 = mu + sigma * eps``, ``z~ = T^z(z0 | x)``; generator step on
       ``data_weight *`` :func:`~hf_dualmcmc.training.generator_data_term` (``||G(z~) - x||^2 / B``).
    2. encoder step on ``data_weight *`` :func:`~hf_dualmcmc.training.encoder_data_term`
       (``mean NLL(z~ | mu(x), logvar(x))``). Without an EBM there are no teaching terms.
    """
    backward, autocast, unwrap = step_defaults(backward, autocast, unwrap)
    opt_g, opt_i = optimizers
    cfg = config
    g_raw = unwrap(generator)
    batch = data.shape[0]

    decode_fn = under_autocast(g_raw.generate, autocast)

    mean, logvar, z_rev = infer_revised_latents(encoder, g_raw, decode_fn, data, cfg, autocast)
    with autocast():
        recon = generator(z_rev, return_dict=False)[0]
    loss_g = cfg.data_weight * generator_data_term(recon, data)
    optimizer_step(opt_g, loss_g, backward)
    loss_i = cfg.data_weight * encoder_data_term(mean, logvar, z_rev)
    optimizer_step(opt_i, loss_i, backward)
    out = StepOutput(
        loss_energy=0.0,
        loss_generator=loss_g.item(),
        loss_encoder=loss_i.item(),
        energy_data=0.0,
        energy_samples=0.0,
        recon_sse=sum_squared_error(recon.detach(), data).item() / batch,
        proposal_gap=0.0,
    )
    if keep_tensors:
        out.extras = {"reconstructions": recon.detach(), "latents": z_rev}
    return out


def teaching_step(
    data: torch.Tensor,
    energy: nn.Module | None,
    generator: nn.Module | None,
    encoder: nn.Module | None,
    optimizers: tuple,
    config: TeachingConfig,
    *,
    backward: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], object] | None = None,
    unwrap: Callable[[nn.Module], nn.Module] | None = None,
    keep_tensors: bool = False,
) -> StepOutput:
    """One iteration of ``config.method``; same arguments as :func:`~hf_dualmcmc.training.dual_mcmc_step`.

    ``optimizers`` is ``(opt_energy, opt_generator, opt_encoder)`` as :func:`~hf_dualmcmc.training.make_optimizers`
    returns it (``None`` for the networks the method does not have); ``"dual_mcmc"`` calls
    :func:`~hf_dualmcmc.training.dual_mcmc_step` unchanged.
    """
    method = config.method
    _check_networks(method, energy, generator, encoder)
    if len(optimizers) != 3:
        raise ValueError(f"optimizers must be (opt_energy, opt_generator, opt_encoder), got {len(optimizers)} items")
    opt_e, opt_g, opt_i = optimizers
    kw = dict(backward=backward, autocast=autocast, unwrap=unwrap, keep_tensors=keep_tensors)
    if method == "dual_mcmc":
        return dual_mcmc_step(data, energy, generator, encoder, optimizers, config, **kw)
    if method == "short_run":
        return short_run_step(data, energy, opt_e, config, **kw)
    if method == "cooperative":
        return cooperative_step(data, energy, generator, (opt_e, opt_g), config, **kw)
    return inference_only_step(data, generator, encoder, (opt_g, opt_i), config, **kw)


__all__ = [
    "METHOD_NETWORKS",
    "cooperative_step",
    "inference_only_step",
    "method_networks",
    "short_run_step",
    "teaching_step",
]

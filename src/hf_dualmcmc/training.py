"""Dual-MCMC teaching: the three objectives and one training iteration in the authors' order.

The paper (Cui & Han, NeurIPS 2023, Sec. 3) learns all three models by minimising KL divergences between joint
densities of ``(x, z)``:

* ``P_theta(x, z) = p_theta(x|z) p(z)`` (generator), ``Q_phi(x, z) = p_data(x) q_phi(z|x)`` (data + encoder),
  ``Pi_{alpha,phi}(x, z) = pi_alpha(x) q_phi(z|x)`` (EBM + encoder);
* the MCMC-revised densities ``P~ = T^x_alpha p_theta(x|z) p(z)`` (generator proposals revised by the x-chain) and
  ``Q~ = p_data(x) T^z_theta q_phi(z|x)`` (encoder latents revised by the z-chain).

Each objective below is one function whose docstring names the KL term it implements; :func:`dual_mcmc_step` runs
one iteration exactly in the order of the authors' code (see ``../shared/notes/official-algorithm.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .langevin import chain_mode, energy_langevin, posterior_langevin
from .training_config import TEACHING_METHODS, TeachingConfig

# ----------------------------------------------------------------------------------------------------------------
# The three objectives
# ----------------------------------------------------------------------------------------------------------------


def sum_squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b||^2`` summed over every element (float32)."""
    return (a.float() - b.float()).pow(2).sum()


def gaussian_nll(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-log q(z|x)`` up to a constant: ``0.5 sum(logvar) + 0.5 sum((z - mu)^2 / (1e-6 + exp(logvar)))``.

    Works for any batch size (the authors' version breaks at batch size 1).
    """
    z, mean, logvar = z.flatten(1).float(), mean.flatten(1).float(), logvar.flatten(1).float()
    return 0.5 * logvar.sum(1) + 0.5 * ((z - mean).pow(2) / (1e-6 + logvar.exp())).sum(1)


def generator_data_term(reconstruction: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    r"""``KL(Q~_{phi_t,theta_t} || P_theta)``, the generator's data term of Eq. 8: ``||G(z~) - x||^2 / B``.

    On the ``Q~`` pair ``(x, z~)`` (data, z-chain-revised latent) the KL reduces, with ``p_theta(x|z) =
    N(G(z), sigma^2 I)`` and up to constants absorbed in its weight, to the reconstruction error of the data from its
    revised latent. ``reconstruction = G(z~)`` carries the graph; ``data`` is a target. Sums over pixels and batch.
    """
    return sum_squared_error(reconstruction, data.detach()) / data.shape[0]


def generator_teaching_term(proposal: torch.Tensor, revised: torch.Tensor) -> torch.Tensor:
    r"""``KL(P~_{theta_t,alpha_t} || P_theta)``, the generator's teaching term of Eq. 8: ``||G(z) - x~||^2 / B``.

    On the ``P~`` pair ``(x~, z)`` (x-chain-revised sample, its latent) the generator absorbs the EBM's MCMC
    revision of its own proposal ("MCMC teaching"). ``proposal = G(z)`` carries the graph; ``revised`` is a target.
    """
    return sum_squared_error(proposal, revised.detach()) / proposal.shape[0]


def generator_loss(
    reconstruction: torch.Tensor,
    data: torch.Tensor,
    proposal: torch.Tensor,
    revised: torch.Tensor,
    data_weight: float = 1.0,
    teaching_weight: float = 50.0,
) -> torch.Tensor:
    r"""Generator objective (paper Eq. 8): ``KL(Q~_{phi_t,theta_t} || P_theta) + KL(P~_{theta_t,alpha_t} || P_theta)``.

    ``data_weight * ||G(z~) - x||^2 / B + teaching_weight * ||G(z) - x~||^2 / B``: :func:`generator_data_term` and
    :func:`generator_teaching_term`, weighted by ``TeachingConfig.data_weight`` and
    ``TeachingConfig.generator_teaching_weight`` (the authors' ``Gfactor`` 1 and ``Sfactor`` 50).
    """
    return data_weight * generator_data_term(reconstruction, data) + teaching_weight * generator_teaching_term(
        proposal, revised
    )


def encoder_data_term(data_mean: torch.Tensor, data_logvar: torch.Tensor, revised_latent: torch.Tensor) -> torch.Tensor:
    r"""``KL(Q~_{phi_t,theta_t} || Q_phi)``, the encoder's data term of Eq. 9: ``mean_i -log q_phi(z~_i | x_i)``.

    The encoder learns to land where the z-chain takes its own draw for the data. ``(data_mean, data_logvar) = q(x)``
    carry the graph; the revised latent ``z~`` is a target.
    """
    return gaussian_nll(revised_latent.detach(), data_mean, data_logvar).mean()


def encoder_teaching_term(sample_mean: torch.Tensor, sample_logvar: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    r"""``KL(P~_{theta_t,alpha_t} || Pi_{alpha,phi})``, the encoder's teaching term of Eq. 9: ``mean_i -log
    q_phi(z_i | x~_i)``.

    The encoder learns to invert the generator on EBM-revised samples: ``(sample_mean, sample_logvar) = q(x~)``
    carry the graph; the latent ``z`` that produced the proposal is a target.
    """
    return gaussian_nll(latent.detach(), sample_mean, sample_logvar).mean()


def encoder_loss(
    data_mean: torch.Tensor,
    data_logvar: torch.Tensor,
    revised_latent: torch.Tensor,
    sample_mean: torch.Tensor,
    sample_logvar: torch.Tensor,
    latent: torch.Tensor,
    data_weight: float = 1.0,
    teaching_weight: float = 0.1,
) -> torch.Tensor:
    r"""Encoder objective (paper Eq. 9): ``KL(Q~_{phi_t,theta_t} || Q_phi) + KL(P~_{theta_t,alpha_t} || Pi_{alpha,phi})``.

    ``data_weight * mean NLL(z~ | x) + teaching_weight * mean NLL(z | x~)``: :func:`encoder_data_term` and
    :func:`encoder_teaching_term`, weighted by ``TeachingConfig.data_weight`` (the same ``Gfactor`` as the
    generator's data term) and ``TeachingConfig.encoder_teaching_weight`` (``Ifactor`` 0.1).
    """
    return data_weight * encoder_data_term(data_mean, data_logvar, revised_latent) + teaching_weight * (
        encoder_teaching_term(sample_mean, sample_logvar, latent)
    )


def energy_loss(data_energy: torch.Tensor, sample_energy: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    r"""EBM objective (paper Eq. 7): ``KL(Q~ || Pi_{alpha,phi}) - KL(P~ || Pi_{alpha,phi})``.

    Its gradient in ``alpha`` is the maximum-likelihood contrast of data against the EBM's revised samples: with
    ``pi_alpha ∝ exp(-E)``, ``loss = (mean E(x_data) - mean E(x~)) / T`` where ``T = mcmc_temp`` when the authors'
    ``use_temp`` is on (the x-chain samples ``exp(-E/T)``).
    """
    return (data_energy.float().mean() - sample_energy.float().mean()) / temperature


# ----------------------------------------------------------------------------------------------------------------
# One iteration
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class StepOutput:
    """Scalars of one iteration (python floats) and, optionally, the revised tensors for logging."""

    loss_energy: float
    loss_generator: float
    loss_encoder: float
    energy_data: float
    energy_samples: float
    recon_sse: float
    proposal_gap: float
    extras: dict = field(default_factory=dict)

    @property
    def energy_gap(self) -> float:
        return abs(self.energy_data - self.energy_samples)

    def as_dict(self) -> dict[str, float]:
        d = {k: v for k, v in asdict(self).items() if k != "extras"}
        d["energy_gap"] = self.energy_gap
        return d

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in self.as_dict().values())


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") and isinstance(module.module, nn.Module) else module


def dual_mcmc_step(
    data: torch.Tensor,
    energy: nn.Module,
    generator: nn.Module,
    encoder: nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer, torch.optim.Optimizer],
    config: TeachingConfig,
    *,
    backward: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], object] | None = None,
    unwrap: Callable[[nn.Module], nn.Module] | None = None,
    keep_tensors: bool = False,
    memory_format: torch.memory_format | None = None,
    chain_compiler: Callable[[Callable], Callable] | None = None,
) -> StepOutput:
    """One Dual-MCMC teaching iteration, in the authors' order.

    1. ``z ~ N(0, I)``, ``x0 = G(z)``, ``x~ = T^x(x0)`` (x-chain on E).
    2. ``(mu, logvar) = q(x)``, ``z0 = mu + sigma * eps``, ``z~ = T^z(z0 | x)``; generator step on
       :func:`generator_loss` with ``G(z~)`` and the same ``x0``.
    3. encoder step on :func:`encoder_loss` with ``(mu, logvar)`` and ``q(x~)``.
    4. ``x1 = G(z)`` with the *updated* generator (same ``z``), ``x1 = T^x(x1)`` when ``rerun_chain_for_energy``;
       energy step on :func:`energy_loss` ``(E(x), E(x1))``.

    Args:
        data: real images ``[B, C, H, W]`` in ``[-1, 1]`` on the models' device.
        energy / generator / encoder: the models (possibly DDP-wrapped: forwards that need gradients go through
            them; the MCMC chains run through ``unwrap(model)``).
        optimizers: ``(opt_energy, opt_generator, opt_encoder)``.
        backward: ``loss -> None`` (``accelerator.backward`` for mixed precision / DDP; default ``loss.backward()``).
        autocast: a context-manager factory for network forwards (``accelerator.autocast``); chain states and
            losses stay float32.
        keep_tensors: put ``x0``, ``x~``, ``x1`` and ``G(z~)`` (detached) in ``StepOutput.extras``.
        memory_format: e.g. ``torch.channels_last``: the data and the x-chain states are laid out in it (convert the
            models too, :func:`hf_dualmcmc.performance.to_memory_format`). Same math, other conv kernels.
        chain_compiler: ``fn -> compiled fn`` applied to the energy function the x-chains call (e.g.
            :func:`hf_dualmcmc.performance.chain_compiler`, ``torch.compile``); ``None`` runs it eagerly.

    All randomness comes from the global torch RNG, in a fixed order: ``z``, x-chain noise, ``eps``, z-chain noise,
    second x-chain noise.
    """
    backward, autocast, unwrap = step_defaults(backward, autocast, unwrap)
    opt_e, opt_g, opt_i = optimizers
    cfg = config
    e_raw, g_raw = unwrap(energy), unwrap(generator)
    batch = data.shape[0]
    latent_dim = g_raw.config.latent_dim
    device = data.device
    layout = (lambda t: t.contiguous(memory_format=memory_format)) if memory_format is not None else (lambda t: t)
    data = layout(data)
    # only the energy is compiled: compiled train-mode BatchNorm updates the generator's running statistics with
    # in-place ops that bump version counters, which the eager graph of ``x0 = G(z)`` (alive during the z-chain) saved
    energy_fn = under_autocast(chain_compiler(e_raw.energy) if chain_compiler is not None else e_raw.energy, autocast)
    decode_fn = under_autocast(g_raw.generate, autocast)

    # 1. generator proposals, revised by the EBM
    z = torch.randn(batch, latent_dim, device=device)
    with autocast():
        x0 = generator(z, return_dict=False)[0]
    x_rev = revise_with_energy(e_raw, energy_fn, layout(x0.detach()), cfg)
    # 2. generator update from both revised pairs
    mean, logvar, z_rev = infer_revised_latents(encoder, g_raw, decode_fn, data, cfg, autocast)
    with autocast():
        recon = generator(z_rev, return_dict=False)[0]
    loss_g = generator_loss(recon, data, x0, x_rev, cfg.data_weight, cfg.generator_teaching_weight)
    optimizer_step(opt_g, loss_g, backward)
    # 3. encoder update from both revised pairs
    with autocast():
        mean_rev, logvar_rev = encoder(x_rev, return_dict=False)
    loss_i = encoder_loss(mean, logvar, z_rev, mean_rev, logvar_rev, z, cfg.data_weight, cfg.encoder_teaching_weight)
    optimizer_step(opt_i, loss_i, backward)
    # 4. energy update: data against (revised) proposals of the updated generator
    loss_e, e_data, e_samples, x1 = energy_update(
        energy, e_raw, g_raw, z, data, opt_e, cfg, energy_fn, backward=backward, autocast=autocast, layout=layout
    )

    out = StepOutput(
        loss_energy=loss_e.item(),
        loss_generator=loss_g.item(),
        loss_encoder=loss_i.item(),
        energy_data=e_data.float().mean().item(),
        energy_samples=e_samples.float().mean().item(),
        recon_sse=sum_squared_error(recon.detach(), data).item() / batch,
        proposal_gap=sum_squared_error(x0.detach(), x_rev).item() / batch,
    )
    if keep_tensors:
        out.extras = {
            "proposals": x0.detach(),
            "revised": x_rev,
            "samples": x1.detach(),
            "reconstructions": recon.detach(),
        }
    return out


def step_defaults(backward, autocast, unwrap):
    """The defaults of a step's hooks: ``loss.backward()``, no autocast, unwrap ``.module`` (DDP)."""
    return backward or (lambda loss: loss.backward()), autocast or _null_context, unwrap or _unwrap


def under_autocast(fn: Callable[[torch.Tensor], torch.Tensor], autocast: Callable[[], object]):
    """``fn`` called inside ``autocast()``: the network call a chain makes (its state stays float32)."""

    def call(x: torch.Tensor) -> torch.Tensor:
        with autocast():
            return fn(x)

    return call


def revise_with_energy(e_raw: nn.Module, energy_fn: Callable, x: torch.Tensor, config: TeachingConfig) -> torch.Tensor:
    """The x-chain ``x~ = T^x(x)`` with the config's steps, step size and noise (:attr:`TeachingConfig.chain_noise`),
    run on the unwrapped energy ``e_raw`` (``energy_fn`` calls it); returns the detached float32 samples."""
    with chain_mode(e_raw):
        return energy_langevin(energy_fn, x, config.num_steps, config.step_size, config.chain_noise).sample


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, backward: Callable[[torch.Tensor], None]):
    """``backward(loss)``, ``step``, ``zero_grad`` (to None): one parameter update.

    Gradients are cleared after the step (they are ``None`` before every backward: nothing else writes ``.grad``),
    so that with Accelerate's gradient accumulation, where ``step`` and ``zero_grad`` of a prepared optimizer act
    only on the last micro-batch, the gradients of the micro-batches add up.
    """
    backward(loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def infer_revised_latents(
    encoder: nn.Module,
    g_raw: nn.Module,
    decode_fn: Callable,
    data: torch.Tensor,
    config: TeachingConfig,
    autocast: Callable[[], object],
):
    """The data side of the iteration: ``(mu, logvar) = q(x)`` (with its graph), ``z0 = mu + exp(logvar/2) * eps``
    and the z-chain ``z~ = T^z(z0 | x)`` through the unwrapped generator ``g_raw`` (``decode_fn`` calls it).

    Returns ``(mean, logvar, z~)``; ``z~`` is detached float32. Draws ``eps`` then the z-chain noise.
    """
    with autocast():
        mean, logvar = encoder(data, return_dict=False)
    eps = torch.randn_like(mean, dtype=torch.float32)
    z0 = mean.detach().float() + torch.exp(0.5 * logvar.detach().float()) * eps
    with chain_mode(g_raw):
        z_rev = posterior_langevin(
            decode_fn,
            z0,
            data,
            config.num_latent_steps,
            config.latent_step_size,
            config.latent_noise_scale,
            g_raw.config.observation_std,
            g_raw.config.prior_std,
        ).sample
    return mean, logvar, z_rev


def energy_update(
    energy: nn.Module,
    e_raw: nn.Module,
    g_raw: nn.Module,
    z: torch.Tensor,
    data: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    config: TeachingConfig,
    energy_fn: Callable,
    *,
    backward: Callable[[torch.Tensor], None],
    autocast: Callable[[], object],
    layout: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
):
    """The last part of the iteration: ``x1 = G(z)`` with the *updated* generator (same ``z``), revised by a second
    x-chain when ``rerun_chain_for_energy`` (``energy_fn`` calls the unwrapped energy ``e_raw``), then an energy step on
    :func:`energy_loss` ``(E(x), E(x1))`` through ``energy`` (possibly DDP-wrapped).

    Returns ``(loss_e, E(data), E(x1), x1)``.
    """
    with torch.no_grad(), autocast():
        x1 = g_raw.generate(z)
    if config.rerun_chain_for_energy:
        x1 = revise_with_energy(e_raw, energy_fn, layout(x1), config)
    with autocast():
        e_data = energy(data, return_dict=False)[0]
        e_samples = energy(x1.detach(), return_dict=False)[0]
    loss_e = energy_loss(e_data, e_samples, config.temperature)
    optimizer_step(optimizer, loss_e, backward)
    return loss_e, e_data, e_samples, x1


class _null_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def make_optimizers(
    energy: nn.Module | None, generator: nn.Module | None, encoder: nn.Module | None, config: TeachingConfig
) -> tuple[torch.optim.Adam | None, torch.optim.Adam | None, torch.optim.Adam | None]:
    """The authors' three Adam optimizers (betas (0, 0.9), coupled L2 weight decay); ``None`` for a missing network
    (the baselines of :mod:`hf_dualmcmc.baselines` train only some of the three)."""

    def adam(module, lr, weight_decay):
        return (
            None
            if module is None
            else torch.optim.Adam(module.parameters(), lr=lr, betas=config.betas, weight_decay=weight_decay)
        )

    return (
        adam(energy, config.lr_energy, config.weight_decay_energy),
        adam(generator, config.lr_generator, config.weight_decay_generator),
        adam(encoder, config.lr_encoder, config.weight_decay_encoder),
    )


def make_schedulers(optimizers, config: TeachingConfig) -> list[torch.optim.lr_scheduler.ExponentialLR]:
    """ExponentialLR(gamma=lr_decay) per optimizer (``None`` entries skipped), to be stepped once at the start of
    every epoch after the first."""
    return [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay) for opt in optimizers if opt is not None]


__all__ = [
    "TEACHING_METHODS",
    "StepOutput",
    "TeachingConfig",
    "dual_mcmc_step",
    "encoder_data_term",
    "encoder_loss",
    "encoder_teaching_term",
    "energy_loss",
    "energy_update",
    "gaussian_nll",
    "generator_data_term",
    "generator_loss",
    "generator_teaching_term",
    "infer_revised_latents",
    "make_optimizers",
    "make_schedulers",
    "optimizer_step",
    "revise_with_energy",
    "sum_squared_error",
]

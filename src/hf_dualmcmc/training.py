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

from .langevin import chain_mode, energy_langevin, mcmc_temperature, posterior_langevin

TEACHING_METHODS = ("dual_mcmc", "short_run", "cooperative", "inference_only")


@dataclass
class TeachingConfig:
    """Constants of one Dual-MCMC iteration; defaults are the authors' CIFAR-10 values.

    Attributes:
        x_steps / x_step_size / x_noise: x-chain (``e_l_steps`` 30, ``e_l_step_size`` delta 0.5 (CelebA 0.3),
            ``e_n_step_size`` sigma_n 0.001).
        z_steps / z_step_size / z_noise: z-chain (``l_steps`` 10, ``l_step_size`` 0.1, ``n_step_size`` 0.1).
        g_factor / s_factor / i_factor: ``Gfactor`` 1, ``Sfactor`` 50 (CelebA 70), ``Ifactor`` 0.1.
        use_temp: divide the energy loss by ``mcmc_temp = (x_noise / x_step_size)^2``.
        use_noise: add the Langevin noise in the x-chain (off: gradient descent on E).
        fine_tune: the energy update contrasts data with the second x-chain run from the *updated* generator
            (off: with the updated generator's raw proposals).
        lr_* / betas / weight_decay_*: Adam (coupled L2 weight decay, not AdamW).
        lr_decay: ExponentialLR gamma, stepped once per epoch (lr = base * gamma^epoch).
        explode_threshold: the divergence guard's bound on ``|mean E(data) - mean E(samples)|``.
        method: which learning scheme the iteration runs (see :mod:`hf_dualmcmc.baselines`): ``"dual_mcmc"`` (this
            module's :func:`dual_mcmc_step`, the default), or the paper's baselines ``"short_run"`` (EBM only,
            noise-initialised x-chain), ``"cooperative"`` (EBM + generator, CoopNets) and ``"inference_only"``
            (generator + encoder, no EBM).
        noise_init_range: ``short_run`` only: the x-chain starts from ``Uniform[-r, r]`` (1 for images in
            ``[-1, 1]``, as Nijkamp et al.'s short-run EBM; the data's extent for 2-D toys).
    """

    x_steps: int = 30
    x_step_size: float = 0.5
    x_noise: float = 0.001
    z_steps: int = 10
    z_step_size: float = 0.1
    z_noise: float = 0.1
    g_factor: float = 1.0
    s_factor: float = 50.0
    i_factor: float = 0.1
    use_temp: bool = True
    use_noise: bool = True
    fine_tune: bool = True
    lr_energy: float = 1e-4
    lr_generator: float = 3e-4
    lr_encoder: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    weight_decay_energy: float = 0.0
    weight_decay_generator: float = 5e-4
    weight_decay_encoder: float = 5e-4
    lr_decay: float = 0.998
    explode_threshold: float = 1e4
    method: str = "dual_mcmc"
    noise_init_range: float = 1.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.betas = tuple(self.betas)
        for name in ("x_steps", "z_steps"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.x_step_size <= 0:
            raise ValueError(f"x_step_size must be > 0, got {self.x_step_size}")
        if self.method not in TEACHING_METHODS:
            raise ValueError(f"method must be one of {TEACHING_METHODS}, got {self.method!r}")
        if not self.noise_init_range > 0:
            raise ValueError(f"noise_init_range must be > 0, got {self.noise_init_range}")

    @property
    def temperature(self) -> float:
        """``mcmc_temp`` by which the energy loss is divided (1 when ``use_temp`` is off)."""
        return mcmc_temperature(self.x_step_size, self.x_noise) if self.use_temp else 1.0

    @property
    def chain_noise(self) -> float:
        """The x-chain's noise: ``x_noise``, or 0 without ``use_noise`` (gradient descent on ``E``)."""
        return self.x_noise if self.use_noise else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


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


def generator_loss(
    reconstruction: torch.Tensor,
    data: torch.Tensor,
    proposal: torch.Tensor,
    revised: torch.Tensor,
    g_factor: float = 1.0,
    s_factor: float = 50.0,
) -> torch.Tensor:
    r"""Generator objective: ``KL(Q~_{phi_t,theta_t} || P_theta) + KL(P~_{theta_t,alpha_t} || P_theta)`` (paper Eq. 8).

    With ``p_theta(x|z) = N(G(z), sigma^2 I)`` both KL terms reduce (up to constants absorbed in the factors) to
    squared errors on the revised pairs:

    * ``Q~`` pair ``(x, z~)`` (data, z-chain-revised latent): ``||G(z~) - x||^2`` -- learn from data;
    * ``P~`` pair ``(x~, z)`` (x-chain-revised sample, its latent): ``||G(z) - x~||^2`` -- the generator absorbs the
      EBM's MCMC revision ("MCMC teaching").

    ``loss = g_factor * ||G(z~) - x||^2 / B + s_factor * ||G(z) - x~||^2 / B`` (sums over pixels and batch).
    ``reconstruction = G(z~)`` and ``proposal = G(z)`` carry the graph; ``data`` and ``revised`` are targets.
    """
    b = data.shape[0]
    return (
        g_factor * sum_squared_error(reconstruction, data.detach()) / b
        + s_factor * sum_squared_error(proposal, revised.detach()) / b
    )


def encoder_loss(
    data_mean: torch.Tensor,
    data_logvar: torch.Tensor,
    revised_latent: torch.Tensor,
    sample_mean: torch.Tensor,
    sample_logvar: torch.Tensor,
    prior_latent: torch.Tensor,
    g_factor: float = 1.0,
    i_factor: float = 0.1,
) -> torch.Tensor:
    r"""Encoder objective: ``KL(Q~_{phi_t,theta_t} || Q_phi) + KL(P~_{theta_t,alpha_t} || Pi_{alpha,phi})`` (Eq. 9).

    Both reduce to negative log-likelihoods of ``q_phi(z|x)`` on the revised pairs:

    * on ``Q~``: ``-log q_phi(z~ | x)`` -- the encoder learns to land where the z-chain takes its draw (data side);
    * on ``P~``: ``-log q_phi(z | x~)`` -- the encoder learns to invert the generator on EBM-revised samples.

    ``loss = g_factor * mean_i NLL(z~_i | x_i) + i_factor * mean_i NLL(z_i | x~_i)``.
    """
    return g_factor * gaussian_nll(revised_latent.detach(), data_mean, data_logvar).mean() + i_factor * gaussian_nll(
        prior_latent.detach(), sample_mean, sample_logvar
    ).mean()


def energy_loss(data_energy: torch.Tensor, sample_energy: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    r"""EBM objective: ``KL(Q~ || Pi_{alpha,phi}) - KL(P~ || Pi_{alpha,phi})`` (paper Eq. 7).

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
    4. ``x1 = G(z)`` with the *updated* generator (same ``z``), ``x1 = T^x(x1)`` when ``fine_tune``; energy step on
       :func:`energy_loss` ``(E(x), E(x1))``.

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
    loss_g = generator_loss(recon, data, x0, x_rev, cfg.g_factor, cfg.s_factor)
    optimizer_step(opt_g, loss_g, backward)
    # 3. encoder update from both revised pairs
    with autocast():
        mean_rev, logvar_rev = encoder(x_rev, return_dict=False)
    loss_i = encoder_loss(mean, logvar, z_rev, mean_rev, logvar_rev, z, cfg.g_factor, cfg.i_factor)
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
        out.extras = {"proposals": x0.detach(), "revised": x_rev, "samples": x1.detach(), "reconstructions": recon.detach()}
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
        return energy_langevin(energy_fn, x, config.x_steps, config.x_step_size, config.chain_noise).sample


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, backward: Callable[[torch.Tensor], None]):
    """``zero_grad`` (to None), ``backward(loss)``, ``step``: one parameter update."""
    optimizer.zero_grad(set_to_none=True)
    backward(loss)
    optimizer.step()


def infer_revised_latents(encoder: nn.Module, g_raw: nn.Module, decode_fn: Callable, data: torch.Tensor,
                          config: TeachingConfig, autocast: Callable[[], object]):
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
            decode_fn, z0, data, config.z_steps, config.z_step_size, config.z_noise,
            g_raw.config.observation_std, g_raw.config.prior_std,
        ).sample
    return mean, logvar, z_rev


def energy_update(energy: nn.Module, e_raw: nn.Module, g_raw: nn.Module, z: torch.Tensor, data: torch.Tensor,
                  optimizer: torch.optim.Optimizer, config: TeachingConfig, energy_fn: Callable, *,
                  backward: Callable[[torch.Tensor], None], autocast: Callable[[], object],
                  layout: Callable[[torch.Tensor], torch.Tensor] = lambda t: t):
    """The last part of the iteration: ``x1 = G(z)`` with the *updated* generator (same ``z``), revised by a second
    x-chain when ``fine_tune`` (``energy_fn`` calls the unwrapped energy ``e_raw``), then an energy step on
    :func:`energy_loss` ``(E(x), E(x1))`` through ``energy`` (possibly DDP-wrapped).

    Returns ``(loss_e, E(data), E(x1), x1)``.
    """
    with torch.no_grad(), autocast():
        x1 = g_raw.generate(z)
    if config.fine_tune:
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
        return None if module is None else torch.optim.Adam(module.parameters(), lr=lr, betas=config.betas, weight_decay=weight_decay)

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
    "encoder_loss",
    "energy_loss",
    "energy_update",
    "gaussian_nll",
    "generator_loss",
    "infer_revised_latents",
    "make_optimizers",
    "make_schedulers",
    "optimizer_step",
    "revise_with_energy",
    "sum_squared_error",
]

"""Dual-MCMC teaching: the three objectives, one training iteration in the authors' order, and its baselines.

The paper (Cui & Han, NeurIPS 2023, Sec. 3) learns all three models by minimising KL divergences between joint
densities of ``(x, z)``:

* ``P_theta(x, z) = p_theta(x|z) p(z)`` (generator), ``Q_phi(x, z) = p_data(x) q_phi(z|x)`` (data + encoder),
  ``Pi_{alpha,phi}(x, z) = pi_alpha(x) q_phi(z|x)`` (EBM + encoder);
* the MCMC-revised densities ``P~ = T^x_alpha p_theta(x|z) p(z)`` (generator proposals revised by the x-chain) and
  ``Q~ = p_data(x) T^z_theta q_phi(z|x)`` (encoder latents revised by the z-chain).

Each objective below names the KL term it implements; :func:`dual_mcmc_step` runs one iteration in the order of the
authors' code (``docs/official-algorithm.md``); :data:`METHODS` maps ``TeachingConfig.method`` to its step (the
baselines: other steps of the same pieces) and the networks it learns. Every step is ``step(data, energy, generator,
encoder, optimizers, config, **hooks)`` (``optimizers`` from :func:`make_optimizers`; ``hooks``: :class:`StepHooks`)
and returns a :class:`StepOutput`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from .langevin import chain_mode, energy_langevin, posterior_langevin

if TYPE_CHECKING:
    from .training_config import TeachingConfig

NETWORKS = ("energy", "generator", "encoder")  # the order of a step's networks and of its optimizers

# ---- The three objectives ----


def sum_squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b||^2`` summed over every element (float32)."""
    return (a.float() - b.float()).pow(2).sum()


def gaussian_nll(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-log q(z|x)`` up to a constant: ``0.5 sum(logvar) + 0.5 sum((z - mu)^2 / (1e-6 + exp(logvar)))``
    (for any batch size; the authors' version breaks at batch size 1)."""
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


def generator_loss(reconstruction, data, proposal, revised, data_weight=1.0, teaching_weight=50.0) -> torch.Tensor:
    r"""Generator objective (paper Eq. 8): ``KL(Q~_{phi_t,theta_t} || P_theta) + KL(P~_{theta_t,alpha_t} || P_theta)``.

    ``data_weight * ||G(z~) - x||^2 / B + teaching_weight * ||G(z) - x~||^2 / B``: :func:`generator_data_term` and
    :func:`generator_teaching_term`, weighted by ``TeachingConfig.data_weight`` and
    ``TeachingConfig.generator_teaching_weight`` (the authors' ``Gfactor`` 1 and ``Sfactor`` 50).
    """
    data_term, teaching_term = generator_data_term(reconstruction, data), generator_teaching_term(proposal, revised)
    return data_weight * data_term + teaching_weight * teaching_term


def encoder_data_term(data_mean: torch.Tensor, data_logvar: torch.Tensor, revised_latent: torch.Tensor) -> torch.Tensor:
    r"""``KL(Q~_{phi_t,theta_t} || Q_phi)``, the encoder's data term of Eq. 9: ``mean_i -log q_phi(z~_i | x_i)``.

    The encoder learns to land where the z-chain takes its own draw for the data. ``(data_mean, data_logvar) = q(x)``
    carry the graph; the revised latent ``z~`` is a target.
    """
    return gaussian_nll(revised_latent.detach(), data_mean, data_logvar).mean()


def encoder_teaching_term(sample_mean: torch.Tensor, sample_logvar: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    r"""``KL(P~_{theta_t,alpha_t} || Pi_{alpha,phi})``, the encoder's teaching term of Eq. 9: ``mean -log q(z|x~)``.

    The encoder learns to invert the generator on EBM-revised samples: ``(sample_mean, sample_logvar) = q(x~)``
    carry the graph; the latent ``z`` that produced the proposal is a target.
    """
    return gaussian_nll(latent.detach(), sample_mean, sample_logvar).mean()


def encoder_loss(
    data_mean, data_logvar, revised_latent, sample_mean, sample_logvar, latent, data_weight=1.0, teaching_weight=0.1
) -> torch.Tensor:
    r"""Encoder objective (paper Eq. 9): ``KL(Q~_{phi_t,theta_t} || Q_phi) + KL(P~_{theta_t,alpha_t} || Pi_{alpha,phi})``.

    ``data_weight * mean NLL(z~ | x) + teaching_weight * mean NLL(z | x~)``: :func:`encoder_data_term` and
    :func:`encoder_teaching_term`, weighted by ``TeachingConfig.data_weight`` (the same ``Gfactor`` as the
    generator's data term) and ``TeachingConfig.encoder_teaching_weight`` (``Ifactor`` 0.1).
    """
    data_term = encoder_data_term(data_mean, data_logvar, revised_latent)
    return data_weight * data_term + teaching_weight * encoder_teaching_term(sample_mean, sample_logvar, latent)


def energy_loss(data_energy: torch.Tensor, sample_energy: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    r"""EBM objective (paper Eq. 7): ``KL(Q~ || Pi_{alpha,phi}) - KL(P~ || Pi_{alpha,phi})``.

    Its gradient in ``alpha`` is the maximum-likelihood contrast of data against the EBM's revised samples: with
    ``pi_alpha ∝ exp(-E)``, ``loss = (mean E(x_data) - mean E(x~)) / T`` where ``T = mcmc_temp`` when the authors'
    ``use_temp`` is on (the x-chain samples ``exp(-E/T)``).
    """
    return (data_energy.float().mean() - sample_energy.float().mean()) / temperature


def energy_magnitude_term(data_energy: torch.Tensor, sample_energy: torch.Tensor) -> torch.Tensor:
    r"""``mean E(x)^2 + mean E(x~)^2``: the energy-magnitude regulariser of IGEBM (Du & Mordatch 2019, "Implicit
    Generation and Generalization in Energy-Based Models"; the JEM maintainers use a weight of about 0.1). Opt-in
    (``TeachingConfig.energy_magnitude_weight``, default 0): it keeps the energies of data and negatives near 0."""
    return data_energy.float().pow(2).mean() + sample_energy.float().pow(2).mean()


def noise_negative_hinge(data_energy: torch.Tensor, noise_energy: torch.Tensor) -> torch.Tensor:
    r"""``mean_i max(0, max_j E(x_j) - E(x^n_i))``: a hinge (the margin losses of LeCun et al. 2006, "A tutorial on
    energy-based learning") that raises the energy of the noise-started negatives ``x^n`` only while it is
    below the batch's highest data energy; the data energies are targets (detached), so dual-MCMC's own contrast of
    data against generator negatives is left as it is (``TeachingConfig.noise_negative_loss = "hinge"``)."""
    return torch.relu(data_energy.detach().float().max() - noise_energy.float()).mean()


# ---- The pieces of an iteration ----


@dataclass
class StepOutput:
    """An iteration's scalars (floats; ``0.0`` for what a method lacks) and, with ``keep_tensors``, its images."""

    loss_energy: float = 0.0
    loss_generator: float = 0.0
    loss_encoder: float = 0.0
    energy_data: float = 0.0
    energy_samples: float = 0.0
    recon_sse: float = 0.0
    proposal_gap: float = 0.0
    extras: dict = field(default_factory=dict)

    @property
    def energy_gap(self) -> float:
        return abs(self.energy_data - self.energy_samples)

    def as_dict(self) -> dict[str, float]:
        return {**{k: v for k, v in asdict(self).items() if k != "extras"}, "energy_gap": self.energy_gap}

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in self.as_dict().values())


@dataclass
class StepHooks:
    """How a step runs, not what it computes: the keyword arguments of every step.

    Attributes:
        backward: ``loss -> None`` (``accelerator.backward`` for mixed precision / DDP; default ``loss.backward()``).
        autocast: a context-manager factory for network forwards (``accelerator.autocast``); chain states and losses
            stay float32.
        unwrap: the module the MCMC chains run through (``accelerator.unwrap_model``; default: a DDP's ``.module``);
            forwards that need gradients go through the (possibly wrapped) models.
        keep_tensors: put the iteration's images (detached) in ``StepOutput.extras``.
        memory_format: e.g. ``torch.channels_last``: the data and the x-chain states are laid out in it (convert the
            models too, ``hf_dualmcmc.performance.to_memory_format``). Same math, other conv kernels.
        chain_compiler: ``fn -> compiled fn`` applied to the energy function the x-chains call (e.g.
            ``hf_dualmcmc.performance.chain_compiler``, ``torch.compile``); ``None`` runs it eagerly.
    """

    backward: Callable[[torch.Tensor], None] | None = None
    autocast: Callable[[], object] | None = None
    unwrap: Callable[[nn.Module], nn.Module] | None = None
    keep_tensors: bool = False
    memory_format: torch.memory_format | None = None
    chain_compiler: Callable[[Callable], Callable] | None = None

    def __post_init__(self):
        self.backward = self.backward or (lambda loss: loss.backward())
        self.autocast = self.autocast or nullcontext
        self.unwrap = self.unwrap or (lambda m: m.module if isinstance(getattr(m, "module", None), nn.Module) else m)

    def layout(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.memory_format is None else t.contiguous(memory_format=self.memory_format)

    def chain_fn(self, fn: Callable[[torch.Tensor], torch.Tensor], compile: bool = False):
        """``fn`` (compiled by ``chain_compiler`` when ``compile``) called under ``autocast()``: a chain's network."""
        fn = self.chain_compiler(fn) if compile and self.chain_compiler is not None else fn

        def call(x: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return fn(x)

        return call

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """``backward(loss)``, ``step``, ``zero_grad`` (to None). Gradients are cleared after the step, so that with
        Accelerate's gradient accumulation (``step`` / ``zero_grad`` act on the last micro-batch only) they add up."""
        self.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def revise_with_energy(e_raw: nn.Module, energy_fn: Callable, x: torch.Tensor, config: TeachingConfig) -> torch.Tensor:
    """The x-chain ``x~ = T^x(x)`` with the config's steps, step size and noise (:attr:`TeachingConfig.chain_noise`),
    run on the unwrapped energy ``e_raw`` (``energy_fn`` calls it); returns the detached float32 samples."""
    with chain_mode(e_raw):
        return energy_langevin(energy_fn, x, config.num_steps, config.step_size, config.chain_noise).sample


def infer_revised_latents(encoder: nn.Module, g_raw: nn.Module, data, config: TeachingConfig, hooks: StepHooks):
    """The data side: ``(mu, logvar) = q(x)`` (with its graph), ``z0 = mu + exp(logvar/2) * eps`` and the z-chain
    ``z~ = T^z(z0 | x)`` through the unwrapped generator ``g_raw``. Returns ``(mean, logvar, z~)`` (``z~`` detached
    float32); draws ``eps`` then the z-chain noise."""
    with hooks.autocast():
        mean, logvar = encoder(data, return_dict=False)
    eps = torch.randn_like(mean, dtype=torch.float32)
    z0 = mean.detach().float() + torch.exp(0.5 * logvar.detach().float()) * eps
    cfg, g = config, g_raw.config
    with chain_mode(g_raw):
        z_rev = posterior_langevin(
            hooks.chain_fn(g_raw.generate), z0, data, cfg.num_latent_steps, cfg.latent_step_size,
            cfg.latent_noise_scale, g.observation_std, g.prior_std,
        ).sample  # fmt: skip
    return mean, logvar, z_rev


def noise_negatives(
    e_raw: nn.Module, energy_fn: Callable, like: torch.Tensor, config: TeachingConfig, layout=lambda t: t
):
    """Opt-in OOD-robust teaching (``TeachingConfig.noise_negatives``, default 0: off): ``round(noise_negatives * B)``
    extra negatives for the energy, started from ``Uniform[-r, r]`` (``r = noise_init_range``) and revised by their
    own x-chain (``noise_negative_steps`` steps of ``noise_negative_step_size``, the x-chain's noise): the
    noise-initialised short-run EBM's negatives (Nijkamp et al. 2019) mixed into dual-MCMC's generator-initialised
    ones, so that training also raises the energy far from the generator's manifold. ``None`` when off."""
    num = round(config.noise_negatives * like.shape[0])
    if num == 0:
        return None
    x0 = (torch.rand((num, *like.shape[1:]), device=like.device, dtype=torch.float32) * 2 - 1) * config.noise_init_range
    steps = config.num_steps if config.noise_negative_steps is None else config.noise_negative_steps
    step_size = config.noise_negative_step_size or config.step_size
    with chain_mode(e_raw):
        return energy_langevin(energy_fn, layout(x0), steps, step_size, config.chain_noise).sample


def energy_update(energy, e_raw, g_raw, z, data, optimizer, config: TeachingConfig, energy_fn, hooks: StepHooks):
    """``x1 = G(z)`` with the *updated* generator (same ``z``), revised by a second x-chain when
    ``rerun_chain_for_energy``, then an energy step on :func:`energy_loss` ``(E(x), E(x1))`` through ``energy``
    (possibly DDP-wrapped). Opt-in, off by default: :func:`noise_negatives` (drawn after every other random number of
    the iteration) join ``x1`` as negatives (``noise_negative_loss="pool"``) or enter through
    :func:`noise_negative_hinge` (``"hinge"``), and ``energy_magnitude_weight *`` :func:`energy_magnitude_term` is
    added (divided by the same temperature). Returns ``(loss_e, E(data), E(x1), x1)``."""
    with torch.no_grad(), hooks.autocast():
        x1 = g_raw.generate(z)
    if config.rerun_chain_for_energy:
        x1 = revise_with_energy(e_raw, energy_fn, hooks.layout(x1), config)
    extra = noise_negatives(e_raw, energy_fn, x1, config, hooks.layout)
    with hooks.autocast():
        e_data = energy(data, return_dict=False)[0]
        e_samples = energy(x1.detach(), return_dict=False)[0]
        e_extra = None if extra is None else energy(extra, return_dict=False)[0]
    pooled = e_extra is not None and config.noise_negative_loss == "pool"
    negatives = torch.cat([e_samples.float(), e_extra.float()]) if pooled else e_samples
    loss_e = energy_loss(e_data, negatives, config.temperature)
    if e_extra is not None and not pooled:
        loss_e = loss_e + noise_negative_hinge(e_data, e_extra) / config.temperature
    if config.energy_magnitude_weight:
        loss_e = loss_e + config.energy_magnitude_weight * energy_magnitude_term(e_data, negatives) / config.temperature
    hooks.update(optimizer, loss_e)
    return loss_e, e_data, e_samples, x1


def _energies(e_data: torch.Tensor, e_samples: torch.Tensor) -> dict[str, float]:
    return {"energy_data": e_data.float().mean().item(), "energy_samples": e_samples.float().mean().item()}


# ---- One iteration per method ----


def dual_mcmc_step(data, energy, generator, encoder, optimizers, config: TeachingConfig, **hooks) -> StepOutput:
    """One Dual-MCMC teaching iteration, in the authors' order.

    1. ``z ~ N(0, I)``, ``x0 = G(z)``, ``x~ = T^x(x0)`` (x-chain on E).
    2. ``(mu, logvar) = q(x)``, ``z0 = mu + sigma * eps``, ``z~ = T^z(z0 | x)``; generator step on
       :func:`generator_loss` with ``G(z~)`` and the same ``x0``.
    3. encoder step on :func:`encoder_loss` with ``(mu, logvar)`` and ``q(x~)``.
    4. ``x1 = G(z)`` with the *updated* generator (same ``z``), ``x1 = T^x(x1)`` when ``rerun_chain_for_energy``;
       energy step on :func:`energy_loss` ``(E(x), E(x1))``.

    ``data``: real images ``[B, C, H, W]`` in ``[-1, 1]`` on the models' device; ``optimizers``: ``(opt_energy,
    opt_generator, opt_encoder)``; ``hooks``: :class:`StepHooks`. All randomness comes from the global torch RNG, in
    a fixed order: ``z``, x-chain noise, ``eps``, z-chain noise, second x-chain noise.
    """
    h, cfg = StepHooks(**hooks), config
    opt_e, opt_g, opt_i = optimizers
    e_raw, g_raw = h.unwrap(energy), h.unwrap(generator)
    data = h.layout(data)
    # only the energy is compiled: compiled train-mode BatchNorm updates the generator's running statistics with
    # in-place ops that bump version counters, which the eager graph of ``x0 = G(z)`` (alive during the z-chain) saved
    energy_fn = h.chain_fn(e_raw.energy, compile=True)

    # 1. generator proposals, revised by the EBM
    z = torch.randn(data.shape[0], g_raw.config.latent_dim, device=data.device)
    with h.autocast():
        x0 = generator(z, return_dict=False)[0]
    x_rev = revise_with_energy(e_raw, energy_fn, h.layout(x0.detach()), cfg)
    # 2. generator update from both revised pairs
    mean, logvar, z_rev = infer_revised_latents(encoder, g_raw, data, cfg, h)
    with h.autocast():
        recon = generator(z_rev, return_dict=False)[0]
    loss_g = generator_loss(recon, data, x0, x_rev, cfg.data_weight, cfg.generator_teaching_weight)
    h.update(opt_g, loss_g)
    # 3. encoder update from both revised pairs
    with h.autocast():
        mean_rev, logvar_rev = encoder(x_rev, return_dict=False)
    loss_i = encoder_loss(mean, logvar, z_rev, mean_rev, logvar_rev, z, cfg.data_weight, cfg.encoder_teaching_weight)
    h.update(opt_i, loss_i)
    # 4. energy update: data against (revised) proposals of the updated generator
    loss_e, e_data, e_samples, x1 = energy_update(energy, e_raw, g_raw, z, data, opt_e, cfg, energy_fn, h)

    x0, recon, x1 = x0.detach(), recon.detach(), x1.detach()
    return StepOutput(
        loss_energy=loss_e.item(),
        loss_generator=loss_g.item(),
        loss_encoder=loss_i.item(),
        **_energies(e_data, e_samples),
        recon_sse=sum_squared_error(recon, data).item() / data.shape[0],
        proposal_gap=sum_squared_error(x0, x_rev).item() / data.shape[0],
        extras=dict(proposals=x0, revised=x_rev, samples=x1, reconstructions=recon) if h.keep_tensors else {},
    )


def short_run_step(data, energy, generator, encoder, optimizers, config: TeachingConfig, **hooks) -> StepOutput:
    """The noise-initialised short-run EBM (Nijkamp et al. 2019): ``x0 ~ Uniform[-r, r]`` with the data's shape
    (``r = noise_init_range``), ``x~ = T^x(x0)`` with the dual-MCMC chain settings; energy step on :func:`energy_loss`
    ``(E(x), E(x~))`` (``rerun_chain_for_energy`` does not apply: no generator to update between two chains)."""
    h, cfg = StepHooks(**hooks), config
    e_raw, data = h.unwrap(energy), h.layout(data)
    x0 = (torch.rand(data.shape, device=data.device, dtype=torch.float32) * 2 - 1) * cfg.noise_init_range
    x_rev = revise_with_energy(e_raw, h.chain_fn(e_raw.energy, compile=True), h.layout(x0), cfg)
    with h.autocast():
        e_data = energy(data, return_dict=False)[0]
        e_samples = energy(x_rev, return_dict=False)[0]
    loss_e = energy_loss(e_data, e_samples, cfg.temperature)
    h.update(optimizers[0], loss_e)
    return StepOutput(
        loss_energy=loss_e.item(),
        **_energies(e_data, e_samples),
        proposal_gap=sum_squared_error(x0, x_rev).item() / data.shape[0],
        extras=dict(proposals=x0, revised=x_rev, samples=x_rev) if h.keep_tensors else {},
    )


def cooperative_step(data, energy, generator, encoder, optimizers, config: TeachingConfig, **hooks) -> StepOutput:
    """Cooperative learning (CoopNets, Xie et al. 2018): dual-MCMC without the encoder and without learning from data.

    1. ``z ~ N(0, I)``, ``x0 = G(z)``, ``x~ = T^x(x0)``.
    2. generator step on ``generator_teaching_weight *`` :func:`generator_teaching_term` (``||G(z) - x~||^2 / B``:
       the generator absorbs the EBM's revision; there is no data term).
    3. energy step as in dual-MCMC (updated generator, second chain when ``rerun_chain_for_energy``).
    """
    h, cfg = StepHooks(**hooks), config
    opt_e, opt_g, _ = optimizers
    e_raw, g_raw, data = h.unwrap(energy), h.unwrap(generator), h.layout(data)
    energy_fn = h.chain_fn(e_raw.energy, compile=True)
    z = torch.randn(data.shape[0], g_raw.config.latent_dim, device=data.device)
    with h.autocast():
        x0 = generator(z, return_dict=False)[0]
    x_rev = revise_with_energy(e_raw, energy_fn, h.layout(x0.detach()), cfg)
    loss_g = cfg.generator_teaching_weight * generator_teaching_term(x0, x_rev)
    h.update(opt_g, loss_g)
    loss_e, e_data, e_samples, x1 = energy_update(energy, e_raw, g_raw, z, data, opt_e, cfg, energy_fn, h)
    return StepOutput(
        loss_energy=loss_e.item(),
        loss_generator=loss_g.item(),
        **_energies(e_data, e_samples),
        proposal_gap=sum_squared_error(x0.detach(), x_rev).item() / data.shape[0],
        extras=dict(proposals=x0.detach(), revised=x_rev, samples=x1.detach()) if h.keep_tensors else {},
    )


def inference_only_step(data, energy, generator, encoder, optimizers, config: TeachingConfig, **hooks) -> StepOutput:
    """Generator + encoder with encoder-initialised posterior MCMC and no EBM (the paper's "Inf" / "Inf+L"):
    ``z~ = T^z(z0 | x)`` from ``z0 ~ q(z|x)``; generator step on ``data_weight *`` :func:`generator_data_term`
    (``||G(z~) - x||^2 / B``), encoder step on ``data_weight *`` :func:`encoder_data_term` (no teaching terms)."""
    h, cfg = StepHooks(**hooks), config
    _, opt_g, opt_i = optimizers
    g_raw, data = h.unwrap(generator), h.layout(data)
    mean, logvar, z_rev = infer_revised_latents(encoder, g_raw, data, cfg, h)
    with h.autocast():
        recon = generator(z_rev, return_dict=False)[0]
    loss_g = cfg.data_weight * generator_data_term(recon, data)
    h.update(opt_g, loss_g)
    loss_i = cfg.data_weight * encoder_data_term(mean, logvar, z_rev)
    h.update(opt_i, loss_i)
    return StepOutput(
        loss_generator=loss_g.item(),
        loss_encoder=loss_i.item(),
        recon_sse=sum_squared_error(recon.detach(), data).item() / data.shape[0],
        extras=dict(reconstructions=recon.detach(), latents=z_rev) if h.keep_tensors else {},
    )


class Method(NamedTuple):
    step: Callable[..., StepOutput]
    networks: tuple[str, ...]  # those of NETWORKS the method learns (and exports)


# ``TeachingConfig.method`` -> its step and networks. A new method: write its step (the signature above) and add it.
METHODS: dict[str, Method] = {
    "dual_mcmc": Method(dual_mcmc_step, ("energy", "generator", "encoder")),
    "short_run": Method(short_run_step, ("energy",)),
    "cooperative": Method(cooperative_step, ("energy", "generator")),
    "inference_only": Method(inference_only_step, ("generator", "encoder")),
}


def teaching_step(data, energy, generator, encoder, optimizers, config: TeachingConfig, **hooks) -> StepOutput:
    """One iteration of ``config.method`` (:data:`METHODS`), after checking that its networks are given."""
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {config.method!r}")
    given = dict(zip(NETWORKS, (energy, generator, encoder)))
    missing = [name for name in METHODS[config.method].networks if given[name] is None]
    if missing:
        raise ValueError(f"method {config.method!r} needs the {', '.join(missing)} model(s) (got None)")
    if len(optimizers) != 3:
        raise ValueError(f"optimizers must be (opt_energy, opt_generator, opt_encoder), got {len(optimizers)} items")
    return METHODS[config.method].step(data, energy, generator, encoder, optimizers, config, **hooks)


def make_optimizers(energy, generator, encoder, config: TeachingConfig) -> tuple[torch.optim.Adam | None, ...]:
    """The authors' three Adam optimizers (betas (0, 0.9), coupled L2 weight decay), in the order of ``NETWORKS``;
    ``None`` for a missing network (a method that learns only some of the three)."""

    def adam(module, lr, weight_decay):
        if module is not None:
            return torch.optim.Adam(module.parameters(), lr=lr, betas=config.betas, weight_decay=weight_decay)

    return (
        adam(energy, config.lr_energy, config.weight_decay_energy),
        adam(generator, config.lr_generator, config.weight_decay_generator),
        adam(encoder, config.lr_encoder, config.weight_decay_encoder),
    )


def make_schedulers(optimizers, config: TeachingConfig) -> list[torch.optim.lr_scheduler.ExponentialLR]:
    """ExponentialLR(gamma=lr_decay) per optimizer (``None`` entries skipped), to be stepped once at the start of
    every epoch after the first."""
    return [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay) for opt in optimizers if opt is not None]

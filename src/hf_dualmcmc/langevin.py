"""Langevin revision: the two MCMC chains of Dual-MCMC teaching, as small pure functions.

* :func:`energy_langevin` -- the x-chain ``T^x_alpha``: revises generator proposals by descending the energy,
  ``x <- x - 0.5 * delta^2 * grad_x sum_i E(x_i) + sigma_n * N(0, I)`` (step and noise decoupled, as the authors run
  it; exact Langevin for ``exp(-E(x)/T)`` with ``T = (sigma_n / delta)^2``, see :func:`mcmc_temperature`).
* :func:`posterior_langevin` -- the z-chain ``T^z_theta``: revises encoder latents towards the generator posterior,
  ``z <- z - 0.5 * s^2 * (grad_z ||G(z) - x||^2_sum / sigma^2 + z / prior_std^2) + n * N(0, I)``.

Both chains start from a detached copy, keep their state in float32 (also under bf16/fp16 autocast, where a
low-precision state would silently drop the small updates), differentiate with respect to the chain state only
(:func:`chain_mode` freezes the networks' parameters, so nothing accumulates in ``.grad``, and computes each
spectral-normalised weight once per chain), and return detached float32 tensors. They work inside
``torch.no_grad()`` (the pipeline's ``__call__``) because they enable gradients themselves.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import nn
from torch.nn.utils import parametrize

GeneratorLike = torch.Generator | list[torch.Generator] | None


@dataclass
class LangevinOutput:
    """Result of a chain.

    Attributes:
        sample: the revised state (float32, detached): images for the x-chain, latents for the z-chain.
        energies: ``[num_steps + 1, batch]`` per-sample energies ``E(x_t)`` (x-chain) or posterior potentials
            ``||G(z_t) - x||^2 / sigma^2 + ||z_t||^2 / (2 prior_std^2)`` (z-chain) at every state, the initial one
            first; ``None`` unless requested.
        errors: z-chain only: ``[num_steps + 1, batch]`` per-sample squared reconstruction errors ``||G(z_t) - x||^2``;
            ``None`` unless requested.
    """

    sample: torch.Tensor
    energies: torch.Tensor | None = None
    errors: torch.Tensor | None = None


def mcmc_temperature(step_size: float, noise_scale: float) -> float:
    """Temperature ``T = (noise_scale / step_size)^2`` at which the decoupled x-chain is exact Langevin for ``E``.

    The official energy loss is divided by it (``use_temp``): 4e-6 for CIFAR-10 (delta 0.5, sigma_n 0.001).
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    return (noise_scale / step_size) ** 2


@contextmanager
def chain_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Run MCMC chains through ``modules``: parameters frozen, spectral-norm weights cached.

    Inside, ``requires_grad`` is off for every parameter (gradients flow to the chain state only, and no ``.grad`` is
    touched) and ``torch.nn.utils.parametrize.cached()`` is active, so each spectral-normalised weight ``W / sigma``
    (and its power iteration, in train mode) is computed once for the whole chain instead of at every step. Flags
    are restored on exit, also after an exception. Pass unwrapped modules (``accelerator.unwrap_model``), not DDP.
    """
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    with ExitStack() as stack:
        for p in params:
            p.requires_grad_(False)
        stack.callback(lambda: [p.requires_grad_(f) for p, f in zip(params, flags)])
        stack.enter_context(parametrize.cached())
        yield


def _energy_fn(energy: nn.Module | Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    if hasattr(energy, "energy") and callable(energy.energy):
        return energy.energy
    return energy


def _decode_fn(decoder: nn.Module | Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    if hasattr(decoder, "generate") and callable(decoder.generate):
        return decoder.generate
    return decoder


# the rules for the chains' and the pipeline's settings, by argument name (errors name the argument)
MIN_INT = {"num_steps": 0, "num_inference_steps": 0, "num_latent_steps": 0, "batch_size": 1, "num_points": 2}
POSITIVE = ("step_size", "latent_step_size", "noise_init_range", "observation_std", "prior_std")  # else >= 0
CHOICES = {
    "output_type": ("pil", "np", "pt", "latent"),
    "proposal": ("generator", "noise"),
    "bn_stats": ("batch", "running"),
}


def _check_int(value, name: str, minimum: int = 0) -> int:
    """``value`` as an ``int`` (numpy integers included), else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _checked(defaults=None, /, **settings) -> list:
    """``settings`` checked by name (``None`` values taken from the mapping ``defaults``): ``CHOICES`` ones as given,
    ``MIN_INT`` ones as ``int``, the others as finite ``float`` (``> 0`` for ``POSITIVE`` names, ``>= 0`` for noise
    scales), numpy scalars too; else a ``ValueError`` naming the setting."""
    out = []
    for name, value in settings.items():
        value = defaults.get(name) if value is None and defaults is not None else value
        positive = name in POSITIVE
        if name in CHOICES:
            if value not in CHOICES[name]:
                raise ValueError(f"{name} must be one of {CHOICES[name]}, got {value!r}")
        elif name in MIN_INT:
            value = _check_int(value, name, MIN_INT[name])
        elif (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > 0 if positive else value >= 0)
        ):
            value = float(value)
        else:
            raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
        out.append(value)
    return out


def _check_finite(x: torch.Tensor, name: str, low: float = -math.inf, high: float = math.inf) -> None:
    """``ValueError`` naming ``name`` unless ``x`` is a non-empty batch of finite values in ``[low, high]`` (+-1e-4)."""
    if x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"{name} is empty: expected at least one sample, got shape {tuple(x.shape)}")
    lo, hi = x.min().item(), x.max().item()
    if not (math.isfinite(lo) and math.isfinite(hi) and lo >= low - 1e-4 and hi <= high + 1e-4):
        raise ValueError(f"{name} values must be finite, in [{low:g}, {high:g}]; got min {lo:.4g}, max {hi:.4g}")


def _generators(generator, batch_size: int) -> GeneratorLike:
    """``generator`` as a ``torch.Generator`` or one per sample (a list); integers seed CPU generators."""
    many = isinstance(generator, (list, tuple))
    if many and len(generator) != batch_size:
        raise ValueError(f"generator: a list needs one per sample: expected {batch_size}, got {len(generator)}")
    what = "generator (a torch.Generator, an integer seed, or a list of them)"
    gens = [
        g if isinstance(g, torch.Generator) else torch.Generator().manual_seed(_check_int(g, what, -(2**63)))
        for g in (generator if many else [] if generator is None else [generator])
    ]
    return gens if many else (gens or [None])[0]


def _after_step(callback: Callable | None, step: int, state: torch.Tensor) -> torch.Tensor:
    """Call ``callback(step, state)``; a tensor it returns replaces the chain state (as a float32 copy)."""
    new = callback(step, state) if callback is not None else None
    if new is None or new is state:
        return state
    if not isinstance(new, torch.Tensor) or new.shape != state.shape:
        got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
        raise ValueError(
            f"callback must return None or a tensor of the chain state's shape {tuple(state.shape)}, got {got}"
        )
    return new.detach().to(device=state.device, dtype=torch.float32).clone()


def energy_langevin(
    energy: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    num_steps: int,
    step_size: float,
    noise_scale: float,
    *,
    generator: GeneratorLike = None,
    return_energies: bool = False,
    callback: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
) -> LangevinOutput:
    r"""The EBM-guided x-chain ``T^x_alpha`` (Langevin revision of generator proposals).

    ``x_{t+1} = x_t - 0.5 * step_size^2 * d/dx sum_i E(x_t^i) + noise_scale * N(0, I)``, ``num_steps`` times, no clamping.

    Args:
        energy: a :class:`~hf_dualmcmc.DualMCMCEnergyModel` (its ``.energy``) or any callable ``x -> [B]`` energies.
            Modules are run under :func:`chain_mode`.
        x: initial states ``[B, ...]`` (generator proposals in ``[-1, 1]``); copied, never modified.
        num_steps: number of updates (30 in training, 70 for the official sampler).
        step_size: ``delta`` (0.5 CIFAR-10 / 0.3 CelebA training, 0.4 at sampling).
        noise_scale: ``sigma_n`` (0.001); 0 gives gradient descent.
        generator: ``torch.Generator`` (or one per sample) for the noise.
        return_energies: also return ``[num_steps + 1, B]`` energies (one extra forward at the end).
        callback: called as ``callback(step, x)`` after every update (``step`` from 0) with the float32 state; if it
            returns a tensor (same shape), that tensor replaces the state for the rest of the chain, else (``None``,
            or ``x`` itself, possibly modified in place) the chain goes on from ``x``.
    """
    num_steps, step_size, noise_scale = _checked(num_steps=num_steps, step_size=step_size, noise_scale=noise_scale)
    fn = _energy_fn(energy)
    modules = [energy] if isinstance(energy, nn.Module) else []
    x = x.detach().to(torch.float32).clone()
    trajectory = []
    coef = -0.5 * step_size**2
    with chain_mode(*modules), torch.enable_grad():
        for step in range(num_steps):
            x.requires_grad_(True)
            e = fn(x)
            (grad,) = torch.autograd.grad(e.sum(), x)
            x = x.detach()
            if return_energies:
                trajectory.append(e.detach().float())
            x.add_(grad.to(torch.float32), alpha=coef)
            if noise_scale > 0:
                x.add_(
                    randn_tensor(x.shape, generator=generator, device=x.device, dtype=torch.float32), alpha=noise_scale
                )
            x = _after_step(callback, step, x)
        if return_energies:
            with torch.no_grad():
                trajectory.append(fn(x).detach().float())
    energies = torch.stack(trajectory) if return_energies else None
    return LangevinOutput(sample=x, energies=energies)


def posterior_potential(
    decoded: torch.Tensor, x: torch.Tensor, z: torch.Tensor, observation_std: float, prior_std: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(potential, squared error)`` of the z-chain: ``||G(z) - x||^2 / sigma^2 + ||z||^2 / (2 prior^2)``.

    This is the authors' posterior potential: the likelihood term is ``SSE / sigma^2`` (not ``SSE / (2 sigma^2)``),
    i.e. an effective observation variance of ``sigma^2 / 2``.
    """
    sse = (decoded.float() - x.float()).pow(2).flatten(1).sum(1)
    prior = z.float().pow(2).flatten(1).sum(1) / (2 * prior_std**2)
    return sse / observation_std**2 + prior, sse


def posterior_langevin(
    decoder: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    x: torch.Tensor,
    num_steps: int,
    step_size: float,
    noise_scale: float,
    observation_std: float,
    prior_std: float = 1.0,
    *,
    generator: GeneratorLike = None,
    return_energies: bool = False,
    return_errors: bool = False,
    callback: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
) -> LangevinOutput:
    r"""The generator-posterior z-chain ``T^z_theta`` (Langevin revision of encoder latents for observed ``x``).

    ``z_{t+1} = z_t - 0.5 * s^2 * (grad_z ||G(z_t) - x||^2_sum / sigma^2 + z_t / prior_std^2) + n * N(0, I)``.

    Args:
        decoder: a :class:`~hf_dualmcmc.DualMCMCGeneratorModel` (its ``.generate``) or any callable ``z -> x``.
            In train mode its BatchNorm uses batch statistics and updates running statistics at every step, as the
            authors' training does.
        z: initial latents ``[B, latent_dim]`` (an encoder draw); copied, never modified.
        x: the observed images ``[B, C, H, W]`` in ``[-1, 1]``.
        num_steps / step_size / noise_scale: ``l_steps`` (10), ``s`` (0.1), ``n`` (0.1).
        observation_std / prior_std: ``sigma`` of ``p(x|z)`` (0.3) and of the prior (1.0).
        return_energies / return_errors: also return ``[num_steps + 1, B]`` potentials / squared errors (one extra
            decoder forward at the end).
        callback: as for :func:`energy_langevin`, with the latents ``z``.
    """
    num_steps, step_size, noise_scale, observation_std, prior_std = _checked(
        num_steps=num_steps,
        step_size=step_size,
        noise_scale=noise_scale,
        observation_std=observation_std,
        prior_std=prior_std,
    )
    fn = _decode_fn(decoder)
    modules = [decoder] if isinstance(decoder, nn.Module) else []
    z = z.detach().to(torch.float32).clone()
    x = x.detach()
    potentials, errors = [], []
    coef = -0.5 * step_size**2
    with chain_mode(*modules), torch.enable_grad():
        for step in range(num_steps):
            z.requires_grad_(True)
            potential, sse = posterior_potential(fn(z), x, z, observation_std, prior_std)
            (grad,) = torch.autograd.grad(potential.sum(), z)
            z = z.detach()
            if return_energies:
                potentials.append(potential.detach())
            if return_errors:
                errors.append(sse.detach())
            z.add_(grad.to(torch.float32), alpha=coef)
            if noise_scale > 0:
                z.add_(
                    randn_tensor(z.shape, generator=generator, device=z.device, dtype=torch.float32), alpha=noise_scale
                )
            z = _after_step(callback, step, z)
        if return_energies or return_errors:
            with torch.no_grad():
                potential, sse = posterior_potential(fn(z), x, z, observation_std, prior_std)
            potentials.append(potential)
            errors.append(sse)
    return LangevinOutput(
        sample=z,
        energies=torch.stack(potentials) if return_energies else None,
        errors=torch.stack(errors) if return_errors else None,
    )


__all__ = [
    "LangevinOutput",
    "chain_mode",
    "energy_langevin",
    "mcmc_temperature",
    "posterior_langevin",
    "posterior_potential",
]

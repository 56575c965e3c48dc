"""The two MCMC chains of Dual-MCMC teaching, :func:`energy_langevin` (x-chain ``T^x_alpha``) and
:func:`posterior_langevin` (z-chain ``T^z_theta``), one loop (:func:`langevin`). Both keep their state in float32 (a
bf16/fp16 state would drop the small updates), differentiate with respect to it only (:func:`chain_mode`), enable
gradients themselves (they work inside ``torch.no_grad()``) and return detached float32 tensors."""

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
Callback = Callable[[int, torch.Tensor], torch.Tensor | None]


@dataclass
class LangevinOutput:
    """A chain's revised ``sample`` (float32, detached) and, if requested, per-sample ``[num_steps + 1, batch]`` traces
    from the initial state on: ``energies`` (z-chain: :func:`posterior_potential`), z-chain ``errors`` (squared)."""

    sample: torch.Tensor
    energies: torch.Tensor | None = None
    errors: torch.Tensor | None = None


def check_int(value, name: str, minimum: int = 0) -> int:
    """``value`` as an ``int`` (numpy integers too, not ``bool``), else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(value, name: str, positive: bool = False) -> float:
    """``value`` as a finite ``float`` ``> 0`` (``positive``) or ``>= 0`` (numpy scalars too), else a ``ValueError``."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (real and (value > 0 if positive else value >= 0)):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def mcmc_temperature(step_size: float, noise_scale: float) -> float:
    """Temperature ``T = (noise_scale / step_size)^2`` at which the decoupled x-chain is exact Langevin for ``E``; the
    official energy loss is divided by it (``use_temp``): 4e-6 for CIFAR-10 (delta 0.5, sigma_n 0.001)."""
    return (noise_scale / check_real(step_size, "step_size", positive=True)) ** 2


@contextmanager
def chain_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Run MCMC chains through ``modules`` (unwrapped, not DDP): parameters frozen until exit (gradients reach the chain
    state only) and ``parametrize.cached()`` on (each spectral-normalised weight computed once per chain)."""
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    with ExitStack() as stack:
        for p in params:
            p.requires_grad_(False)
        stack.callback(lambda: [p.requires_grad_(True) for p in params])
        stack.enter_context(parametrize.cached())
        yield


def langevin(
    potential, state, num_steps, step_size, noise_scale, modules=(), generator=None, callback=None, trace=False
):
    """The loop of both chains, ``s <- s - 0.5 * step_size^2 * grad_s sum_i U(s_i) + noise_scale * N(0, I)``, from a
    float32 copy of ``state``. ``potential(s)`` returns a tuple whose first entry is the per-sample potential ``U(s)``
    (others are only traced); ``callback(step, s)`` runs after every update, and a tensor it returns (same shape)
    replaces the state; ``modules`` run under :func:`chain_mode`. Returns the final state and, with ``trace``, the
    detached float32 outputs of ``potential`` at every state."""
    num_steps = check_int(num_steps, "num_steps")
    step_size, noise_scale = check_real(step_size, "step_size", positive=True), check_real(noise_scale, "noise_scale")
    state, values, coef = state.detach().to(torch.float32).clone(), [], -0.5 * step_size**2
    with chain_mode(*modules), torch.enable_grad():
        for step in range(num_steps):
            state.requires_grad_(True)
            outputs = potential(state)
            (grad,) = torch.autograd.grad(outputs[0].sum(), state)
            state = state.detach()
            if trace:
                values.append(tuple(t.detach().float() for t in outputs))
            state.add_(grad.to(torch.float32), alpha=coef)
            if noise_scale > 0:
                noise = randn_tensor(state.shape, generator=generator, device=state.device, dtype=torch.float32)
                state.add_(noise, alpha=noise_scale)
            new = callback(step, state) if callback is not None else None
            if new is not None and new is not state:  # the callback's tensor replaces the state
                got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                if got != (shape := tuple(state.shape)):
                    raise ValueError(
                        f"callback must return None or a tensor of the chain state's shape {shape}, got {got}"
                    )
                state = new.detach().to(device=state.device, dtype=torch.float32).clone()
        if trace:
            with torch.no_grad():
                values.append(tuple(t.detach().float() for t in potential(state)))
    return state, values if trace else None


def energy_langevin(
    energy: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    num_steps: int,
    step_size: float,
    noise_scale: float,
    *,
    generator: GeneratorLike = None,
    return_energies: bool = False,
    callback: Callback | None = None,
) -> LangevinOutput:
    r"""The EBM-guided x-chain ``T^x_alpha`` (Langevin revision of generator proposals), no clamping:
    ``x_{t+1} = x_t - 0.5 * step_size^2 * d/dx sum_i E(x_t^i) + noise_scale * N(0, I)``, ``num_steps`` times.

    ``energy``: a :class:`~hf_dualmcmc.DualMCMCEnergyModel` (its ``.energy``, under :func:`chain_mode`) or any
    callable ``x -> [B]``; ``x``: initial states in ``[-1, 1]``, copied. The authors' settings: ``num_steps`` 30
    (training) / 70 (sampler), ``step_size`` ``delta`` 0.5 CIFAR-10 / 0.3 CelebA / 0.4 sampler, ``noise_scale``
    ``sigma_n`` 0.001 (0: gradient descent). ``generator``: one, or one per sample; ``callback``: see :func:`langevin`.
    """
    fn = energy.energy if callable(getattr(energy, "energy", None)) else energy
    modules = (energy,) if isinstance(energy, nn.Module) else ()
    args = (num_steps, step_size, noise_scale, modules, generator, callback, return_energies)
    x, trace = langevin(lambda x: (fn(x),), x, *args)
    return LangevinOutput(x, torch.stack([e for (e,) in trace]) if trace else None)


def posterior_potential(
    decoded: torch.Tensor, x: torch.Tensor, z: torch.Tensor, observation_std: float, prior_std: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(potential, squared error)`` of the z-chain: ``||G(z) - x||^2 / sigma^2 + ||z||^2 / (2 prior^2)``,
    the authors' potential (likelihood ``SSE / sigma^2``, not ``SSE / (2 sigma^2)``: observation variance ``sigma^2/2``)."""
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
    callback: Callback | None = None,
) -> LangevinOutput:
    r"""The generator-posterior z-chain ``T^z_theta`` (Langevin revision of encoder latents for observed ``x``):
    ``z_{t+1} = z_t - 0.5 * s^2 * (grad_z ||G(z_t) - x||^2_sum / sigma^2 + z_t / prior_std^2) + n * N(0, I)``.

    ``decoder``: a :class:`~hf_dualmcmc.DualMCMCGeneratorModel` (its ``.generate``; in train mode its BatchNorm uses
    and updates batch statistics at every step, as in the authors' training) or any callable ``z -> x``; ``z``: initial
    latents ``[B, latent_dim]``, copied; ``x``: observed images in ``[-1, 1]``. The authors' settings: ``num_steps``
    10, ``step_size`` ``s`` 0.1, ``noise_scale`` ``n`` 0.1, ``observation_std`` ``sigma`` (of ``p(x|z)``) 0.3,
    ``prior_std`` 1.0. Traces: :class:`LangevinOutput`; ``generator``, ``callback``: as for :func:`energy_langevin`.
    """
    sigma, prior = check_real(observation_std, "observation_std", True), check_real(prior_std, "prior_std", True)
    fn = decoder.generate if callable(getattr(decoder, "generate", None)) else decoder
    modules, x = (decoder,) if isinstance(decoder, nn.Module) else (), x.detach()
    args = (num_steps, step_size, noise_scale, modules, generator, callback, return_energies or return_errors)
    z, trace = langevin(lambda z: posterior_potential(fn(z), x, z, sigma, prior), z, *args)
    energies, errors = (torch.stack(t) for t in zip(*trace)) if trace else (None, None)
    return LangevinOutput(z, energies if return_energies else None, errors if return_errors else None)

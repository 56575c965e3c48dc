"""Speed options (measured in ``docs/PERFORMANCE.md``): same math, :func:`to_memory_format` (channels_last) and
:func:`chain_compiler`; other arithmetic, ``precision="bf16"`` (:func:`autocast_factory`: bfloat16 network forwards,
float32 chain state, losses and weights), fast only where :func:`bf16_is_native`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

PRECISIONS = ("fp32", "bf16")


def autocast_factory(
    device: torch.device | str, precision: str
) -> Callable[[], contextlib.AbstractContextManager] | None:
    """The ``autocast=`` argument of :func:`~hf_dualmcmc.training.dual_mcmc_step`: ``None`` for ``"fp32"``, for
    ``"bf16"`` a factory of ``torch.autocast(device_type, torch.bfloat16)``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    device_type = torch.device(device).type
    return lambda: torch.autocast(device_type, dtype=torch.bfloat16)


def precision_context(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """A context manager for ``precision`` around a whole call (e.g. a :class:`~hf_dualmcmc.DualMCMCPipeline` call)."""
    factory = autocast_factory(device, precision)
    return factory() if factory is not None else contextlib.nullcontext()


def to_memory_format(*models: torch.nn.Module | None, memory_format: torch.memory_format = torch.channels_last):
    """Convert the 4-d parameters and buffers of ``models`` in place (before building optimizers; checkpoints are
    unaffected); returns the models."""
    if not isinstance(memory_format, torch.memory_format):
        raise ValueError(f"memory_format must be a torch.memory_format, e.g. torch.channels_last: {memory_format!r}")
    for m in models:
        if m is not None:
            m.to(memory_format=memory_format)
    return models if len(models) != 1 else models[0]


def chain_compiler(device: torch.device | str, backend: str = "inductor", mode: str | None = None) -> Callable:
    """A ``chain_compiler=`` for :func:`~hf_dualmcmc.training.dual_mcmc_step`: ``fn -> torch.compile(fn)``, cached
    per function. On CUDA the default ``mode`` is ``"reduce-overhead"`` (CUDA graphs), elsewhere inductor's."""
    if mode is None and torch.device(device).type == "cuda":
        mode = "reduce-overhead"
    cache = {}

    def compile_fn(fn: Callable) -> Callable:
        key = (id(getattr(fn, "__self__", None)), getattr(fn, "__func__", fn))
        if key not in cache:
            cache[key] = torch.compile(fn, backend=backend, mode=mode, dynamic=False)
        return cache[key]

    return compile_fn


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """CPU feature flags (the first ``flags`` line of ``cpuinfo``; empty where unreadable)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.split(":")[0].strip() == "flags"), "")
    except OSError:
        return set()
    return set(flags.partition(":")[2].split())


def bf16_is_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively: CUDA with ``torch.cuda.is_bf16_supported()``, a CPU with
    ``avx512_bf16`` or ``amx_bf16``. Elsewhere bf16 is emulated and many times slower than float32."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False

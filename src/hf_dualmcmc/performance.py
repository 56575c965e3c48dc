"""Speed options for training and sampling, and the measuring tools of ``benchmarks/bench_step.py``.

Identical math (checked against :mod:`hf_dualmcmc.reference` by ``tests/test_performance.py``):

* :func:`hf_dualmcmc.chain_mode` (always on in the chains): parameters frozen and each spectral-normalised weight
  computed once per chain;
* ``channels_last`` (:func:`to_memory_format` on the models, ``memory_format=`` of
  :func:`~hf_dualmcmc.training.dual_mcmc_step`): oneDNN's NHWC convolution kernels, same arithmetic up to float
  rounding;
* ``torch.compile`` of the energy network the x-chains call (:func:`chain_compiler`, opt-in; on CUDA it uses CUDA
  graphs).

Opt-in faster modes that change the arithmetic: ``precision="bf16"`` (:func:`autocast_factory`: bfloat16 autocast for
the network forwards, chain state, losses and weights stay float32). Their measured costs are in
``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

PRECISIONS = ("fp32", "bf16")


def autocast_factory(device: torch.device | str, precision: str) -> Callable[[], contextlib.AbstractContextManager] | None:
    """The ``autocast=`` argument of :func:`~hf_dualmcmc.training.dual_mcmc_step` for ``precision``.

    ``"fp32"`` gives ``None`` (no autocast); ``"bf16"`` a factory of ``torch.autocast(device_type, torch.bfloat16)``.
    """
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


def to_memory_format(*models: nn.Module | None, memory_format: torch.memory_format = torch.channels_last):
    """Convert the 4-d parameters and buffers of ``models`` in place to ``memory_format``; returns the models.

    Call before building optimizers. Checkpoints are unaffected (``save_pretrained`` / ``state_dict`` hold the same
    values; safetensors writes them contiguously).
    """
    if not isinstance(memory_format, torch.memory_format):
        raise ValueError(f"memory_format must be a torch.memory_format (e.g. torch.channels_last), got {memory_format!r}")
    for m in models:
        if m is not None:
            m.to(memory_format=memory_format)
    return models if len(models) != 1 else models[0]


def chain_compiler(device: torch.device | str, backend: str = "inductor", mode: str | None = None) -> Callable[[Callable], Callable]:
    """A ``chain_compiler=`` for :func:`~hf_dualmcmc.training.dual_mcmc_step`: ``fn -> torch.compile(fn)``.

    On CUDA the default ``mode`` is ``"reduce-overhead"`` (CUDA graphs: the 30-step chains launch the same kernels
    at every step); elsewhere inductor's default. Compiled functions are cached per function, so every iteration
    reuses the first compilation.
    """
    if mode is None and torch.device(device).type == "cuda":
        mode = "reduce-overhead"
    cache: dict[Any, Callable] = {}

    def compile_fn(fn: Callable) -> Callable:
        key = (id(getattr(fn, "__self__", None)), getattr(fn, "__func__", fn))
        if key not in cache:
            cache[key] = torch.compile(fn, backend=backend, mode=mode, dynamic=False)
        return cache[key]

    return compile_fn


# ----------------------------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------------------------


class _NoModuleTracking:
    """Stands in for FlopCounterMode's ModuleTracker, whose backward hooks fail under ``torch.autograd.grad`` with
    respect to a leaf tensor (the chains' pattern). Everything is attributed to "Global"."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)`` under :class:`torch.utils.flop_counter.FlopCounterMode`; return ``(result, flops)``.

    Counts matmuls and convolutions (forward and backward, as FlopCounterMode does), also inside
    ``torch.autograd.grad`` calls on leaf tensors.
    """
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    with counter:
        result = fn(*args, **kwargs)
    return result, counter.get_total_flops()


def reset_peak_memory(device: torch.device | str) -> None:
    """Reset the CUDA peak-memory counter (a no-op on CPU, whose peak RSS cannot be reset)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device | str) -> int:
    """Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, else the process's peak resident set size."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def cpu_flags() -> set[str]:
    """CPU feature flags from ``/proc/cpuinfo`` (empty where unavailable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


__all__ = [
    "PRECISIONS",
    "autocast_factory",
    "chain_compiler",
    "count_flops",
    "cpu_flags",
    "peak_memory_bytes",
    "precision_context",
    "reset_peak_memory",
    "to_memory_format",
]

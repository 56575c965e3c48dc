"""Measuring tools of ``benchmarks/bench_step.py``: FLOP counting, peak memory, the machine a timing ran on, and a
``torch.profiler`` split of an iteration's CPU time by category (convolutions, casts, batch norm, spectral norm, Adam).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hf_dualmcmc.evaluation.analysis import markdown_table
from hf_dualmcmc.performance import cpu_flags

# ----------------------------------------------------------------------------------------------------------------
# FLOPs, memory, machine
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


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line of ``/proc/cpuinfo`` (``None`` where unavailable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name: ``lscpu``'s "Model name", else ``/proc/cpuinfo``'s "model name", else the platform's."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"})
        for line in out.stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name" and value.strip():
                return value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


# the CPU features that decide which bf16 kernels oneDNN can use (AMX: tiles; avx512_bf16: vdpbf16ps)
BF16_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def onednn_version() -> str:
    """oneDNN (MKL-DNN) version torch was built with, from ``torch.__config__.show()``; ``"unavailable"`` if none."""
    if not torch.backends.mkldnn.is_available():
        return "unavailable"
    found = re.search(r"(?:MKL-DNN|oneDNN)\s+v?([0-9][\w.]*)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def machine_info(device: torch.device | str = "cpu") -> dict:
    """What a timing depends on: CPU model (and vendor / family / model number) and bf16-relevant flags, the ISA torch's CPU kernels dispatch to
    (``torch.backends.cpu.get_cpu_capability()``), the oneDNN version, torch's threads, and the GPU if ``device`` is
    one."""
    flags = cpu_flags()
    # a virtual machine's model name can be generic ("AMD EPYC"): vendor, family and model number pin it down
    ids = {
        label: _cpuinfo_field(key)
        for label, key in (("vendor", "vendor_id"), ("family", "cpu family"), ("model", "model"))
    }
    cpu_id = " ".join(f"{label} {value}" for label, value in ids.items() if value is not None)
    info = {
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id,
        "cpu_flags": {f: f in flags for f in BF16_FLAGS},
        "isa": torch.backends.cpu.get_cpu_capability(),
        "onednn": onednn_version(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def describe_machine(info: dict) -> str:
    """One line for :func:`machine_info`'s dict."""
    flags = " ".join(f"{k}={int(v)}" for k, v in info["cpu_flags"].items())
    gpu = f"; gpu {info['gpu']}" if "gpu" in info else ""
    cpu_id = f" [{info['cpu_id']}]" if info.get("cpu_id") else ""
    return (
        f"cpu {info['cpu_model']}{cpu_id} ({flags}); torch {info['torch']} dispatch {info['isa']}, oneDNN "
        f"{info['onednn']}; threads {info['threads']} of {info['cpus']} cpus{gpu}"
    )


# ----------------------------------------------------------------------------------------------------------------
# Profiling: where an iteration spends its time
# ----------------------------------------------------------------------------------------------------------------

PROFILE_CATEGORIES = (
    "convolution forward",
    "convolution backward",
    "matmul (linear)",
    "dtype casts",
    "batch norm",
    "spectral-norm power iteration",
    "Adam",
    "other",
)
_SPECTRAL_NORM_SCOPE = "spectral_norm (parametrization)"
_CASTS = ("aten::to", "aten::_to_copy", "aten::copy_", "aten::_copy_from", "aten::_copy_from_and_resize")
_MATMULS = (
    "aten::linear",
    "aten::addmm",
    "aten::mm",
    "aten::matmul",
    "aten::bmm",
    "aten::mv",
    "aten::dot",
    "aten::vdot",
)


@contextlib.contextmanager
def spectral_norm_scopes(*models: nn.Module | None):
    """Mark every spectral-norm parametrization call of ``models`` (``W / sigma`` and, in train mode, its power
    iteration) as a ``torch.profiler`` scope named ``"spectral_norm (parametrization)"``."""
    handles, open_scopes = [], []

    def enter(module, args):
        open_scopes.append(torch.profiler.record_function(_SPECTRAL_NORM_SCOPE).__enter__())

    def leave(module, args, output):
        open_scopes.pop().__exit__(None, None, None)

    for model in models:
        for sub in model.modules() if model is not None else ():
            if hasattr(sub, "_power_method"):  # torch.nn.utils.parametrizations._SpectralNorm
                handles += [sub.register_forward_pre_hook(enter), sub.register_forward_hook(leave, always_call=True)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _short(name: str) -> str:
    """``"aten::native_batch_norm"`` -> ``"nativebatchnorm"``; ``"...evaluate_function: DivBackward0"`` ->
    ``"divbackward0"``: forward op and autograd node names, comparable."""
    return name.rsplit(": ", 1)[-1].rsplit("::", 1)[-1].replace("_", "").lower()


def _categorise(event, spectral_norm_ops: dict[int, set[str]]) -> str:
    """The category of one profiler event (see :func:`profile_ops`), from its name and its enclosing events."""
    chain, e = [], event
    while e is not None:
        chain.append(e)
        e = e.cpu_parent
    for e in chain:
        if e.name == _SPECTRAL_NORM_SCOPE:
            return "spectral-norm power iteration"
        if e.name.startswith("autograd::engine::evaluate_function") and any(  # the backward of such an op
            _short(e.name).startswith(op) for op in spectral_norm_ops.get(e.sequence_nr, ())
        ):
            return "spectral-norm power iteration"
        if e.name.startswith(("Optimizer.step", "Optimizer.zero_grad")):
            return "Adam"
    name = event.name.lower()
    if "_foreach_" in name or "adam" in name:
        return "Adam"
    if "conv" in name:
        return "convolution backward" if "backward" in name else "convolution forward"
    if "batch_norm" in name or "batchnorm" in name:
        return "batch norm"
    backward_of = name.rsplit(": ", 1)[-1]  # "autograd::engine::evaluate_function: ToCopyBackward0"
    if event.name in _CASTS or backward_of.startswith("tocopybackward"):
        return "dtype casts"
    if event.name in _MATMULS or backward_of.startswith(("addmm", "mmbackward", "mvbackward", "dotbackward")):
        return "matmul (linear)"
    return "other"


def profile_ops(fn: Callable[[], Any], *models: nn.Module | None, top: int = 15) -> dict:
    """Run ``fn()`` once under ``torch.profiler`` (CPU) and split its self CPU time by op and by category.

    Categories (:data:`PROFILE_CATEGORIES`): convolution forward / backward, matmuls, dtype casts (``aten::to``,
    ``_to_copy``, ``copy_`` and their backward), batch norm, the spectral-norm parametrizations of ``models`` (their
    forward ops, found with :func:`spectral_norm_scopes`, and the backward of those ops, matched by autograd sequence
    number), Adam (everything inside ``Optimizer.step`` / ``zero_grad``, ``_foreach_*`` ops), other. Returns
    ``{"total_ms", "categories": [{category, self_ms, percent, calls}], "top_ops": [{op, self_ms, percent, calls}]}``
    (``top`` ops by self CPU time, descending).
    """
    with (
        spectral_norm_scopes(*models),
        torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof,
    ):
        fn()
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU]
    # forward ops inside a spectral-norm scope, by autograd sequence number (an op that made no autograd node
    # carries the number of the next one, made elsewhere: the names must match too)
    in_scope: dict[int, set[str]] = {}
    for e in events:
        parent = e.cpu_parent
        while parent is not None and parent.name != _SPECTRAL_NORM_SCOPE:
            parent = parent.cpu_parent
        if parent is not None and e.sequence_nr >= 0:
            in_scope.setdefault(e.sequence_nr, set()).add(_short(e.name))
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    by_category = {c: [0.0, 0] for c in PROFILE_CATEGORIES}
    by_op: dict[str, list] = {}
    for e in events:
        for bucket in (by_category[_categorise(e, in_scope)], by_op.setdefault(e.name, [0.0, 0])):
            bucket[0] += e.self_cpu_time_total
            bucket[1] += 1

    def rows(items, key):
        return [{key: k, "self_ms": us / 1e3, "percent": 100 * us / total, "calls": n} for k, (us, n) in items]

    ops = sorted(by_op.items(), key=lambda kv: -kv[1][0])[:top]
    return {"total_ms": total / 1e3, "categories": rows(by_category.items(), "category"), "top_ops": rows(ops, "op")}


def profile_markdown(profile: dict, title: str = "") -> str:
    """Two markdown tables of :func:`profile_ops`'s result: by category, then the top ops."""

    def rows(items, key, fmt=str):
        return [
            {
                key: fmt(r[key]),
                "self CPU ms": f"{r['self_ms']:.1f}",
                "% of total": f"{r['percent']:.1f}",
                "calls": r["calls"],
            }
            for r in items
        ]

    categories = rows(sorted(profile["categories"], key=lambda r: -r["self_ms"]), "category")
    ops = rows(profile["top_ops"], "op", lambda op: f"`{op}`")
    return (
        f"{title}self CPU time {profile['total_ms']:.1f} ms in all\n\n{markdown_table(categories)}\n\n"
        f"{markdown_table(ops)}\n"
    )

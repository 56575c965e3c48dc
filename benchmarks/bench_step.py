#!/usr/bin/env python
"""Time one Dual-MCMC training iteration and the sampler, optionally side by side with the plain reference.

    python benchmarks/bench_step.py --config configs/cifar10.yaml --ngf 64 --ndf 64 --nif 32 --batch_size 32 --reference

Per run it prints: seconds per training iteration (median of ``--repeats`` after ``--warmup``), images/s of sampling
(generator + ``--sample_steps`` x-steps, default the config's sampler, 70 for CIFAR-10), FLOPs of one iteration
(``torch.utils.flop_counter``) and the achieved GFLOP/s, peak memory, the load average, and the machine's measured
convolution throughput (the practical ceiling). With ``--reference`` the plain eager float32 implementation of
``benchmarks/reference.py`` (spectral-norm power iteration at every forward, parameters requiring grad during the
chains, out-of-place updates) runs in the same process, interleaved with the optimised one (A B A B ...), so machine
load hits both alike, and the speed ratios are printed. ``--precision bf16`` also prints the deviation of one bf16
iteration from the float32 one (same weights, same random numbers).

``--repeat_sets N`` times float32 *and* bf16 (same ``--channels_last`` / ``--compile``) in one process: after the
warm-up, N sets of one run per mode (fp32, bf16[, reference], fp32, bf16, ...), medians per mode and the ratios bf16
vs fp32, fp32 vs reference and bf16 vs reference, so that a ratio is not an artefact of load changing between two
invocations. ``--profile PATH`` profiles one more optimised iteration of ``--precision`` with ``torch.profiler``
and writes the self CPU time by category (convolutions, casts, batch norm, spectral norm, Adam, other) and the top
ops to PATH (markdown), stdout and the JSON. Every run records the machine: CPU model and bf16-relevant flags, the
ISA torch dispatches to, the oneDNN version, threads.

Data are random images in [-1, 1] of the config's shape (the cost does not depend on the pixels). Run with the
machine as idle as you can get it; see docs/PERFORMANCE.md for results.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, also when imported from elsewhere

import torch  # noqa: E402
from profiling import (  # noqa: E402
    count_flops,
    describe_machine,
    machine_info,
    peak_memory_bytes,
    profile_markdown,
    profile_ops,
    reset_peak_memory,
)
from reference import reference_dual_mcmc_step, reference_sample  # noqa: E402

from hf_dualmcmc import DualMCMCPipeline  # noqa: E402
from hf_dualmcmc.atomic import atomic_write  # noqa: E402
from hf_dualmcmc.cli import ArgumentParser  # noqa: E402
from hf_dualmcmc.performance import PRECISIONS, autocast_factory, chain_compiler, precision_context, to_memory_format  # noqa: E402
from hf_dualmcmc.trainer import build_models  # noqa: E402
from hf_dualmcmc.training import dual_mcmc_step, make_optimizers  # noqa: E402
from hf_dualmcmc.training_config import load_config  # noqa: E402


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training YAML (configs/cifar10.yaml): shapes and constants")
    p.add_argument("--ngf", type=int, help="generator width (default: the config's)")
    p.add_argument("--ndf", type=int, help="energy width")
    p.add_argument("--nif", type=int, help="encoder width")
    p.add_argument("--latent_dim", type=int, help="nz")
    p.add_argument("--image_size", type=int, help="resolution (default: the config's)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="further config overrides, e.g. teaching.num_steps=10 (changes the algorithm: label such runs)",
    )
    p.add_argument(
        "--variant_set",
        nargs="*",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="also time a second optimised mode, 'variant', with these overrides on top, interleaved (e.g. "
        "teaching.noise_negatives=0.25): its cost against the config's step under the same machine load",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16: autocast, float32 chain state")
    p.add_argument("--channels_last", action="store_true", help="NHWC models, data and chain states")
    p.add_argument("--compile", action="store_true", help="torch.compile the energy network the training x-chains call")
    p.add_argument("--reference", action="store_true", help="also time the plain reference, interleaved")
    p.add_argument("--repeats", type=int, help="timed runs per mode (median reported; default 3)")
    p.add_argument(
        "--repeat_sets",
        type=int,
        metavar="N",
        help="time fp32 and bf16 (and the reference) in one process: N interleaved sets after the warm-up",
    )
    p.add_argument("--profile", metavar="PATH", help="profile one optimised iteration of --precision (markdown here)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per mode first")
    p.add_argument("--sample_steps", type=int, help="x-steps of the sampler (default: the config's sampler)")
    p.add_argument("--sample_batch", type=int, help="images per sampling call (default: --batch_size)")
    p.add_argument("--skip_training", action="store_true")
    p.add_argument("--skip_sampling", action="store_true")
    p.add_argument("--skip_flops", action="store_true")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeat_sets is not None:
        p.error("--repeats and --repeat_sets exclude each other: with --repeat_sets each set times every mode once")
    args.rounds = args.repeat_sets if args.repeat_sets is not None else args.repeats or 3
    if args.rounds < 1 or args.warmup < 0:
        p.error("--repeats / --repeat_sets must be >= 1 and --warmup >= 0")
    if args.variant_set and args.repeat_sets:
        p.error("--variant_set compares with the --precision mode: drop --repeat_sets")
    if args.profile and args.skip_training:
        p.error("--profile profiles a training iteration: drop --skip_training")
    return args


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, flops_into: dict | None = None, key: str | None = None) -> float:
    """Seconds of ``fn()``; with ``flops_into``, run it under FlopCounterMode and store its FLOPs at ``key``."""
    _sync(device)
    start = time.perf_counter()
    if flops_into is not None:
        flops_into[key] = count_flops(fn)[1]
    else:
        fn()
    _sync(device)
    return time.perf_counter() - start


def measure_conv_ceiling(device, threads_note: str) -> dict:
    """Throughput of the network's dominant layer alone (3x3 conv, 64 -> 64 channels, 32x32, batch 32): the practical
    ceiling of this machine for these shapes, fp32 and bf16, NCHW and NHWC."""
    x = torch.randn(32, 64, 32, 32, device=device)
    w = torch.randn(64, 64, 3, 3, device=device)
    flops = 2 * 32 * 64 * 64 * 9 * 32 * 32
    out = {}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        for layout_name, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
            xx, ww = x.to(dtype).contiguous(memory_format=fmt), w.to(dtype).contiguous(memory_format=fmt)
            for _ in range(2):
                torch.nn.functional.conv2d(xx, ww, padding=1)
            conv = functools.partial(torch.nn.functional.conv2d, xx, ww, padding=1)
            best = min(timed(conv, device) for _ in range(5))
            out[f"{dtype_name}_{layout_name}"] = flops / best / 1e9
    out["note"] = threads_note
    return out


def build(args, config, device):
    torch.manual_seed(args.seed)
    models = build_models(config.data, config.model)
    return [m.to(device).train() for m in models]


def optimised_mode(args, config, device, precision, data, latents, sample_steps):
    """``(train_fn, sample_fn, models)`` of the optimised code in ``precision``, on models of its own."""
    teaching, sampler = config.teaching, config.sampler
    memory_format = torch.channels_last if args.channels_last else None
    E, G, I = build(args, config, device)
    if memory_format is not None:
        to_memory_format(E, G, I, memory_format=memory_format)
    opt = make_optimizers(E, G, I, teaching)
    autocast = autocast_factory(device, precision)
    compiler = chain_compiler(device) if args.compile else None
    pipe = DualMCMCPipeline(
        E,
        G,
        I,
        num_inference_steps=sample_steps,
        step_size=sampler.step_size,
        noise_scale=sampler.noise_scale,
        bn_stats=sampler.bn_stats,
    )
    pipe.set_progress_bar_config(disable=True)

    def step():
        return dual_mcmc_step(
            data, E, G, I, opt, teaching, autocast=autocast, memory_format=memory_format, chain_compiler=compiler
        )

    def sample():
        with precision_context(device, precision):
            return pipe(latents=latents, output_type="pt").images

    return step, sample, (E, G, I)


def reference_mode(args, config, device, data, latents, sample_steps):
    """``(train_fn, sample_fn, models)`` of the plain reference, from the same initial weights (same seed)."""
    E, G, I = build(args, config, device)
    opt = make_optimizers(E, G, I, config.teaching)
    sampler = config.sampler

    def step():
        return reference_dual_mcmc_step(data, E, G, I, opt, config.teaching)

    def sample():
        # the authors' sampler: networks in train mode (power iteration at every energy forward, BatchNorm batch stats)
        return reference_sample(E, G, latents, sample_steps, sampler.step_size, sampler.noise_scale)

    return step, sample, (E, G, I)


# the speed ratios reported: "A vs B" = time of B / time of A (how many times faster A is), where both modes ran
RATIOS = (
    ("bf16", "fp32"),
    ("fp32", "reference"),
    ("bf16", "reference"),
    ("optimised", "reference"),
    ("optimised", "variant"),
)


def time_section(name: str, index: int, batch: int, modes: dict, args, device) -> dict:
    """Time ``modes[mode][index]()`` for every mode, interleaved (one run of each mode per round): ``--warmup``
    rounds (the first also counts FLOPs), then ``args.rounds`` timed rounds. Medians, images/s, ratios, GFLOP/s."""
    times = {m: [] for m in modes}
    flops, first_call = {}, {}
    for r in range(args.warmup + args.rounds):
        line = []
        for mode, fns in modes.items():
            compiled = args.compile and mode != "reference"
            # the first warm-up run of each mode also counts the FLOPs (FlopCounterMode slows it: never timed)
            count = r == 0 and args.warmup > 0 and not args.skip_flops and not compiled
            t = timed(fns[index], device, flops if count else None, mode)
            if r == 0 and compiled:
                first_call[mode] = t
            if r >= args.warmup:
                times[mode].append(t)
            line.append(f"{mode} {t:.3f} s")
        what = f"{'set' if args.repeat_sets else 'run'} {r + 1}{' (warm-up)' if r < args.warmup else ''}"
        print(f"  {name} {what}: {', '.join(line)}  [load {os.getloadavg()[0]:.2f}]", flush=True)
    med = {m: statistics.median(v) for m, v in times.items()}
    entry = {
        "median_s": med,
        "runs_s": times,
        "batch": batch,
        "flops": flops,
        "speedup": {f"{a} vs {b}": med[b] / med[a] for a, b in RATIOS if a in med and b in med},
    }
    if first_call:
        entry["first_call_s"] = first_call
    if name == "sample":
        entry["images_per_s"] = {m: batch / v for m, v in med.items()}
    if flops:
        entry["gflops_per_s"] = {m: flops.get(m, max(flops.values())) / v / 1e9 for m, v in med.items()}
    return entry


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = []
    for flag, key in (
        ("ngf", "model.ngf"),
        ("ndf", "model.ndf"),
        ("nif", "model.nif"),
        ("latent_dim", "model.latent_dim"),
        ("image_size", "data.image_size"),
    ):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    config = load_config(args.config, overrides + list(args.set))
    teaching, sampler = config.teaching, config.sampler
    sample_steps = sampler.num_inference_steps if args.sample_steps is None else args.sample_steps
    sample_batch = args.sample_batch or args.batch_size
    memory_format = torch.channels_last if args.channels_last else None
    precisions = PRECISIONS if args.repeat_sets else (args.precision,)

    load_start = os.getloadavg()
    machine = machine_info(device)
    print(f"# hf-dualmcmc bench_step  device {device}  {describe_machine(machine)}")
    print(
        f"# config {args.config}: image {config.data.image_size}px x{config.data.num_channels}, ngf/ndf/nif/nz "
        f"{config.model.ngf}/{config.model.ndf}/{config.model.nif}/{config.model.latent_dim}, batch {args.batch_size}, "
        f"num_steps {teaching.num_steps}, num_latent_steps {teaching.num_latent_steps}, rerun_chain_for_energy "
        f"{teaching.rerun_chain_for_energy}; sampling {sample_steps} x-steps, batch {sample_batch}"
    )
    print(
        f"# optimised: precision {' and '.join(precisions)}, channels_last {args.channels_last}, compile "
        f"{args.compile}; {args.rounds} {'interleaved sets' if args.repeat_sets else 'repeats'} after {args.warmup} "
        f"warm-up, load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}"
    )

    gen = torch.Generator().manual_seed(args.seed + 1)
    shape = (args.batch_size, config.data.num_channels, config.data.image_size, config.data.image_size)
    data = (torch.rand(shape, generator=gen) * 2 - 1).to(device)
    latents = torch.randn(sample_batch, config.model.latent_dim, generator=gen).to(device)
    modes = {
        p if args.repeat_sets else "optimised": optimised_mode(args, config, device, p, data, latents, sample_steps)
        for p in precisions
    }
    if args.variant_set:
        variant = load_config(args.config, overrides + list(args.set) + list(args.variant_set))
        modes["variant"] = optimised_mode(args, variant, device, args.precision, data, latents, sample_steps)
    if args.reference:
        modes["reference"] = reference_mode(args, config, device, data, latents, sample_steps)

    results: dict = {
        "args": vars(args),
        "load_start": load_start,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "machine": machine,
    }
    reset_peak_memory(device)
    if not args.skip_training:
        results["train"] = time_section("train", 0, args.batch_size, modes, args, device)
    if not args.skip_sampling:
        results["sample"] = time_section("sample", 1, sample_batch, modes, args, device)
    results["peak_memory_bytes"] = peak_memory_bytes(device)

    if args.profile:
        mode = args.precision if args.repeat_sets else "optimised"
        step, _, models = modes[mode]  # (warm: the timing above ran it)
        results["profile"] = {"precision": args.precision, **profile_ops(step, *models, top=20)}
        text = profile_markdown(results["profile"], f"One optimised training iteration, {args.precision}: ")
        print("\n" + text)
        write_text(Path(args.profile), text)
    if "bf16" in precisions and not args.skip_training:
        results["bf16_deviation"] = bf16_deviation(args, config, device, data, memory_format)
    results["conv_ceiling_gflops"] = measure_conv_ceiling(device, f"{torch.get_num_threads()} threads")
    results["load_end"] = os.getloadavg()
    report(results, args)
    if args.json:
        write_text(Path(args.json), json.dumps(results, indent=2, default=str))
    return 0


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


def bf16_deviation(args, config, device, data, memory_format) -> dict:
    """One iteration in float32 and one in bf16 autocast from the same weights and random numbers: relative deviation
    of the losses, and of the x-chain's revision ``x~ - x0`` (what the generator learns from)."""
    out = {}
    teaching = config.teaching
    for precision in ("fp32", "bf16"):
        E, G, I = build(args, config, device)
        if memory_format is not None:
            to_memory_format(E, G, I, memory_format=memory_format)
        torch.manual_seed(args.seed + 2)
        out[precision] = dual_mcmc_step(
            data,
            E,
            G,
            I,
            make_optimizers(E, G, I, teaching),
            teaching,
            autocast=autocast_factory(device, precision),
            memory_format=memory_format,
            keep_tensors=True,
        )
    a, b = out["fp32"], out["bf16"]
    rev_a = a.extras["revised"] - a.extras["proposals"]
    rev_b = b.extras["revised"] - b.extras["proposals"]
    rel = {k: abs(b.as_dict()[k] - v) / max(abs(v), 1e-12) for k, v in a.as_dict().items()}
    rel["revision"] = ((rev_b - rev_a).norm() / rev_a.norm().clamp_min(1e-12)).item()
    rel["revision_cosine"] = torch.nn.functional.cosine_similarity(rev_a.flatten(), rev_b.flatten(), dim=0).item()
    rel["samples"] = ((b.extras["samples"] - a.extras["samples"]).norm() / a.extras["samples"].norm()).item()
    return rel


def report(results: dict, args) -> None:
    """The results table (a column per mode, then the speed ratios), the machine, the ceiling, the bf16 deviation."""
    sections = {k: results[k] for k in ("train", "sample") if k in results}
    if not sections:
        return
    first = next(iter(sections.values()))
    modes, ratios = list(first["median_s"]), list(first["speedup"])
    print("\n| measure | " + " | ".join(modes + [f"speed-up {r}" for r in ratios]) + " |")
    print("|" + " --- |" * (1 + len(modes) + len(ratios)))

    def row(label, sec, values, fmt, with_ratios):
        cells = [format(values[m], fmt) for m in modes]
        cells += [f"**{sec['speedup'][r]:.2f}x**" if with_ratios else "" for r in ratios]
        print(f"| {label} | " + " | ".join(cells) + " |")

    for name, sec in sections.items():
        if name == "train":
            row("training iteration (s, median)", sec, sec["median_s"], ".3f", True)
        else:
            row(f"sampling (images/s, {args.sample_steps or 'config'} x-steps)", sec, sec["images_per_s"], ".2f", True)
        if "gflops_per_s" in sec:
            fl = sec["flops"]
            counts = (
                f"{next(iter(fl.values())) / 1e9:.2f}"
                if len(set(fl.values())) == 1
                else ", ".join(f"{m} {n / 1e9:.2f}" for m, n in fl.items())
            )
            what = "iteration" if name == "train" else "call"
            row(f"{name} GFLOP/s (GFLOP per {what}: {counts})", sec, sec["gflops_per_s"], ".1f", False)
    print()
    print(f"machine: {describe_machine(results['machine'])}")
    print(
        f"peak memory: {results['peak_memory_bytes'] / 2**20:.0f} MiB "
        f"({'CUDA max allocated' if results['device'].startswith('cuda') else 'process peak RSS, all modes'})"
    )
    for name, sec in sections.items():
        for mode, t in sec.get("first_call_s", {}).items():
            print(f"first {name} call of {mode} (includes torch.compile): {t:.1f} s")
    c = results["conv_ceiling_gflops"]
    print(
        f"conv ceiling (3x3 64->64, 32x32, batch 32, {c['note']}): fp32 NCHW {c['fp32_nchw']:.0f}, fp32 NHWC "
        f"{c['fp32_nhwc']:.0f}, bf16 NCHW {c['bf16_nchw']:.0f}, bf16 NHWC {c['bf16_nhwc']:.0f} GFLOP/s"
    )
    if "bf16_deviation" in results:
        d = results["bf16_deviation"]
        print(
            "bf16 vs fp32, one iteration from the same state: relative deviation "
            + ", ".join(f"{k} {v:.2e}" for k, v in d.items() if k != "revision_cosine")
            + f"; cosine(revision) {d['revision_cosine']:.5f}"
        )
    ls, le = results["load_start"], results["load_end"]
    print(
        f"load average: start {ls[0]:.2f} {ls[1]:.2f} {ls[2]:.2f}, end {le[0]:.2f} {le[1]:.2f} {le[2]:.2f} "
        f"(on {os.cpu_count()} cpus)"
    )


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Time one Dual-MCMC training iteration and the sampler, optionally side by side with the plain reference.

    python benchmarks/bench_step.py --config configs/cifar10.yaml --ngf 64 --ndf 64 --nif 32 --batch-size 32 --reference

Per run it prints: seconds per training iteration (median of ``--repeats`` after ``--warmup``), images/s of sampling
(generator + ``--sample-steps`` x-steps, default the config's sampler, 70 for CIFAR-10), FLOPs of one iteration
(``torch.utils.flop_counter``) and the achieved GFLOP/s, peak memory, the load average, and the machine's measured
convolution throughput (the practical ceiling). With ``--reference`` the plain eager float32 implementation of
:mod:`hf_dualmcmc.reference` (spectral-norm power iteration at every forward, parameters requiring grad during the
chains, out-of-place updates) runs in the same process, interleaved with the optimised one (A B A B ...), so machine
load hits both alike, and the speed ratios are printed. ``--precision bf16`` also prints the deviation of one bf16
iteration from the float32 one (same weights, same random numbers).

Data are random images in [-1, 1] of the config's shape (the cost does not depend on the pixels). Run with the
machine as idle as you can get it; see docs/PERFORMANCE.md for results.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hf_dualmcmc import DualMCMCPipeline  # noqa: E402
from hf_dualmcmc.performance import (  # noqa: E402
    PRECISIONS,
    autocast_factory,
    chain_compiler,
    count_flops,
    cpu_flags,
    peak_memory_bytes,
    precision_context,
    reset_peak_memory,
    to_memory_format,
)
from hf_dualmcmc.reference import reference_dual_mcmc_step, reference_sample  # noqa: E402
from hf_dualmcmc.trainer import build_models  # noqa: E402
from hf_dualmcmc.training import dual_mcmc_step, make_optimizers  # noqa: E402
from hf_dualmcmc.training_config import load_config  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training YAML (configs/cifar10.yaml): shapes and constants")
    p.add_argument("--ngf", type=int, help="generator width (default: the config's)")
    p.add_argument("--ndf", type=int, help="energy width")
    p.add_argument("--nif", type=int, help="encoder width")
    p.add_argument("--latent-dim", type=int, help="nz")
    p.add_argument("--image-size", type=int, help="resolution (default: the config's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                   help="further config overrides, e.g. teaching.num_steps=10 (changes the algorithm: label such runs)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16: autocast, float32 chain state")
    p.add_argument("--channels-last", action="store_true", help="NHWC models, data and chain states")
    p.add_argument("--compile", action="store_true", help="torch.compile the energy network the training x-chains call")
    p.add_argument("--reference", action="store_true", help="also time the plain reference, interleaved")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per mode (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per mode first")
    p.add_argument("--sample-steps", type=int, help="x-steps of the sampler (default: the config's sampler)")
    p.add_argument("--sample-batch", type=int, help="images per sampling call (default: --batch-size)")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-sampling", action="store_true")
    p.add_argument("--skip-flops", action="store_true")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = []
    for flag, key in (("ngf", "model.ngf"), ("ndf", "model.ndf"), ("nif", "model.nif"), ("latent_dim", "model.latent_dim"),
                      ("image_size", "data.image_size")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    config = load_config(args.config, overrides + list(args.set))
    teaching, sampler = config.teaching, config.sampler
    sample_steps = sampler.num_inference_steps if args.sample_steps is None else args.sample_steps
    sample_batch = args.sample_batch or args.batch_size
    memory_format = torch.channels_last if args.channels_last else None
    autocast = autocast_factory(device, args.precision)
    compiler = chain_compiler(device) if args.compile else None

    load_start = os.getloadavg()
    flags = cpu_flags()
    print(f"# hf-dualmcmc bench_step  torch {torch.__version__}  device {device}  threads {torch.get_num_threads()}  "
          f"cpus {os.cpu_count()}  {platform.processor() or platform.machine()}")
    if device.type == "cpu":
        print(f"# cpu flags: avx512f={'avx512f' in flags} avx512_bf16={'avx512_bf16' in flags} "
              f"amx_bf16={'amx_bf16' in flags} avx512_fp16={'avx512_fp16' in flags}")
    else:
        print(f"# gpu: {torch.cuda.get_device_name(device)}")
    print(f"# config {args.config}: image {config.data.image_size}px x{config.data.num_channels}, ngf/ndf/nif/nz "
          f"{config.model.ngf}/{config.model.ndf}/{config.model.nif}/{config.model.latent_dim}, batch {args.batch_size}, "
          f"num_steps {teaching.num_steps}, num_latent_steps {teaching.num_latent_steps}, rerun_chain_for_energy {teaching.rerun_chain_for_energy}; sampling "
          f"{sample_steps} x-steps, batch {sample_batch}")
    print(f"# optimised: precision {args.precision}, channels_last {args.channels_last}, compile {args.compile}; "
          f"repeats {args.repeats} after {args.warmup} warm-up, load average at start {load_start[0]:.2f} "
          f"{load_start[1]:.2f} {load_start[2]:.2f}")

    E, G, I = build(args, config, device)
    if args.reference:
        E_ref, G_ref, I_ref = (copy.deepcopy(m) for m in (E, G, I))
        opt_ref = make_optimizers(E_ref, G_ref, I_ref, teaching)
    if memory_format is not None:
        to_memory_format(E, G, I, memory_format=memory_format)
    opt = make_optimizers(E, G, I, teaching)
    gen = torch.Generator().manual_seed(args.seed + 1)
    shape = (args.batch_size, config.data.num_channels, config.data.image_size, config.data.image_size)
    data = (torch.rand(shape, generator=gen) * 2 - 1).to(device)
    latents = torch.randn(sample_batch, config.model.latent_dim, generator=gen).to(device)
    pipe = DualMCMCPipeline(E, G, I, num_inference_steps=sample_steps, step_size=sampler.step_size,
                            noise_scale=sampler.noise_scale, bn_stats=sampler.bn_stats)
    pipe.set_progress_bar_config(disable=True)

    def opt_step():
        return dual_mcmc_step(data, E, G, I, opt, teaching, autocast=autocast, memory_format=memory_format,
                              chain_compiler=compiler)

    def ref_step():
        return reference_dual_mcmc_step(data, E_ref, G_ref, I_ref, opt_ref, teaching)

    def opt_sample():
        with precision_context(device, args.precision):
            return pipe(latents=latents, output_type="pt").images

    def ref_sample():
        # the authors' sampler: networks in train mode (power iteration at every energy forward, BatchNorm batch stats)
        return reference_sample(E_ref, G_ref, latents, sample_steps, sampler.step_size, sampler.noise_scale)

    results: dict = {"args": vars(args), "load_start": load_start, "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "device": str(device)}
    reset_peak_memory(device)
    sections = []
    if not args.skip_training:
        sections.append(("train", opt_step, ref_step, args.batch_size))
    if not args.skip_sampling:
        sections.append(("sample", opt_sample, ref_sample, sample_batch))
    for name, fn_opt, fn_ref, batch in sections:
        times = {"optimised": [], "reference": []}
        flops = {}
        t_compile = None
        for r in range(args.warmup + args.repeats):
            # the first warm-up run of each mode also counts the FLOPs (FlopCounterMode slows it: never timed)
            count = r == 0 and args.warmup > 0 and not args.skip_flops
            t_opt = timed(fn_opt, device, flops if count and not args.compile else None, "optimised")
            if r == 0 and args.compile:
                t_compile = t_opt
            t_ref = timed(fn_ref, device, flops if count else None, "reference") if args.reference else None
            if r >= args.warmup:
                times["optimised"].append(t_opt)
                if t_ref is not None:
                    times["reference"].append(t_ref)
            print(f"  {name} run {r + 1}{' (warm-up)' if r < args.warmup else ''}: optimised {t_opt:.3f} s"
                  + (f", reference {t_ref:.3f} s" if t_ref is not None else "")
                  + f"  [load {os.getloadavg()[0]:.2f}]", flush=True)
        med = {k: statistics.median(v) for k, v in times.items() if v}
        entry = {"median_s": med, "runs_s": times, "batch": batch, "flops": flops}
        if t_compile is not None:
            entry["first_call_s"] = t_compile
        if name == "sample":
            entry["images_per_s"] = {k: batch / v for k, v in med.items()}
        n_flops = flops.get("optimised") or flops.get("reference")
        if n_flops:
            entry["gflops_per_s"] = {k: n_flops / v / 1e9 for k, v in med.items()}
        results[name] = entry
    results["peak_memory_bytes"] = peak_memory_bytes(device)

    if args.precision == "bf16" and not args.skip_training:
        results["bf16_deviation"] = bf16_deviation(args, config, device, data, memory_format)
    results["conv_ceiling_gflops"] = measure_conv_ceiling(device, f"{torch.get_num_threads()} threads")
    results["load_end"] = os.getloadavg()
    report(results, args)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(results, f, indent=2, default=str)
        os.replace(tmp, path)
    return 0


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
        out[precision] = dual_mcmc_step(data, E, G, I, make_optimizers(E, G, I, teaching), teaching,
                                        autocast=autocast_factory(device, precision), memory_format=memory_format,
                                        keep_tensors=True)
    a, b = out["fp32"], out["bf16"]
    rev_a = a.extras["revised"] - a.extras["proposals"]
    rev_b = b.extras["revised"] - b.extras["proposals"]
    rel = {k: abs(b.as_dict()[k] - v) / max(abs(v), 1e-12) for k, v in a.as_dict().items()}
    rel["revision"] = ((rev_b - rev_a).norm() / rev_a.norm().clamp_min(1e-12)).item()
    rel["revision_cosine"] = torch.nn.functional.cosine_similarity(rev_a.flatten(), rev_b.flatten(), dim=0).item()
    rel["samples"] = ((b.extras["samples"] - a.extras["samples"]).norm() / a.extras["samples"].norm()).item()
    return rel


def report(results: dict, args) -> None:
    print()
    print("| measure | optimised | reference | ratio (reference / optimised) |")
    print("| --- | --- | --- | --- |")
    if "train" in results:
        med = results["train"]["median_s"]
        ref = med.get("reference")
        print(f"| training iteration (s, median) | {med['optimised']:.3f} | {ref:.3f} | **{ref / med['optimised']:.2f}x** |"
              if ref else f"| training iteration (s, median) | {med['optimised']:.3f} | - | - |")
        g = results["train"].get("gflops_per_s")
        if g:
            fl = results["train"]["flops"]
            n = fl.get("optimised") or fl.get("reference")
            same = "" if len(set(fl.values())) == 1 else f" (reference counts {fl.get('reference', 0) / 1e9:.2f})"
            print(f"| training GFLOP/s ({n / 1e9:.2f} GFLOP/iteration{same}) | {g['optimised']:.1f} | "
                  f"{g.get('reference', float('nan')):.1f} | |")
    if "sample" in results:
        ips = results["sample"]["images_per_s"]
        ref = ips.get("reference")
        print(f"| sampling (images/s, {args.sample_steps or 'config'} x-steps) | {ips['optimised']:.2f} | "
              + (f"{ref:.2f} | **{ips['optimised'] / ref:.2f}x** |" if ref else "- | - |"))
        g = results["sample"].get("gflops_per_s")
        if g:
            fl = results["sample"]["flops"]
            n = fl.get("optimised") or fl.get("reference")
            print(f"| sampling GFLOP/s ({n / 1e9:.2f} GFLOP/call) | {g['optimised']:.1f} | "
                  f"{g.get('reference', float('nan')):.1f} | |")
    print()
    print(f"peak memory: {results['peak_memory_bytes'] / 2**20:.0f} MiB "
          f"({'CUDA max allocated' if results['device'].startswith('cuda') else 'process peak RSS, both modes'})")
    if "train" in results and "first_call_s" in results["train"]:
        print(f"first optimised iteration (includes torch.compile): {results['train']['first_call_s']:.1f} s")
    c = results["conv_ceiling_gflops"]
    print(f"conv ceiling (3x3 64->64, 32x32, batch 32, {c['note']}): fp32 NCHW {c['fp32_nchw']:.0f}, fp32 NHWC "
          f"{c['fp32_nhwc']:.0f}, bf16 NCHW {c['bf16_nchw']:.0f}, bf16 NHWC {c['bf16_nhwc']:.0f} GFLOP/s")
    if "bf16_deviation" in results:
        d = results["bf16_deviation"]
        print("bf16 vs fp32, one iteration from the same state: relative deviation "
              + ", ".join(f"{k} {v:.2e}" for k, v in d.items() if k != "revision_cosine")
              + f"; cosine(revision) {d['revision_cosine']:.5f}")
    ls, le = results["load_start"], results["load_end"]
    print(f"load average: start {ls[0]:.2f} {ls[1]:.2f} {ls[2]:.2f}, end {le[0]:.2f} {le[1]:.2f} {le[2]:.2f} "
          f"(on {os.cpu_count()} cpus)")


if __name__ == "__main__":
    sys.exit(main())

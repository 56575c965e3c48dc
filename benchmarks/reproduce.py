"""Train dual-MCMC teaching and its baselines under one budget, evaluate them, print a markdown table.

Toy suite (2-D data, MLPs, exact grid-normalised density; see ``hf_dualmcmc.toy``)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/reproduce.py --suite toy \
        --toys 8gaussians,rings,checkerboard --seeds 0,1,2 --iterations 600

MNIST suite (the 10k test split under ../shared/data/mnist, padded to 32 px; trains through ``hf_dualmcmc.trainer``
with ``teaching.method``; evaluation needs ``hf_dualmcmc.evaluation``)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/reproduce.py --suite mnist --seeds 0 --mnist-steps 400

Every run writes ``CACHE/<suite>/<dataset>/<method>/seed<k>.json`` (settings, iterations, seconds, metrics; toys also
a ``.npz`` with the arrays for the plots) and is skipped when that file exists (``--force`` retrains), so the suite
can be run in pieces, across sessions, and the table rebuilt from the cache alone with ``--table-only``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
METHODS = ("dual_mcmc", "cooperative", "short_run", "inference_only")
DEFAULT_TOYS = ("8gaussians", "rings", "checkerboard")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_path(cache: Path, suite: str, dataset: str, method: str, seed: int) -> Path:
    return cache / suite / dataset / method / f"seed{seed}.json"


def environment() -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


# ----------------------------------------------------------------------------------------------------------------
# toy suite
# ----------------------------------------------------------------------------------------------------------------


def run_toy(args, toy: str, method: str, seed: int) -> dict:
    from hf_dualmcmc.toy import evaluate_toy, toy_teaching_config, train_toy

    path = run_path(args.cache_dir, "toy", toy, method, seed)
    if path.exists() and not args.force:
        return json.loads(path.read_text())
    teaching = toy_teaching_config(x_steps=args.x_steps)
    run = train_toy(toy, method, seed, iterations=args.iterations, batch_size=args.batch_size, teaching=teaching,
                    max_seconds=args.max_seconds)
    started = time.perf_counter()
    metrics, arrays = evaluate_toy(run)
    record = {
        "suite": "toy", "dataset": toy, "method": method, "seed": seed, "iterations": run.iterations,
        "train_seconds": run.seconds, "eval_seconds": time.perf_counter() - started, "batch_size": args.batch_size,
        "max_seconds": args.max_seconds, "teaching": run.teaching.to_dict(), "metrics": metrics,
        "environment": environment(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **{k: np.asarray(v, dtype=np.float16) for k, v in arrays.items()})
    os.replace(tmp, path.with_suffix(".npz"))
    atomic_write(path, json.dumps(record, indent=2))
    print(f"[toy] {toy:12s} {method:15s} seed {seed}: {run.iterations} it, {run.seconds:.1f} s, "
          + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)
    return record


def fmt(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    vals = [v * scale for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "-"
    mean = float(np.mean(vals))
    if len(vals) == 1:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {float(np.std(vals, ddof=1)):.2g}"


TOY_COLUMNS = [
    ("KL(data‖model)", "kl", 1.0), ("NLL (nats)", "nll", 1.0),
    ("MMD² revised ×1e3", "mmd_revised", 1e3), ("MMD² G(z) ×1e3", "mmd_proposals", 1e3),
    ("fine MMD² revised ×1e3", "mmd_fine_revised", 1e3), ("fine MMD² G(z) ×1e3", "mmd_fine_proposals", 1e3),
    ("recon MSE Inf", "recon_mse_inf", 1.0), ("recon MSE Inf+L", "recon_mse_inf_l", 1.0),
]


def toy_table(records: list[dict]) -> str:
    head = ["toy", "method", "seeds", "iterations", "train s"] + [c[0] for c in TOY_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    floors = {}
    by_key: dict[tuple, list[dict]] = {}
    for r in records:
        by_key.setdefault((r["dataset"], r["method"]), []).append(r)
        floors.setdefault(r["dataset"], []).append(r["metrics"]["mmd_data"])
    for (toy, method), rs in sorted(by_key.items(), key=lambda kv: (kv[0][0], METHODS.index(kv[0][1]))):
        row = [toy, method, str(len(rs)), fmt([r["iterations"] for r in rs], digits=4),
               fmt([r["train_seconds"] for r in rs])]
        row += [fmt([r["metrics"].get(key) for r in rs], scale) for _, key, scale in TOY_COLUMNS]
        lines.append("| " + " | ".join(row) + " |")
    floor_txt = "; ".join(f"{t}: {np.mean(v) * 1e3:.3g}" for t, v in sorted(floors.items()))
    return "\n".join(lines) + f"\n\nMMD² ×1e3 of two independent data samples (estimator floor): {floor_txt}\n"


def toy_plots(args, toys, methods) -> list[Path]:
    from hf_dualmcmc.toy import plot_toy

    out = []
    for toy in toys:
        panels = {}
        for m in methods:
            npz = run_path(args.cache_dir, "toy", toy, m, args.plot_seed).with_suffix(".npz")
            if npz.exists():
                with np.load(npz) as f:
                    panels[m] = {k: f[k].astype(np.float32) for k in f.files}
        if panels:
            path = args.out_dir / f"toy_{toy}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            plot_toy(toy, panels, path)
            out.append(path)
    return out


# ----------------------------------------------------------------------------------------------------------------
# MNIST suite
# ----------------------------------------------------------------------------------------------------------------


def mnist_config(args, method: str, seed: int, output_dir: Path):
    from hf_dualmcmc.trainer import TrainConfig

    return TrainConfig.from_dict({
        # data.py's MNIST "train" is images [0, 9000); the evaluation holds out [8000, 10000): train on [0, 8000)
        "data": {"source": "mnist", "split": "train", "image_size": 32, "num_channels": 1, "resize": "pad",
                 "max_images": 8000},
        "model": {"latent_dim": 32, "ngf": args.mnist_width, "ndf": args.mnist_width, "nif": args.mnist_width // 2},
        "teaching": {"method": method, "x_steps": args.x_steps},
        "sampler": {"num_revision_steps": args.x_steps},
        "run": {"output_dir": str(output_dir), "batch_size": 64, "epochs": 1000, "max_steps": args.mnist_steps,
                "seed": seed, "sample_every": 0, "checkpoint_every": 100, "report_to": "none",
                "dataset_name": "mnist"},
    })


def run_mnist(args, method: str, seed: int) -> dict:
    from hf_dualmcmc.trainer import train

    path = run_path(args.cache_dir, "mnist", "mnist", method, seed)
    if path.exists() and not args.force:
        return json.loads(path.read_text())
    out_dir = path.with_suffix("")
    config = mnist_config(args, method, seed, out_dir)
    from hf_dualmcmc.trainer import list_checkpoints

    result = train(config, resume_from_checkpoint="latest" if list_checkpoints(out_dir) else None)
    record = {"suite": "mnist", "dataset": "mnist", "method": method, "seed": seed, "iterations": result.step,
              "train_seconds": result.seconds, "config": config.to_dict(), "pipeline": str(result.pipeline_dir),
              "environment": environment()}
    record["metrics"] = evaluate_mnist(result.pipeline_dir, args)
    atomic_write(path, json.dumps(record, indent=2))
    print(f"[mnist] {method}: {result.step} it, {result.seconds:.0f} s, {record['metrics']}", flush=True)
    return record


def evaluate_mnist(pipeline_dir, args) -> dict:
    try:
        from hf_dualmcmc.evaluation import (
            DomainFrechetScorer,
            builtin_split,
            reconstruction_mse,
            sample_images,
        )
    except ImportError as err:
        print(f"MNIST evaluation needs hf_dualmcmc.evaluation (the evaluation suite, issue #4), which is not "
              f"importable here ({err}); the trained pipeline is at {pipeline_dir}", file=sys.stderr)
        return {"error": "hf_dualmcmc.evaluation not importable"}
    from hf_dualmcmc import DualMCMCPipeline

    pipe = DualMCMCPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    scorer = DomainFrechetScorer("mnist", args.cache_dir / "mnist" / "eval-cache")
    metrics = {}
    proposals, revised, _ = sample_images(pipe, args.mnist_samples, batch_size=100, seed=0, progress=False)
    if pipe.energy_model is not None:
        metrics["domain_fd_revised"] = scorer.distance(revised)
    if pipe.generator_model is not None:
        metrics["domain_fd_proposals"] = scorer.distance(proposals)
    if pipe.encoder is not None:
        held_out = builtin_split("mnist", "test")[0][:500]
        rec = reconstruction_mse(pipe, held_out, seed=0, progress=False)
        metrics.update({k: rec[k] for k in ("mse_inf", "mse_inf_plus_l") if k in rec})
    return metrics


def mnist_table(records: list[dict]) -> str:
    cols = [("FD revised", "domain_fd_revised"), ("FD G(z)", "domain_fd_proposals"), ("recon MSE Inf", "mse_inf"),
            ("recon MSE Inf+L", "mse_inf_plus_l")]
    head = ["method", "iterations", "train s"] + [c for c, _ in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in sorted(records, key=lambda r: METHODS.index(r["method"])):
        row = [r["method"], str(r["iterations"]), f"{r['train_seconds']:.0f}"]
        row += [fmt([r["metrics"].get(k)]) for _, k in cols]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=("toy", "mnist"), required=True)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    p.add_argument("--toys", default=",".join(DEFAULT_TOYS), help="comma-separated toy names (hf_dualmcmc.toy)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=600, help="toy: training iterations per run (all methods)")
    p.add_argument("--max-seconds", type=float, default=None, help="toy: also stop a run after this wall clock")
    p.add_argument("--batch-size", type=int, default=200, help="toy batch size")
    p.add_argument("--x-steps", type=int, default=30, help="x-chain steps (training and evaluation)")
    p.add_argument("--mnist-steps", type=int, default=400, help="MNIST: training iterations per method")
    p.add_argument("--mnist-width", type=int, default=32, help="MNIST: ngf = ndf (nif = half)")
    p.add_argument("--mnist-samples", type=int, default=1000)
    p.add_argument("--cache-dir", type=Path, default=REPO / "benchmarks" / "cache")
    p.add_argument("--out-dir", type=Path, default=REPO / "docs" / "results", help="plots and table")
    p.add_argument("--plot-seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="retrain runs that are already cached")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table (and plots) from the cache")
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    bad = set(args.methods) - set(METHODS)
    if bad:
        p.error(f"unknown methods {sorted(bad)}; expected some of {METHODS}")
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.toys = [t for t in args.toys.split(",") if t]
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.suite == "toy":
        from hf_dualmcmc.toy import TOY_DATASETS

        unknown = set(args.toys) - set(TOY_DATASETS)
        if unknown:
            raise SystemExit(f"unknown toys {sorted(unknown)}; expected some of {sorted(TOY_DATASETS)}")
        records = []
        for toy in args.toys:
            for method in args.methods:
                for seed in args.seeds:
                    path = run_path(args.cache_dir, "toy", toy, method, seed)
                    if args.table_only:
                        if path.exists():
                            records.append(json.loads(path.read_text()))
                    else:
                        records.append(run_toy(args, toy, method, seed))
        table = toy_table(records)
        plots = toy_plots(args, args.toys, args.methods)
        atomic_write(args.out_dir / "toy_table.md", table)
        print(table)
        for p in plots:
            print(f"plot: {p}")
        return table
    records = []
    for method in args.methods:
        for seed in args.seeds:
            path = run_path(args.cache_dir, "mnist", "mnist", method, seed)
            if args.table_only:
                if path.exists():
                    records.append(json.loads(path.read_text()))
            else:
                records.append(run_mnist(args, method, seed))
    table = mnist_table(records)
    atomic_write(args.out_dir / "mnist_table.md", table)
    print(table)
    return table


if __name__ == "__main__":
    main()

"""Does Langevin revision on the learned energy improve the generator's proposals? FD against revision steps.

For each trained MNIST (or ``--domain digits``) pipeline and each sampler setting (step size, noise), one x-chain of
``--max_steps`` steps is run from the same generator proposals ``G(z)`` (2,000 samples, batches of 100, seed 0); the
chain state is kept at the ``--record`` steps. Every kept set is scored by the domain FD
(``hf_dualmcmc.evaluation.DomainFrechetScorer``: the committed MNIST classifier against the 1,000 held-out images;
digits: 180), and the gain ``FD(step 0) - FD(step k)`` gets a paired bootstrap interval (the same resampled sample
indices at every step, the reference resampled too). The chain also reports why it helps or not: the mean energy
of the samples against the held-out data's, and how far the chain moved the pixels (RMS per pixel, in [-1, 1]
units). Floor: FD of 2,000 training images (digits: all 1,617) against the same reference.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/revision_gain.py \
        --pipeline seed0=benchmarks/cache/mnist/mnist/dual_mcmc+recipe-ema/seed0/pipeline \
        --settings 0.4:0.001,1.0:0.001 --out docs/results/revision_gain

writes ``OUT.json`` (every number), ``OUT.md`` (the table) and ``OUT.png`` (FD and energy against steps).
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

import numpy as np
import torch

from hf_dualmcmc.atomic import atomic_write
from hf_dualmcmc.cli import ArgumentParser

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"  # the default of $HF_DUALMCMC_MNIST_DIR


def revision_trajectory(
    pipe,
    num_samples: int,
    max_steps: int,
    record: list[int],
    step_size: float,
    noise_scale: float,
    batch_size: int = 100,
    seed: int = 0,
) -> dict:
    """One x-chain per batch from ``G(z)``; returns the ``uint8`` samples at every ``record`` step, the mean energy at
    every step and the RMS pixel displacement from the proposal at every ``record`` step."""
    from hf_dualmcmc.evaluation.images import to_uint8

    generator = torch.Generator().manual_seed(seed)
    kept = {k: [] for k in record}
    energies, moved = [], {k: [] for k in record}
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        states = {}

        def keep(pipe_, i, t, kwargs, states=states):  # after Langevin step i (0-based): the state after i + 1 steps
            if i + 1 in kept:
                states[i + 1] = kwargs["sample"].clone()
            return {}

        out = pipe(
            batch_size=n,
            num_inference_steps=max_steps,
            step_size=step_size,
            noise_scale=noise_scale,
            generator=generator,
            output_type="pt",
            return_proposals=True,
            return_energies=True,
            callback_on_step_end=keep,
        )
        x0 = out.proposals * 2 - 1
        states[0] = x0
        for k in record:
            kept[k].append(to_uint8((states[k] / 2 + 0.5).clamp(0, 1)))
            moved[k].append(((states[k] - x0) ** 2).mean(dim=(1, 2, 3)))
        energies.append(out.energies)
    energies = torch.cat(energies, dim=1)
    return {
        "images": {k: np.concatenate(v) for k, v in kept.items()},
        "mean_energy": energies.mean(dim=1).tolist(),
        "rms_move": {k: float(torch.cat(v).mean().sqrt()) for k, v in moved.items()},
    }


def fd_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    from hf_dualmcmc.evaluation.fid import frechet_distance

    return frechet_distance(fid_features_to_statistics(a.double()), fid_features_to_statistics(b.double()))


def bootstrap_gains(features: dict[int, torch.Tensor], reference: torch.Tensor, num_boot: int, seed: int = 0) -> dict:
    """Paired bootstrap of ``FD(step 0) - FD(step k)``: 2.5/97.5 percentiles over ``num_boot`` resamples."""
    rng = np.random.default_rng(seed)
    n, m = len(features[0]), len(reference)
    gains = {k: [] for k in features if k}
    for _ in range(num_boot):
        idx, ridx = torch.from_numpy(rng.integers(0, n, n)), torch.from_numpy(rng.integers(0, m, m))
        ref = reference[ridx]
        base = fd_from_features(features[0][idx], ref)
        for k in gains:
            gains[k].append(base - fd_from_features(features[k][idx], ref))
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in gains.items()}


def parse_args(argv=None):
    from hf_dualmcmc.evaluation.domain import DOMAIN_DATASETS

    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--pipeline",
        action="append",
        required=True,
        metavar="NAME=DIR",
        help="a trained pipeline (repeatable); NAME labels its rows",
    )
    p.add_argument(
        "--settings",
        default="0.4:0.001",
        help="comma-separated STEP_SIZE:NOISE x-chain settings (default: the authors' sampler, 0.4:0.001)",
    )
    p.add_argument("--max_steps", type=int, default=200)
    p.add_argument("--record", default="5,10,15,30,50,70,100,150,200", help="steps at which the chain is scored")
    p.add_argument("--num_samples", type=int, default=2000)
    p.add_argument("--num_boot", type=int, default=300)
    p.add_argument(
        "--domain",
        choices=DOMAIN_DATASETS,
        default="mnist",
        help="the pipelines' dataset: its domain classifier, held-out split and training images (floor)",
    )
    p.add_argument(
        "--cache_dir",
        type=Path,
        default=None,
        help="domain classifier cache (default: benchmarks/cache/DOMAIN/eval-cache, reproduce.py's)",
    )
    p.add_argument("--out", type=Path, required=True, help="output prefix: OUT.json, OUT.md, OUT.png")
    args = p.parse_args(argv)
    pipelines = {}
    for item in args.pipeline:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_dir():
            p.error(f"--pipeline must be NAME=DIR with an existing directory, got {item!r}")
        pipelines[name] = Path(path)
    args.pipeline = pipelines
    args.cache_dir = args.cache_dir or REPO / "benchmarks" / "cache" / args.domain / "eval-cache"
    try:
        args.settings = [tuple(float(v) for v in s.split(":")) for s in args.settings.split(",") if s]
        args.record = sorted({0, *(int(k) for k in args.record.split(",") if k)})
    except ValueError as err:
        p.error(f"--settings must be STEP:NOISE pairs and --record integers ({err})")
    if any(len(s) != 2 or s[0] <= 0 or s[1] < 0 for s in args.settings):
        p.error(f"--settings must be STEP_SIZE:NOISE with STEP_SIZE > 0 and NOISE >= 0, got {args.settings}")
    if args.record[-1] > args.max_steps:
        p.error(f"--record steps must be <= --max_steps {args.max_steps}, got {args.record[-1]}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if MNIST_DIR.is_dir():  # this repository's development data
        os.environ.setdefault("HF_DUALMCMC_MNIST_DIR", str(MNIST_DIR))
    from hf_dualmcmc import DualMCMCPipeline
    from hf_dualmcmc.evaluation import DomainFrechetScorer, builtin_split
    from hf_dualmcmc.evaluation.analysis import markdown_table, write_json

    scorer = DomainFrechetScorer(args.domain, args.cache_dir)
    held_out = builtin_split(args.domain, "test")[0]
    reference = scorer.features(held_out)
    train = builtin_split(args.domain, "train")[0][: args.num_samples]  # all 1,617 digits when fewer
    floor = fd_from_features(scorer.features(train), reference)
    results, rows = (
        {"domain": args.domain, "floor": floor, "floor_n": len(train), "num_samples": args.num_samples, "runs": []},
        [],
    )
    for name, path in args.pipeline.items():
        pipe = DualMCMCPipeline.from_pretrained(path)
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            data_energy = float(pipe._energy(pipe.preprocess(held_out[:500])).mean())
        for step_size, noise in args.settings:
            started = time.perf_counter()
            traj = revision_trajectory(pipe, args.num_samples, args.max_steps, args.record, step_size, noise)
            feats = {k: scorer.features(v) for k, v in traj["images"].items()}
            fds = {k: fd_from_features(f, reference) for k, f in feats.items()}
            ci = bootstrap_gains(feats, reference, args.num_boot)
            run = {
                "pipeline": name,
                "step_size": step_size,
                "noise_scale": noise,
                "fd": fds,
                "gain_ci95": ci,
                "mean_energy": traj["mean_energy"],
                "data_energy": data_energy,
                "rms_move": traj["rms_move"],
                "seconds": time.perf_counter() - started,
            }
            results["runs"].append(run)
            for k in args.record:
                rows.append(
                    {
                        "pipeline": name,
                        "step": step_size,
                        "noise": noise,
                        "steps": k,
                        "FD": fds[k],
                        "gain": fds[0] - fds[k],
                        "gain 95% CI": "-" if not k else f"[{ci[k][0]:.3f}, {ci[k][1]:.3f}]",
                        "mean E": traj["mean_energy"][k],
                        "E(held-out)": data_energy,
                        "RMS move": traj["rms_move"][k],
                    }
                )
            print(
                f"{name} step {step_size} noise {noise}: FD {fds[0]:.3f} -> {fds[args.record[-1]]:.3f} "
                f"({run['seconds']:.0f} s)",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), results)
    table = markdown_table(rows) + f"\nFloor ({len(train):,} training images vs the held-out reference): {floor:.3f}\n"
    atomic_write(args.out.with_suffix(".md"), table)
    plot(results, args.out.with_suffix(".png"))
    print(table)
    return results


def plot(results: dict, path: Path) -> None:
    """FD against revision steps (left) and the mean energy relative to the held-out data's (right), one line per
    pipeline and setting; ``results`` as returned by :func:`main` or read back from its JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_fd, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    for run in results["runs"]:
        label = f"{run['pipeline']}, step {run['step_size']:g}, noise {run['noise_scale']:g}"
        steps = sorted(run["fd"], key=int)
        (line,) = ax_fd.plot([int(k) for k in steps], [run["fd"][k] for k in steps], marker="o", label=label)
        ax_e.plot(
            range(len(run["mean_energy"])),
            [e - run["data_energy"] for e in run["mean_energy"]],
            color=line.get_color(),
            label=label,
        )
    ax_fd.axhline(results["floor"], color="k", linestyle="--", label="floor (real vs real)")
    ax_e.axhline(0.0, color="k", linestyle=":")
    ax_fd.set(
        xlabel="revision steps", ylabel=f"domain FD ({results['num_samples']:,} samples)", title="FD of revised samples"
    )
    ax_e.set(xlabel="revision steps", ylabel="mean E(x_t) - mean E(held-out data)", title="energy along the chain")
    ax_fd.legend(fontsize=7)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, png.getvalue())


if __name__ == "__main__":
    main()

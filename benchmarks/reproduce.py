"""Train dual-MCMC teaching and its baselines under one budget, evaluate them, print a markdown table.

Toy suite (2-D data, MLPs, exact grid-normalised density; see ``benchmarks/toy.py``)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/reproduce.py --suite toy \
        --toys 8gaussians,rings,checkerboard --seeds 0,1,2 --iterations 600

MNIST suite (the 10k test split in $HF_DUALMCMC_MNIST_DIR, default ../shared/data/mnist: trains on data.py's "train"
partition, images 0-8999, padded to 32 px, through ``hf_dualmcmc.trainer`` with ``teaching.method``; evaluates on the
held-out 9000-9999 with ``hf_dualmcmc.evaluation``; defaults: 400 iterations, batch 32, 15-step x-chains, about 12
minutes for dual-MCMC on 2 cores)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/reproduce.py --suite mnist --seeds 0

Every run writes ``CACHE/<suite>/<dataset>/<method>/seed<k>.json`` (settings, iterations, seconds, metrics; toys also
a ``.npz`` with the arrays for the plots) and is skipped when that file exists (``--force`` retrains), so the suite
can be run in pieces, across sessions, and the table rebuilt from the cache alone with ``--table_only``. MNIST
variants (``--variant NAME --set section.key=value``) are cached as ``METHOD+NAME``; the MNIST table lists every
cached run of the given seeds, and a second table the energy-gap trajectory of the runs that recorded it (mean
``|E(data) - E(samples)|`` over windows of 50 steps, from the run's ``history.jsonl``).

bf16 against float32, at equal iterations and at equal wall clock (no step limit: ``run.max_minutes`` decides; a
wall-clock run is never resumed, it starts over)::

    ... --suite mnist --methods dual_mcmc --seeds 0,1 --variant bf16 --set run.mixed_precision=bf16
    ... --suite mnist --methods dual_mcmc --seeds 0,1 --variant bf16-wall --set run.mixed_precision=bf16 \
        --set run.max_minutes=11.6 --set run.max_steps=null

(``benchmarks/run_bf16_study.sh`` runs the whole comparison.)

Digits suite (scikit-learn's bundled 8x8 digits, offline: trains ``configs/digits.yaml`` or ``--config``, evaluates on
the 180 held-out digits with the same metrics; the floor uses all 1,617 training digits when ``--samples`` is larger)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/reproduce.py --suite digits --methods dual_mcmc --seeds 0,1 \
        --samples 2000

A recipe file instead of the suite's settings (``--config``: the YAML's sections as written, plus this suite's method,
seed, output folder and evaluation; cached as ``METHOD+config-STEM`` unless ``--variant`` names it), e.g. the CPU
recipe of issue #16 (``benchmarks/run_quality_study.sh`` runs that whole study)::

    ... --suite mnist --config configs/mnist.yaml --mnist_samples 2000 --methods dual_mcmc --seeds 0,1 \
        --variant recipe-ema --set run.max_minutes=null --set run.use_ema=true
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/toy.py, also when imported from elsewhere
from hf_dualmcmc.atomic import atomic_write  # noqa: E402
from hf_dualmcmc.cli import ArgumentParser  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"  # the default of $HF_DUALMCMC_MNIST_DIR
METHODS = ("dual_mcmc", "cooperative", "short_run", "inference_only")
# the image suites: the data.source names of the dataset each one evaluates on (hf_dualmcmc.evaluation's builtins)
SUITE_SOURCES = {"mnist": ("mnist",), "digits": ("sklearn:digits", "digits")}
DEFAULT_TOYS = ("8gaussians", "rings", "checkerboard")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


def write_npz(path: Path, arrays: dict) -> None:
    """``np.savez_compressed`` to ``path``, atomically (a killed run leaves no half-written cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def run_path(cache: Path, suite: str, dataset: str, method: str, seed: int) -> Path:
    return cache / suite / dataset / method / f"seed{seed}.json"


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


# ----------------------------------------------------------------------------------------------------------------
# toy suite
# ----------------------------------------------------------------------------------------------------------------


def run_toy(args, toy: str, method: str, seed: int) -> dict:
    from toy import evaluate_toy, toy_teaching_config, train_toy

    path = run_path(args.cache_dir, "toy", toy, method, seed)
    if path.exists() and not args.force:
        return json.loads(path.read_text())
    teaching = toy_teaching_config(num_steps=args.x_steps)
    run = train_toy(
        toy,
        method,
        seed,
        iterations=args.iterations,
        batch_size=args.batch_size,
        teaching=teaching,
        max_seconds=args.max_seconds,
    )
    started = time.perf_counter()
    metrics, arrays = evaluate_toy(run)
    record = {
        "suite": "toy",
        "dataset": toy,
        "method": method,
        "seed": seed,
        "iterations": run.iterations,
        "train_seconds": run.seconds,
        "eval_seconds": time.perf_counter() - started,
        "batch_size": args.batch_size,
        "max_seconds": args.max_seconds,
        "teaching": run.teaching.to_dict(),
        "metrics": metrics,
        "environment": environment(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_npz(path.with_suffix(".npz"), {k: np.asarray(v, dtype=np.float16) for k, v in arrays.items()})
    write_text(path, json.dumps(record, indent=2))
    print(
        f"[toy] {toy:12s} {method:15s} seed {seed}: {run.iterations} it, {run.seconds:.1f} s, "
        + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
        flush=True,
    )
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
    ("KL(data‖model)", "kl", 1.0),
    ("NLL (nats)", "nll", 1.0),
    ("MMD² revised ×1e3", "mmd_revised", 1e3),
    ("MMD² G(z) ×1e3", "mmd_proposals", 1e3),
    ("fine MMD² revised ×1e3", "mmd_fine_revised", 1e3),
    ("fine MMD² G(z) ×1e3", "mmd_fine_proposals", 1e3),
    ("recon MSE Inf", "recon_mse_inf", 1.0),
    ("recon MSE Inf+L", "recon_mse_inf_l", 1.0),
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
        row = [
            toy,
            method,
            str(len(rs)),
            fmt([r["iterations"] for r in rs], digits=4),
            fmt([r["train_seconds"] for r in rs]),
        ]
        row += [fmt([r["metrics"].get(key) for r in rs], scale) for _, key, scale in TOY_COLUMNS]
        lines.append("| " + " | ".join(row) + " |")
    floor_txt = "; ".join(f"{t}: {np.mean(v) * 1e3:.3g}" for t, v in sorted(floors.items()))
    return "\n".join(lines) + f"\n\nMMD² ×1e3 of two independent data samples (estimator floor): {floor_txt}\n"


def toy_plots(args, toys, methods) -> list[Path]:
    from toy import plot_toy

    out = []
    for toy in toys:
        panels = {}
        for m in methods:
            npz = run_path(args.cache_dir, "toy", toy, m, args.plot_seed).with_suffix(".npz")
            if npz.exists():
                with np.load(npz, allow_pickle=False) as f:  # plain arrays only: never unpickle a cache
                    panels[m] = {k: f[k].astype(np.float32) for k in f.files}
        if panels:
            path = args.out_dir / f"toy_{toy}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            plot_toy(toy, panels, path)
            out.append(path)
    return out


# ----------------------------------------------------------------------------------------------------------------
# MNIST and digits suites
# ----------------------------------------------------------------------------------------------------------------


def run_name(method: str, variant: str | None) -> str:
    """Cache folder of an MNIST or digits run: the method, or ``method+variant`` for a run with ``--set`` overrides."""
    return method if not variant else f"{method}+{variant}"


def image_config(args, method: str, seed: int, output_dir: Path):
    """The training config of one run of the MNIST or digits suite (``args.suite``)."""
    from hf_dualmcmc.training_config import TrainConfig, apply_overrides, load_config

    if args.config is not None:  # a recipe file (e.g. configs/mnist.yaml): its settings, this suite's bookkeeping
        config = load_config(
            args.config,
            [
                f"teaching.method={method}",
                f"run.output_dir={output_dir}",
                f"run.seed={seed}",
                "run.sample_every=0",
                "run.report_to=none",
                "run.push_to_hub=false",
                f"run.dataset_name={args.suite}",
                *args.overrides,
            ],
        )
        if config.data.source not in SUITE_SOURCES[args.suite]:
            raise SystemExit(
                f"--config {args.config}: the {args.suite} suite evaluates on the held-out split of "
                f"{args.suite}, so the config must train on data.source: {SUITE_SOURCES[args.suite][0]}, "
                f"got {config.data.source!r}"
            )
        return config
    raw = apply_overrides(
        {
            # data.py's MNIST "train" is images [0, 9000); the evaluation (FD reference, reconstructions) uses its
            # held-out "test" split [9000, 10000)
            "data": {"source": "mnist", "split": "train", "image_size": 32, "num_channels": 1, "resize": "pad"},
            "model": {"latent_dim": 32, "ngf": args.mnist_width, "ndf": args.mnist_width, "nif": args.mnist_width // 2},
            "teaching": {"method": method, "num_steps": args.mnist_x_steps},
            "run": {
                "output_dir": str(output_dir),
                "batch_size": args.mnist_batch_size,
                "epochs": 1000,
                "max_steps": args.mnist_steps,
                "seed": seed,
                "sample_every": 0,
                "checkpoint_every": 100,
                "report_to": "none",
                "dataset_name": "mnist",
                "mixed_precision": None,  # float32 on every machine, as the cached runs ("auto" may pick bf16)
            },
        },
        args.overrides,
    )
    config = TrainConfig.from_dict(raw)
    # samples are drawn with the training x-chain (steps, step size, noise), as for the toys: a short-run EBM is only
    # meant to be sampled with the chain it was trained with; a `--set sampler.KEY=...` still wins
    chain = {
        "num_inference_steps": config.teaching.num_steps,
        "step_size": config.teaching.step_size,
        "noise_scale": config.teaching.chain_noise,
    }
    for key, value in chain.items():
        if key not in (raw.get("sampler") or {}):
            setattr(config.sampler, key, value)
    return config


def comparable(config: dict) -> dict:
    """A run's settings without where it was written (the cache may be moved or cloned elsewhere), read through the
    current schema: keys added since the run was cached take their defaults, renamed keys their new names."""
    from hf_dualmcmc.training_config import TrainConfig

    config = TrainConfig.from_dict(config).to_dict()
    return {
        section: {k: v for k, v in values.items() if (section, k) != ("run", "output_dir")}
        for section, values in config.items()
    }


def repo_relative(path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_image_suite(args, method: str, seed: int) -> dict:
    from hf_dualmcmc.checkpointing import checkpoint_step, list_checkpoints
    from hf_dualmcmc.trainer import train

    path = run_path(args.cache_dir, args.suite, args.suite, run_name(method, args.variant), seed)
    out_dir = path.with_suffix("")
    config = image_config(args, method, seed, out_dir)
    if path.exists() and not args.force:
        cached = json.loads(path.read_text())
        if comparable(cached.get("config", config.to_dict())) != comparable(config.to_dict()):
            raise SystemExit(
                f"{path} was trained with other settings than these; name this run with --variant "
                f"(and --set) or retrain it with --force"
            )
        if args.reevaluate:  # the cached run's pipelines scored again with this file's metrics (e.g. OOD)
            return evaluate_record(args, path, cached)
        if args.ood_checkpoints and "ood_trajectory" not in cached:
            cached["ood_trajectory"] = ood_trajectory(REPO / cached["config"]["run"]["output_dir"], args.suite)
            write_text(path, json.dumps(cached, indent=2))
        return cached
    # an interrupted run continues from its last checkpoint (its train_seconds then count this invocation only); one
    # killed before its first checkpoint, or one with a wall-clock budget (which cannot be split), starts over
    checkpoints = list_checkpoints(out_dir)
    resume = bool(checkpoints)
    if resume and config.run.max_minutes is not None:
        print(f"[{args.suite}] {out_dir}: a wall-clock-budget run cannot be continued; starting it over", flush=True)
        resume = False
    start_step = checkpoint_step(checkpoints[-1]) if resume else 0
    run = dataclasses.replace(config.run, overwrite_output_dir=not resume)
    result = train(dataclasses.replace(config, run=run), resume_from_checkpoint="latest" if resume else None)
    record = {
        "suite": args.suite,
        "dataset": args.suite,
        "method": method,
        "variant": args.variant,
        "overrides": args.overrides,
        "seed": seed,
        "iterations": result.step,
        "train_seconds": result.seconds,
        "resumed": resume,
        "start_step": start_step,  # a resumed run's train_seconds count the steps from here
        "mixed_precision": result.mixed_precision,
        "config": config.to_dict(),
        "pipeline": repo_relative(result.pipeline_dir),
        "num_samples": args.samples,
        "environment": environment(),
        "energy_gap_trajectory": energy_gap_trajectory(read_history(out_dir / "history.jsonl", result.history)),
    }
    record["config"]["run"]["output_dir"] = repo_relative(out_dir)
    record = evaluate_record(args, path, record)
    print(
        f"[{args.suite}] {run_name(method, args.variant)}: {result.step} it, {result.seconds:.0f} s, {record['metrics']}",
        flush=True,
    )
    return record


def evaluate_record(args, path: Path, record: dict) -> dict:
    """Score the run's exported pipeline (and, with ``--eval_steps``, the pipelines its checkpoints hold: e.g. step
    1,800 of a 3,600-step run is the 1,800-step recipe), store the metrics in ``record`` and write it to ``path``."""
    started = time.perf_counter()
    record["metrics"], grids = evaluate_images(REPO / record["pipeline"], args)
    run_dir = REPO / record["config"]["run"]["output_dir"]
    for step in args.eval_steps:
        folder = run_dir / "checkpoints" / f"checkpoint-{step}" / "pipeline"
        if not folder.is_dir():
            raise SystemExit(f"--eval_steps {step}: {folder} does not exist (run.export_at_checkpoints?)")
        record.setdefault("checkpoints", {})[str(step)] = evaluate_images(folder, args)[0]
    if args.ood_checkpoints:
        record["ood_trajectory"] = ood_trajectory(run_dir, args.suite)
    record["eval_seconds"] = time.perf_counter() - started
    if grids:
        write_npz(path.with_suffix(".npz"), grids)
    write_text(path, json.dumps(record, indent=2))
    return record


GAP_WINDOW = 50  # steps per point of the energy-gap trajectory


def read_history(path: Path, fallback: list[dict]) -> list[dict]:
    """A run's per-step records from its ``history.jsonl`` (all steps, also of a resumed run), else ``fallback``."""
    if not path.is_file():
        return fallback
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def energy_gap_trajectory(history: list[dict], window: int = GAP_WINDOW) -> dict:
    """Mean ``|E(data) - E(samples)|`` (the step records' ``energy_gap``) over consecutive windows of ``window``
    steps; ``steps`` is the last step of each window (the last window may be shorter)."""
    rows = [h for h in history if h.get("energy_gap") is not None]
    starts = range(0, len(rows), window)
    return {
        "window": window,
        "steps": [rows[min(i + window, len(rows)) - 1]["step"] for i in starts],
        "mean_abs_gap": [float(np.mean([h["energy_gap"] for h in rows[i : i + window]])) for i in starts],
    }


def evaluate_images(pipeline_dir, args) -> tuple[dict, dict]:
    """Domain FD of ``--samples`` revised samples and generator proposals against the suite's held-out split, the same
    distance for as many training images (the floor; all 1,617 digits when fewer), reconstruction MSE Inf / Inf+L on
    (up to) 500 held-out images; plus the first 64 samples of each kind (uint8) for the plots."""
    try:
        from hf_dualmcmc.evaluation import DomainFrechetScorer, builtin_split, reconstruction_mse, sample_images
    except ImportError as err:
        print(
            f"{args.suite} evaluation needs hf_dualmcmc.evaluation (the evaluation suite, issue #4), which is not "
            f"importable here ({err}); the trained pipeline is at {pipeline_dir}",
            file=sys.stderr,
        )
        return {"error": "hf_dualmcmc.evaluation not importable"}, {}
    from hf_dualmcmc import DualMCMCPipeline

    pipe = DualMCMCPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    scorer = DomainFrechetScorer(args.suite, args.cache_dir / args.suite / "eval-cache", steps=args.fd_classifier_steps)
    metrics, grids = {"domain_classifier_test_accuracy": scorer.info.get("test_accuracy")}, {}
    proposals, revised, _ = sample_images(pipe, args.samples, batch_size=100, seed=0, progress=False)
    train_images = builtin_split(args.suite, "train")[0][: args.samples]  # all of them when fewer (digits)
    metrics["domain_fd_train_data"] = scorer.distance(train_images)
    metrics["domain_fd_train_data_n"] = len(train_images)
    if pipe.energy_model is not None:
        metrics["domain_fd_revised"] = scorer.distance(revised)
        grids["revised"] = revised[:64]
    if pipe.generator_model is not None:
        metrics["domain_fd_proposals"] = scorer.distance(proposals)
        grids["proposals"] = proposals[:64]
    if pipe.encoder is not None:
        held_out = builtin_split(args.suite, "test")[0][:500]
        rec = reconstruction_mse(pipe, held_out, seed=0, progress=False)
        metrics.update({k: rec[k] for k in ("mse_inf", "mse_inf_plus_l") if k in rec})
    if pipe.energy_model is not None:
        metrics["ood_energy"] = ood_energy(pipe, args.suite)
    return metrics, grids


# the other handwriting of each suite's OOD protocol (docs/EVALUATION.md): the held-out split of the other data set
OOD_OTHER = {"mnist": "sklearn:digits", "digits": "mnist"}


def ood_energy(pipe, suite: str, num: int = 1000) -> dict:
    """Energy ``E(x)`` as an OOD score (docs/EVALUATION.md's protocol): in-distribution = the first ``num`` held-out
    images, OOD = as many uniform-noise, Gaussian-noise, constant and inverted images (seed 0) and the other digits
    set's held-out images resized to the model's size; ``{set: {"auroc", "fpr95"}}``."""
    from hf_dualmcmc.evaluation import builtin_split, load_images
    from hf_dualmcmc.evaluation.ood import ood_evaluation, synthetic_ood_sets

    held_out = builtin_split(suite, "test")[0][:num]
    c, h, _ = pipe.image_shape
    try:  # MNIST may be absent (HF_DUALMCMC_MNIST_DIR): the digits suite then scores without the other-digits set
        other = load_images(OOD_OTHER[suite], image_size=h, num_channels=c, max_images=num, resize="resize")
    except FileNotFoundError as err:
        print(f"[{suite}] OOD: no other-digits set ({err})", file=sys.stderr)
        other = None
    result = ood_evaluation(pipe, held_out, synthetic_ood_sets(held_out, other=other, seed=0), scores=["energy"])
    return {row["ood_set"]: {"auroc": row["auroc"], "fpr95": row["fpr95"]} for row in result["rows"]}


def ood_trajectory(run_dir: Path, suite: str) -> dict:
    """:func:`ood_energy` of the pipeline every checkpoint of a run holds (``run.export_at_checkpoints``), by step:
    how the energy's OOD ranking moves during training (the end point alone can be a lucky or unlucky draw)."""
    from hf_dualmcmc import DualMCMCPipeline
    from hf_dualmcmc.checkpointing import checkpoint_step, list_checkpoints

    out = {}
    for checkpoint in list_checkpoints(run_dir):
        if (checkpoint / "pipeline").is_dir():
            pipe = DualMCMCPipeline.from_pretrained(checkpoint / "pipeline")
            pipe.set_progress_bar_config(disable=True)
            out[str(checkpoint_step(checkpoint))] = ood_energy(pipe, suite)
    return out


def grid_tile(image: np.ndarray):
    """One uint8 ``[H, W, 1]`` sample as a PIL tile: MNIST's 32 px as it is, 8x8 digits 4x (nearest) in a grey frame."""
    from PIL import Image, ImageOps

    tile = Image.fromarray(image.squeeze(-1))
    zoom = max(1, 32 // tile.height)
    if zoom == 1:
        return tile
    return ImageOps.expand(tile.resize((tile.width * zoom, tile.height * zoom), Image.NEAREST), border=2, fill=128)


def image_plot(args, records: list[dict]) -> Path | None:
    """One figure: a row per run (of ``--plot_seed``), its revised samples (left) and its generator proposals
    (right), 8x8 each."""
    from diffusers.utils import make_image_grid
    from PIL import Image, ImageDraw

    from hf_dualmcmc.trainer import side_by_side

    rows = []
    for record in sorted(records, key=image_order):
        name = run_name(record["method"], record.get("variant"))
        npz = run_path(args.cache_dir, args.suite, args.suite, name, record["seed"]).with_suffix(".npz")
        if record["seed"] != args.plot_seed or not npz.exists():
            continue
        with np.load(npz, allow_pickle=False) as f:
            panels = {k: f[k] for k in f.files}
        some = next(iter(panels.values()))
        blank = np.full_like(some, 255)
        grids = [
            make_image_grid([grid_tile(im) for im in panels.get(kind, blank)], 8, 8)
            for kind in ("revised", "proposals")
        ]
        title = Image.new("L", (grids[0].width * 2 + 4, 14), 255)
        ImageDraw.Draw(title).text((2, 1), f"{name}: revised | G(z)", fill=0)
        body = side_by_side(*grids)
        row = Image.new("L", (body.width, body.height + title.height + 6), 255)
        row.paste(title, (0, 0))
        row.paste(body, (0, title.height))
        rows.append(row)
    if not rows:
        return None
    figure = Image.new("L", (rows[0].width, sum(r.height for r in rows)), 255)
    y = 0
    for row in rows:
        figure.paste(row, (0, y))
        y += row.height
    path = args.out_dir / f"{args.suite}_samples.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.save(path)
    return path


def image_order(record: dict) -> tuple:
    return METHODS.index(record["method"]), record.get("variant") or "", record["seed"]


def image_table(records: list[dict]) -> str:
    cols = [
        ("domain FD revised", "domain_fd_revised"),
        ("domain FD G(z)", "domain_fd_proposals"),
        ("recon MSE Inf", "mse_inf"),
        ("recon MSE Inf+L", "mse_inf_plus_l"),
    ]
    head = ["method", "overrides", "seeds", "iterations", "train s"] + [c for c, _ in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    by_run: dict[str, list[dict]] = {}
    for r in sorted(records, key=image_order):
        by_run.setdefault(run_name(r["method"], r.get("variant")), []).append(r)
    floors, floor_n = [], set()
    for name, rs in by_run.items():
        overrides = ", ".join(f"`{o}`" for o in rs[0].get("overrides") or []) or "-"
        row = [
            name,
            overrides,
            str(len(rs)),
            fmt([r["iterations"] for r in rs], digits=4),
            fmt([r["train_seconds"] for r in rs]),
        ]
        row += [fmt([r["metrics"].get(k) for r in rs]) for _, k in cols]
        lines.append("| " + " | ".join(row) + " |")
        floors += [r["metrics"]["domain_fd_train_data"] for r in rs if "domain_fd_train_data" in r["metrics"]]
        floor_n |= {
            r["metrics"].get("domain_fd_train_data_n", r.get("num_samples", 1000))
            for r in rs
            if "domain_fd_train_data" in r["metrics"]
        }
    text = "\n".join(lines) + "\n"
    if floors:
        text += (
            f"\nDomain FD of {'/'.join(map(str, sorted(floor_n)))} training images against the "
            f"held-out split (the floor): {np.mean(floors):.3g}\n"
        )
    return text + gap_table(by_run) + ood_table(by_run) + ood_trajectory_table(by_run)


OOD_COLUMNS = ("uniform_noise", "gaussian_noise", "constant", "inverted", "other_digits")


def seconds_per_iteration(record: dict) -> float | None:
    """Training seconds per iteration of the invocation that finished a run (a resumed run's ``train_seconds`` count
    the steps from its ``start_step``); None when it trained no step (or predates ``start_step`` and was resumed)."""
    start = record.get("start_step", None if record.get("resumed") else 0)
    steps = record["iterations"] - start if start is not None else 0
    return record["train_seconds"] / steps if steps > 0 else None


def ood_table(by_run: dict[str, list[dict]]) -> str:
    """Energy as an OOD score (AUROC / FPR@95, mean over seeds) next to the domain FDs and the time per iteration, for
    every run (and scored checkpoint) that recorded it."""
    rows = []
    for name, rs in by_run.items():
        points = [(r["iterations"], r["metrics"], r) for r in rs]
        points += [(int(k), m, r) for r in rs for k, m in (r.get("checkpoints") or {}).items()]
        for iterations in sorted({it for it, m, _ in points if "ood_energy" in m}):
            ms = [(m, r) for it, m, r in points if it == iterations and "ood_energy" in m]
            cells = [
                fmt([m["ood_energy"][k]["auroc"] for m, _ in ms if k in m["ood_energy"]])
                + " / "
                + fmt([m["ood_energy"][k]["fpr95"] for m, _ in ms if k in m["ood_energy"]], digits=2)
                for k in OOD_COLUMNS
            ]
            rows.append(
                [name, str(len(ms)), str(iterations), fmt([seconds_per_iteration(r) for _, r in ms])]
                + [fmt([m.get("domain_fd_revised") for m, _ in ms]), fmt([m.get("domain_fd_proposals") for m, _ in ms])]
                + cells
            )
    if not rows:
        return ""
    head = ["run", "seeds", "iterations", "train s/it", "FD revised", "FD G(z)"] + [
        f"E(x) AUROC / FPR@95: {c.replace('_', ' ')}" for c in OOD_COLUMNS
    ]
    lines = ["", "Energy as an OOD score (docs/EVALUATION.md's protocol; mean ± std over seeds)", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


SYNTHETIC_OOD = OOD_COLUMNS[:4]


def ood_trajectory_table(by_run: dict[str, list[dict]]) -> str:
    """Per run and seed that recorded an ``ood_trajectory`` (``--ood_checkpoints``): at every checkpoint, the lowest
    energy AUROC over the four synthetic OOD sets and, below 1.000, the set that gives it."""
    rows = [(name, r) for name, rs in by_run.items() for r in rs if r.get("ood_trajectory")]
    if not rows:
        return ""
    steps = sorted({int(k) for _, r in rows for k in r["ood_trajectory"]})
    lines = [
        "",
        "Lowest energy AUROC over the synthetic OOD sets (uniform noise, gaussian noise, constant, inverted) at every "
        "checkpoint",
        "",
        "| " + " | ".join(["run", "seed"] + [str(k) for k in steps]) + " |",
        "|" + " --- |" * (2 + len(steps)),
    ]
    for name, r in rows:
        cells = []
        for k in steps:
            scores = r["ood_trajectory"].get(str(k))
            if scores is None:
                cells.append("")
                continue
            worst = min(SYNTHETIC_OOD, key=lambda c: scores[c]["auroc"])
            auroc = scores[worst]["auroc"]
            cells.append(f"{auroc:.3f}" + (f" ({worst.split('_')[0]})" if auroc < 0.9995 else ""))
        lines.append("| " + " | ".join([name, str(r["seed"])] + cells) + " |")
    return "\n".join(lines) + "\n"


def gap_table(by_run: dict[str, list[dict]]) -> str:
    """The energy-gap trajectory of every run that recorded one: mean ± std over seeds, per full window of steps."""
    rows, missing = {}, []
    for name, rs in by_run.items():
        trajectories = [r["energy_gap_trajectory"] for r in rs if r.get("energy_gap_trajectory")]
        if len(trajectories) < len(rs):
            missing.append(
                f"{name} (seeds {', '.join(str(r['seed']) for r in rs if not r.get('energy_gap_trajectory'))})"
            )
        full = [[g for g, end in zip(t["mean_abs_gap"], t["steps"]) if end % t["window"] == 0] for t in trajectories]
        if any(full):
            rows[name] = (len(full), full)
    if not rows:
        return ""
    n = max(len(f) for _, runs in rows.values() for f in runs)
    head = ["run", "seeds"] + [f"{i * GAP_WINDOW + 1}-{(i + 1) * GAP_WINDOW}" for i in range(n)]
    lines = [
        "",
        f"Energy gap: mean |E(data) - E(samples)| per {GAP_WINDOW}-step window (mean ± std over seeds)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for name, (seeds, runs) in rows.items():
        cells = [fmt([f[i] for f in runs if i < len(f)]) for i in range(n)]
        lines.append("| " + " | ".join([name, str(seeds)] + cells) + " |")
    if missing:
        lines += ["", f"Not recorded (cached before runs kept their gap trajectory): {'; '.join(missing)}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    from hf_dualmcmc.evaluation.domain import DEFAULT_TRAIN_STEPS

    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=("toy", *SUITE_SOURCES), required=True)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    p.add_argument("--toys", default=",".join(DEFAULT_TOYS), help="comma-separated toy names (benchmarks/toy.py)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=600, help="toy: training iterations per run (all methods)")
    p.add_argument("--max_seconds", type=float, default=None, help="toy: also stop a run after this wall clock")
    p.add_argument("--batch_size", type=int, default=200, help="toy batch size")
    p.add_argument("--x_steps", type=int, default=30, help="x-chain steps (training and evaluation)")
    p.add_argument("--mnist_steps", type=int, default=400, help="MNIST: training iterations per method")
    p.add_argument("--mnist_batch_size", type=int, default=32, help="MNIST: batch size")
    p.add_argument(
        "--mnist_x_steps",
        type=int,
        default=15,
        help="MNIST: x-chain steps in training and sampling (the authors' 30, halved for 2 CPU cores)",
    )
    p.add_argument("--mnist_width", type=int, default=32, help="MNIST: ngf = ndf (nif = half)")
    p.add_argument(
        "--samples",
        "--mnist_samples",
        dest="samples",
        type=int,
        default=1000,
        help="MNIST, digits: samples drawn for the FDs (and training images for the floor)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="MNIST, digits: a trainer config override (repeatable, e.g. model.spectral_norm=false); needs --variant",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="MNIST, digits: train from this YAML recipe (e.g. configs/mnist.yaml) instead of the suite's "
        "settings (--mnist-* are then ignored); cached as METHOD+config-STEM unless --variant names "
        "it; digits: default configs/digits.yaml, cached as METHOD (+VARIANT)",
    )
    p.add_argument(
        "--variant",
        default=None,
        help="MNIST, digits: name of a run with --set overrides; cached as METHOD+VARIANT, its own table row",
    )
    p.add_argument(
        "--fd_classifier_steps",
        type=int,
        default=DEFAULT_TRAIN_STEPS,
        help="MNIST, digits: training steps of the domain-FD classifier (hf_dualmcmc.evaluation's default)",
    )
    p.add_argument("--cache_dir", type=Path, default=REPO / "benchmarks" / "cache")
    p.add_argument("--out_dir", type=Path, default=REPO / "docs" / "results", help="plots and table")
    p.add_argument("--plot_seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="retrain runs that are already cached")
    p.add_argument("--table_only", action="store_true", help="only rebuild the table (and plots) from the cache")
    p.add_argument(
        "--reevaluate", action="store_true", help="MNIST, digits: score cached runs again (their pipelines must exist)"
    )
    p.add_argument(
        "--eval_steps",
        default="",
        help="MNIST, digits: also score the pipelines of these checkpoints (comma-separated steps, e.g. 1800)",
    )
    p.add_argument(
        "--ood_checkpoints",
        action="store_true",
        help="MNIST, digits: also score the energy as an OOD score at every checkpoint pipeline of a run (cached runs "
        "too, once), for the table of its trajectory",
    )
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    bad = set(args.methods) - set(METHODS)
    if bad:
        p.error(f"unknown methods {sorted(bad)}; expected some of {METHODS}")
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.suite == "digits" and args.config is None:  # the embedded default's file is the digits suite's settings
        args.config = REPO / "configs" / "digits.yaml"
    elif args.config is not None:
        if not args.config.is_file():
            p.error(f"--config {args.config}: no such file")
        args.variant = args.variant or f"config-{args.config.stem}"
    if args.overrides and not args.variant:
        p.error("--set changes a run's settings: name the run with --variant so it is cached apart from the default")
    if args.variant is not None and not args.variant.replace("-", "").replace("_", "").isalnum():
        p.error(f"--variant must be letters, digits, '-' or '_' (a folder name), got {args.variant!r}")
    args.toys = [t for t in args.toys.split(",") if t]
    args.eval_steps = [int(s) for s in args.eval_steps.split(",") if s]
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if MNIST_DIR.is_dir():  # this repository's development data
        os.environ.setdefault("HF_DUALMCMC_MNIST_DIR", str(MNIST_DIR))
    if args.suite == "toy":
        from toy import TOY_DATASETS

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
        write_text(args.out_dir / "toy_table.md", table)
        print(table)
        for p in plots:
            print(f"plot: {p}")
        return table
    if not args.table_only:
        for method in args.methods:
            for seed in args.seeds:
                run_image_suite(args, method, seed)
    # the table: every cached run of the given seeds, whichever methods and variants this call trained
    records = []
    for path in sorted((args.cache_dir / args.suite / args.suite).glob("*/seed*.json")):
        record = json.loads(path.read_text())
        if record["seed"] in args.seeds:
            records.append(record)
    table = image_table(records)
    write_text(args.out_dir / f"{args.suite}_table.md", table)
    plot = image_plot(args, records)
    print(table)
    if plot is not None:
        print(f"plot: {plot}")
    return table


if __name__ == "__main__":
    main()

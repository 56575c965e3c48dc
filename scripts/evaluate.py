#!/usr/bin/env python
"""Evaluate an exported DualMCMCPipeline: the paper's metrics, figures and tables in one command.

    python scripts/evaluate.py --pipeline DIR --metrics fid,is,domain_fd,recon,profile,interp,ablation,ood --out OUTDIR \
        [--num_samples N] [--reference SRC] [--inception_weights PATH [--inception_weights_sha256 HEX]] \
        [--steps N] [--device cpu|cuda] [--seed S]

Writes ``OUTDIR/results.json`` (every number, sampler settings, library versions/options), the PNGs/JSONs of each
analysis, and prints a short table. See docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from hf_dualmcmc.cli import ArgumentParser

METRICS = ("fid", "is", "domain_fd", "recon", "profile", "interp", "ablation", "ood")
# what --out may hold: the files an evaluation writes (an existing --out holding anything else is refused)
OUT_FILES = (
    "results.json",
    "recon_mse.json",
    "recon_mse_curve.png",
    "recon_examples.png",
    "energy_profile.json",
    "energy_profile.png",
    "revision_strip.png",
    "interpolation.json",
    "interpolation_generation.png",
    "interpolation_reconstruction.png",
    "ablation.json",
    "ablation.md",
    "cache",
)
# metric -> the pipeline component it cannot do without (baselines lack some: docs/BASELINES.md)
NEEDS = {"recon": "encoder", "profile": "energy_model", "interp": "generator_model", "ablation": "energy_model"}


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", required=True, help="a DualMCMCPipeline.save_pretrained directory (or Hub id)")
    p.add_argument(
        "--metrics",
        default="fid,is,recon,profile,interp",
        help=f"comma-separated subset of {','.join(METRICS)} (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--num_samples", type=int, default=1000, help="samples for FID/IS/domain FD (paper: 50000)")
    p.add_argument("--batch_size", type=int, default=100, help="sampling batch size (BN batch statistics; paper: 100)")
    p.add_argument(
        "--reference",
        default=None,
        help="FID reference: a statistics .npz (mu, sigma), or an image source as for training "
        "(data.source: sklearn:digits, mnist[:DIR], an images .npz, a directory, a parquet file or "
        "glob, a save_to_disk directory, a Hub name); also the held-out images for recon/interp",
    )
    p.add_argument("--reference_split", default="test", help="split of the reference / held-out source (default test)")
    p.add_argument("--max_reference", type=int, default=None, help="use at most this many reference images")
    p.add_argument(
        "--inception_weights",
        default=None,
        help="path to torch-fidelity's weights-inception-2015-12-05-6726825d.pth (needed offline)",
    )
    p.add_argument(
        "--inception_weights_sha256",
        default=None,
        help="SHA-256 the Inception weights file must have (default: the published file's "
        "6726825d0af5...; pass it for another weights file you trust)",
    )
    p.add_argument(
        "--fid_feature_layer",
        default="2048",
        choices=("64", "192", "768", "2048"),
        help="Inception feature layer for FID (2048 = standard)",
    )
    p.add_argument(
        "--domain",
        default=None,
        choices=("mnist", "digits"),
        help="dataset of the domain classifier for domain_fd (and default held-out images)",
    )
    p.add_argument("--domain_train_steps", type=int, default=600, help="domain classifier training steps")
    p.add_argument(
        "--recon_data",
        default=None,
        help="held-out image source for recon/interp (default: --reference, else the --domain test split)",
    )
    p.add_argument("--num_recon", type=int, default=500, help="held-out images for reconstruction MSE")
    p.add_argument("--steps", type=int, default=None, help="x-chain revision steps (default: the pipeline's, 70)")
    p.add_argument("--step_size", type=float, default=None, help="x-chain step size (default: the pipeline's, 0.4)")
    p.add_argument("--noise_scale", type=float, default=None, help="x-chain noise (default: the pipeline's, 0.001)")
    p.add_argument("--bn_stats", default=None, choices=("batch", "running"), help="generator BatchNorm statistics")
    p.add_argument("--latent_steps", type=int, default=None, help="z-chain steps L for recon (default: the pipeline's)")
    p.add_argument("--ablation_x_steps", type=_int_list, default=[0, 10, 30, 70])
    p.add_argument("--ablation_z_steps", type=_int_list, default=[0, 5, 10, 20])
    p.add_argument(
        "--ablation_samples", type=int, default=None, help="samples per ablation row (default --num_samples)"
    )
    p.add_argument("--cache_dir", default=None, help="cache for reference statistics / classifiers (default OUT/cache)")
    p.add_argument(
        "--model_card",
        default=None,
        help="also write the numbers into the model-index of this README.md "
        "(a new .md file or an existing model card; any other file is refused)",
    )
    p.add_argument("--dataset_name", default=None, help="dataset name for --model_card (e.g. CIFAR-10)")
    p.add_argument("--dataset_type", default=None, help="dataset id for --model_card (e.g. cifar10)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--ood_other",
        default=None,
        help="ood: another image source as an OOD set (e.g. mnist for a digits model), at the model's size",
    )
    p.add_argument("--num_ood", type=int, default=1000, help="ood: images per set (and held-out images)")
    p.add_argument("--no_progress", action="store_true", help="disable tqdm bars")
    args = p.parse_args(argv)
    for name, low in (
        ("num_samples", 1),
        ("batch_size", 1),
        ("num_recon", 1),
        ("max_reference", 1),
        ("domain_train_steps", 1),
        ("ablation_samples", 1),
        ("num_ood", 1),
        ("steps", 0),
        ("latent_steps", 0),
    ):
        value = getattr(args, name)
        if value is not None and value < low:
            p.error(f"--{name} must be >= {low}, got {value}")
    for name, strict in (("step_size", True), ("noise_scale", False)):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and (value > 0 if strict else value >= 0)):
            p.error(f"--{name} must be a finite number {'>' if strict else '>='} 0, got {value}")
    args.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(args.metrics) - set(METRICS))
    if unknown:
        p.error(f"unknown metrics {unknown}; expected a subset of {list(METRICS)}")
    if "fid" in args.metrics and args.reference is None:
        p.error("--metrics fid needs --reference (a stats .npz or an image source)")
    if "domain_fd" in args.metrics and args.domain is None:
        p.error("--metrics domain_fd needs --domain mnist|digits")
    if args.model_card and not (args.dataset_name and args.dataset_type):
        p.error("--model_card needs --dataset_name and --dataset_type")
    if (
        "ood" in args.metrics
        and args.recon_data is None
        and args.domain is None
        and (args.reference is None or _is_stats(args.reference))
    ):
        p.error("--metrics ood needs held-out images: --recon_data, --domain or an image source as --reference")
    return args


def _held_out(args, pipe, max_images: int):
    from hf_dualmcmc.evaluation import load_images

    source = args.recon_data
    if source is None and args.reference is not None and not _is_stats(args.reference):
        source = args.reference
    if source is None:
        source = args.domain
    if source is None:
        raise ValueError(
            "recon/interp/ablation z-steps need held-out images: pass --recon_data, --reference or --domain"
        )
    c, h, _ = pipe.image_shape
    images = load_images(source, image_size=h, num_channels=c, max_images=max_images, split=args.reference_split)
    return images, source


def _is_stats(source: str) -> bool:
    from hf_dualmcmc.evaluation import is_statistics_file

    return is_statistics_file(source)


def check_outputs(args) -> None:
    """What this run would write, checked before anything is loaded: ``--out`` (and ``--cache_dir``) apart from every
    local input, ``--out`` a new folder or one holding only :data:`OUT_FILES`, ``--model_card`` a card."""
    from hf_dualmcmc.evaluation.model_index import check_model_card_path
    from hf_dualmcmc.hub import check_apart

    inputs = [
        v
        for v in (args.pipeline, args.reference, args.recon_data, args.ood_other, args.inception_weights)
        if v is not None and Path(v).exists()
    ]
    out = check_apart(args.out, inputs, "--out")
    if args.cache_dir is not None:
        check_apart(args.cache_dir, inputs, "--cache_dir")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OUT_FILES) if out.is_dir() else []
    if foreign:
        raise ValueError(
            f"--out {str(out)!r} holds files an evaluation does not write ({', '.join(foreign[:8])}"
            f"{', ...' if len(foreign) > 8 else ''}); choose a new folder or a previous evaluation's"
        )
    if args.model_card:
        check_model_card_path(args.model_card)


def check_components(args, pipe) -> None:
    """Refuse metrics that need a component the pipeline lacks (baselines: short-run has no generator or encoder,
    cooperative no encoder, inference-only no energy model), before any sampling."""
    have = [n for n in ("energy_model", "generator_model", "encoder") if getattr(pipe, n, None) is not None]
    missing = {m: NEEDS[m] for m in args.metrics if m in NEEDS and NEEDS[m] not in have}
    if pipe.energy_model is None and args.steps:
        missing["--steps"] = "energy_model"
    if missing:
        can = [m for m in METRICS if NEEDS.get(m) in (None, *have)]
        what = ", ".join(f"{m} needs an {c}" if c[0] in "ae" else f"{m} needs a {c}" for m, c in missing.items())
        raise ValueError(f"this pipeline has only {', '.join(have)}: {what}; metrics it can do: {','.join(can)}")


def main(argv=None) -> int:
    """Run the evaluation; bad inputs (a missing pipeline, data or Inception file, an output that is not ours to
    write, a metric the pipeline cannot do) print one line ``error: ...`` and return 2 before anything is written."""
    args = parse_args(argv)
    try:
        check_outputs(args)
        return evaluate(args)
    except (FileNotFoundError, ValueError, OSError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2


def evaluate(args: argparse.Namespace) -> int:
    import torch

    import hf_dualmcmc
    from hf_dualmcmc import DualMCMCPipeline
    from hf_dualmcmc.evaluation import (
        DomainFrechetScorer,
        InceptionScorer,
        ablation_sweep,
        energy_profile,
        fid_and_is,
        frechet_distance,
        interpolation_grids,
        markdown_table,
        reconstruction_mse,
        reference_statistics,
        sample_images,
        write_json,
        write_model_index,
    )

    start = time.perf_counter()
    pipe = DualMCMCPipeline.from_pretrained(args.pipeline).to(args.device)  # before anything is written
    pipe.set_progress_bar_config(disable=True)
    check_components(args, pipe)
    out = Path(args.out)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out / "cache"
    progress = not args.no_progress
    sampler_kwargs = {
        "num_inference_steps": args.steps,
        "step_size": args.step_size,
        "noise_scale": args.noise_scale,
        "bn_stats": args.bn_stats,
    }
    results: dict = {
        "pipeline": str(args.pipeline),
        "metrics_requested": args.metrics,
        "device": args.device,
        "seed": args.seed,
        "versions": {"hf_dualmcmc": hf_dualmcmc.__version__, "torch": torch.__version__},
        "pipeline_config": {
            k: v for k, v in pipe.config.items() if not k.startswith("_") and not isinstance(v, list | tuple)
        },
    }
    summary: dict = {}

    need_samples = {"fid", "is", "domain_fd"} & set(args.metrics)
    if {"fid", "is"} & set(args.metrics):
        # before any sampling: a missing Inception file must fail in seconds, not after 50k samples
        scorer = InceptionScorer(
            args.inception_weights,
            expected_sha256=args.inception_weights_sha256,
            fid_feature_layer=args.fid_feature_layer,
            device=args.device,
            compute_is="is" in args.metrics,
            progress=progress,
        )
    if need_samples:
        proposals, revised, sampler = sample_images(
            pipe, args.num_samples, batch_size=args.batch_size, seed=args.seed, progress=progress, **sampler_kwargs
        )
        results["sampler"] = {**sampler, "num_samples": args.num_samples}
        if {"fid", "is"} & set(args.metrics):
            results["inception_options"] = scorer.options
            if "fid" in args.metrics:
                ref_stats, ref_info = reference_statistics(
                    args.reference,
                    scorer,
                    cache_dir=cache_dir,
                    image_size=pipe.image_shape[1],
                    max_images=args.max_reference,
                    split=args.reference_split,
                )
                results["fid_reference"] = ref_info
                fid = fid_and_is(proposals, revised, ref_stats, scorer, compute_is="is" in args.metrics)
            else:
                fid = {}
                for name, images in (("proposal", proposals), ("revised", revised)):
                    fid[f"is_{name}"], fid[f"is_{name}_std"] = scorer.inception_score(images)
            results["fid_is"] = fid
            summary.update({k: v for k, v in fid.items() if not k.endswith("_std")})
        if "domain_fd" in args.metrics:
            domain = DomainFrechetScorer(args.domain, cache_dir, steps=args.domain_train_steps, progress=progress)
            ref = domain.reference_statistics()
            results["domain_fd"] = {
                "domain_fd_proposal": frechet_distance(domain.statistics(proposals), ref),
                "domain_fd_revised": frechet_distance(domain.statistics(revised), ref),
                "options": domain.options,
            }
            summary["domain_fd_proposal"] = results["domain_fd"]["domain_fd_proposal"]
            summary["domain_fd_revised"] = results["domain_fd"]["domain_fd_revised"]
            summary["domain_classifier_accuracy"] = domain.info["test_accuracy"]

    held_out = None
    if {"recon", "interp", "ablation"} & set(args.metrics) and pipe.encoder is not None:
        try:
            held_out, source = _held_out(args, pipe, args.num_recon)
            results["held_out"] = {"source": source, "num_images": int(held_out.shape[0])}
        except ValueError as err:
            if "recon" in args.metrics:
                raise
            print(f"note: no held-out images ({err}); reconstruction parts skipped", file=sys.stderr)

    if "recon" in args.metrics:
        rec = reconstruction_mse(
            pipe,
            held_out,
            num_latent_steps=args.latent_steps,
            batch_size=args.batch_size,
            seed=args.seed,
            bn_stats=args.bn_stats,
            out_dir=out,
            progress=progress,
        )
        results["recon"] = rec
        summary["mse_inf"], summary["mse_inf_plus_l"] = rec["mse_inf"], rec["mse_inf_plus_l"]

    if "profile" in args.metrics:
        prof = energy_profile(pipe, batch_size=min(args.batch_size, 64), seed=args.seed, out_dir=out, **sampler_kwargs)
        results["profile"] = prof
        summary["energy_change"] = prof["energy_change"]

    if "interp" in args.metrics:
        interp = interpolation_grids(
            pipe,
            images=held_out,
            num_inference_steps=args.steps,
            num_latent_steps=args.latent_steps,
            seed=args.seed,
            out_dir=out,
        )
        results["interp"] = {k: v for k, v in interp.items() if k != "grids"}

    if "ablation" in args.metrics:
        metric_fn = None
        if "domain_fd" in args.metrics:
            metric_fn = lambda s: {"domain_fd": frechet_distance(domain.statistics(s), ref)}  # noqa: E731
        elif "fid" in args.metrics:
            metric_fn = lambda s: {"fid": frechet_distance(scorer.statistics(s), ref_stats)}  # noqa: E731
        abl = ablation_sweep(
            pipe,
            x_steps=args.ablation_x_steps,
            z_steps=args.ablation_z_steps,
            num_samples=args.ablation_samples or args.num_samples,
            batch_size=args.batch_size,
            images=held_out,
            sample_metric=metric_fn,
            seed=args.seed,
            out_dir=out,
            progress=progress,
        )
        results["ablation"] = abl

    if "ood" in args.metrics:
        from hf_dualmcmc.evaluation import load_images
        from hf_dualmcmc.evaluation.ood import ood_evaluation, synthetic_ood_sets

        in_images, source = _held_out(args, pipe, args.num_ood)
        c, h, _ = pipe.image_shape
        other = (
            None
            if args.ood_other is None
            else load_images(
                args.ood_other,
                image_size=h,
                num_channels=c,
                max_images=args.num_ood,
                split=args.reference_split,
                resize="resize",
            )
        )
        ood = ood_evaluation(
            pipe,
            in_images,
            synthetic_ood_sets(in_images, other=other, seed=args.seed),
            num_latent_steps=args.latent_steps,
            seed=args.seed,
        )
        results["ood"] = {"in_distribution": source, "other": args.ood_other, **ood}
        summary.update({f"ood_auroc_{r['score']}_{r['ood_set']}": r["auroc"] for r in ood["rows"]})

    results["summary"] = summary
    results["seconds"] = time.perf_counter() - start
    results["files"] = sorted(str(p.relative_to(out)) for p in out.glob("*") if p.is_file())
    write_json(out / "results.json", results)
    if args.model_card:
        write_model_index(args.model_card, summary, dataset_name=args.dataset_name, dataset_type=args.dataset_type)

    print(markdown_table([{"metric": k, "value": v} for k, v in summary.items()]) or "(no scalar metrics)")
    for name in ("ablation", "ood"):
        if name in results:
            print()
            print(results[name]["markdown"])
    print(f"\nwrote {out / 'results.json'} ({results['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

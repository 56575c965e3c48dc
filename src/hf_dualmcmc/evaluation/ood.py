"""Out-of-distribution detection with a trained EBM: the energy ``E(x)`` (``"energy"``, low for data like the training
set) and the encoder + posterior-Langevin reconstruction error (``"recon"``, the generator side) as scores. AUROC,
AUPR and FPR@95 come from scikit-learn with the in-distribution set as the positive class and the score negated, as
in Liu et al. (2020, "Energy-based Out-of-distribution Detection"). See docs/EVALUATION.md for an example.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .analysis import markdown_table
from .images import pixel_values, to_uint8

OOD_SETS = ("uniform_noise", "gaussian_noise", "constant", "inverted", "other_digits")
SCORES = ("energy", "recon")


def synthetic_ood_sets(
    images: np.ndarray, *, other: np.ndarray | None = None, num_images: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """OOD sets of ``num_images`` (default ``len(images)``) images shaped like ``images`` (uint8 ``[N, H, W, C]``),
    drawn with ``numpy.random.default_rng(seed)``: ``uniform_noise``; ``gaussian_noise`` (``N(127.5, 64^2)`` per
    pixel, clipped); ``constant`` (one grey level per image and channel); ``inverted`` (``255 - x``); and with
    ``other`` (another digits set at the same size and channels) ``other_digits``."""
    images = to_uint8(images)
    n = len(images) if num_images is None else int(num_images)
    if n < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images!r}")
    _, h, w, c = images.shape
    rng = np.random.default_rng(seed)
    sets = {
        "uniform_noise": rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8),
        "gaussian_noise": np.clip(np.rint(rng.normal(127.5, 64.0, size=(n, h, w, c))), 0, 255).astype(np.uint8),
        "constant": np.broadcast_to(rng.integers(0, 256, size=(n, 1, 1, c), dtype=np.uint8), (n, h, w, c)).copy(),
    }
    sets["inverted"] = (
        255 - images[rng.permutation(len(images))[:n] if n <= len(images) else rng.integers(0, len(images), n)]
    )
    if other is not None:
        other = to_uint8(other)
        if other.shape[1:] != images.shape[1:]:
            raise ValueError(
                f"other images must have the in-distribution images' shape [N, {h}, {w}, {c}], got "
                f"{list(other.shape)}: load them with load_images(..., image_size={h}, num_channels={c})"
            )
        sets["other_digits"] = other[rng.permutation(len(other))[:n]]
    return sets


@torch.no_grad()
def ood_scores(
    pipe, images, score: str = "energy", *, batch_size: int = 256, seed: int = 0, num_latent_steps: int | None = None
) -> np.ndarray:
    """Per-image score (higher = more out-of-distribution) of uint8 ``[N, H, W, C]`` images in the pipeline's format:
    ``"energy"``: ``E(x)``; ``"recon"``: ``||G(z~) - x||^2`` summed over pixels (``[-1, 1]`` scale), ``z~`` from the
    encoder's mean and ``num_latent_steps`` posterior Langevin steps (default: the pipeline's)."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    images = to_uint8(images)
    c, h, w = pipe.image_shape
    if images.shape[1:] != (h, w, c):
        raise ValueError(f"images must be [N, {h}, {w}, {c}] uint8 for this pipeline, got {images.shape}")
    if score == "energy" and pipe.energy_model is None:
        raise ValueError("score='energy' needs a pipeline with an energy_model")
    if score == "recon" and pipe.encoder is None:
        raise ValueError("score='recon' needs a pipeline with an encoder (and generator)")
    starts = range(0, len(images), batch_size)
    xs = [pixel_values(images[i : i + batch_size]).to(pipe.device) for i in starts]
    if score == "energy":
        model, was_training = pipe.energy_model, pipe.energy_model.training
        try:  # eval mode: the stored spectral-norm vectors, no mutation
            out = [model.eval()(x.to(model.dtype), return_dict=False)[0].float() for x in xs]
        finally:
            model.train(was_training)
    else:
        kwargs = {"num_latent_steps": num_latent_steps, "sample_posterior": False, "output_type": "pt"}
        recon = [pipe.reconstruct(pixel_values=x, generator=seed + i, **kwargs).images for i, x in zip(starts, xs)]
        out = [(r.to(x.device).float() * 2 - 1 - x).pow(2).flatten(1).sum(1) for r, x in zip(recon, xs)]
    return torch.cat([o.cpu() for o in out]).numpy().astype(np.float64)


def ood_metrics(in_scores: Sequence[float], out_scores: Sequence[float]) -> dict[str, float]:
    """AUROC, AUPR (in-distribution positive) and FPR@95 from scores where higher = more out-of-distribution."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    in_scores, out_scores = np.asarray(in_scores, dtype=np.float64), np.asarray(out_scores, dtype=np.float64)
    if in_scores.ndim != 1 or out_scores.ndim != 1 or not len(in_scores) or not len(out_scores):
        raise ValueError(f"expected two non-empty 1-D score arrays, got shapes {in_scores.shape}, {out_scores.shape}")
    if not (np.isfinite(in_scores).all() and np.isfinite(out_scores).all()):
        raise ValueError("scores must be finite (a diverged energy gives inf/NaN)")
    labels = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]
    confidence = -np.r_[in_scores, out_scores]  # higher = more in-distribution
    fpr, tpr, _ = roc_curve(labels, confidence)
    return {
        "auroc": float(roc_auc_score(labels, confidence)),
        "aupr": float(average_precision_score(labels, confidence)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }


def ood_evaluation(
    pipe, in_images: np.ndarray, ood_sets: Mapping[str, np.ndarray], *, scores: Sequence[str] | None = None, **kwargs
) -> dict:
    """``{"rows", "markdown", "mean_scores"}``: one row per (score, OOD set) with AUROC / AUPR / FPR@95; ``scores``
    defaults to ``"energy"`` (with an energy model) and ``"recon"`` (with an encoder); ``kwargs``: :func:`ood_scores`'
    ``batch_size``, ``seed``, ``num_latent_steps``."""
    if scores is None:
        scores = [s for s, ok in (("energy", pipe.energy_model is not None), ("recon", pipe.encoder is not None)) if ok]
    if not scores:
        raise ValueError("this pipeline has neither an energy_model nor an encoder: nothing to score")
    rows, means = [], {}
    for score in scores:
        in_scores = ood_scores(pipe, in_images, score, **kwargs)
        means[score] = {"in_distribution": float(in_scores.mean())}
        for name, images in ood_sets.items():
            out_scores = ood_scores(pipe, images, score, **kwargs)
            means[score][name] = float(out_scores.mean())
            row = {"score": score, "ood_set": name, "num_in": len(in_scores), "num_ood": len(out_scores)}
            rows.append({**row, **ood_metrics(in_scores, out_scores)})
    return {
        "rows": rows,
        "mean_scores": means,
        "markdown": markdown_table(rows, ["score", "ood_set", "auroc", "aupr", "fpr95"], floatfmt=".3f"),
    }


__all__ = ["OOD_SETS", "SCORES", "ood_evaluation", "ood_metrics", "ood_scores", "synthetic_ood_sets"]

"""Out-of-distribution detection with a trained EBM: the energy (and the reconstruction error) as a score.

An EBM assigns low energy to data like its training set, so ``E(x)`` ranks inputs by how in-distribution they look
(the JEM / short-run-EBM literature). This module scores held-out in-distribution images and synthetic or foreign
out-of-distribution (OOD) sets with

* ``"energy"``: ``E(x)`` of the pipeline's energy model (eval mode, stored spectral-norm vectors);
* ``"recon"``: the per-image squared error of the encoder + posterior-Langevin reconstruction ``G(z~)``, the
  generator side of the model (needs an encoder),

and reports AUROC, AUPR and FPR@95 with scikit-learn, with the in-distribution set as the positive class and the
score negated (higher = more in-distribution), as in Liu et al. (2020, "Energy-based Out-of-distribution Detection"):
FPR@95 is the fraction of OOD images accepted at the threshold that keeps 95 % of the in-distribution images.

```python
>>> from hf_dualmcmc.evaluation import load_images
>>> from hf_dualmcmc.evaluation.ood import ood_evaluation, synthetic_ood_sets
>>> held_out = load_images("sklearn:digits", split="test", num_channels=1)   # uint8 [N, 8, 8, 1]
>>> mnist = load_images("mnist", image_size=8, num_channels=1, resize="resize", max_images=500)
>>> sets = synthetic_ood_sets(held_out, other=mnist, seed=0)
>>> result = ood_evaluation(pipe, held_out, sets)                          # pipe: a DualMCMCPipeline
>>> print(result["markdown"])
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .images import to_uint8

OOD_SETS = ("uniform_noise", "gaussian_noise", "constant", "inverted", "other_digits")
SCORES = ("energy", "recon")


def synthetic_ood_sets(
    images: np.ndarray, *, other: np.ndarray | None = None, num_images: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """OOD sets with the shape of ``images`` (uint8 ``[N, H, W, C]``), built offline.

    * ``uniform_noise``: every pixel uniform in ``{0, ..., 255}``;
    * ``gaussian_noise``: every pixel ``N(127.5, 64^2)``, rounded and clipped;
    * ``constant``: one uniformly drawn grey level (per channel) per image;
    * ``inverted``: ``255 - x`` of the in-distribution images (same content, flipped polarity);
    * ``other_digits``: ``other``, another digits set at the same size and channels (e.g. MNIST loaded with
      ``load_images("mnist", image_size=8, resize="resize")`` for a model of sklearn's 8x8 digits, and vice versa);
      left out when ``other`` is ``None``.

    ``num_images`` (default: ``len(images)``) images per set, drawn with ``numpy.random.default_rng(seed)``.
    """
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
        "inverted": 255 - images[rng.permutation(len(images))[:n]]
        if n <= len(images)
        else 255 - images[rng.integers(0, len(images), size=n)],
    }
    if other is not None:
        other = to_uint8(other)
        if other.shape[1:] != images.shape[1:]:
            raise ValueError(
                f"other images must have the in-distribution images' shape [N, {h}, {w}, {c}], got "
                f"{list(other.shape)}: load them with load_images(..., image_size={h}, num_channels={c})"
            )
        sets["other_digits"] = other[rng.permutation(len(other))[:n]]
    return sets


def _pixel_values(images: np.ndarray, device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(to_uint8(images))).permute(0, 3, 1, 2).float()
    return (x / 127.5 - 1.0).to(device)


@torch.no_grad()
def ood_scores(
    pipe,
    images: np.ndarray,
    score: str = "energy",
    *,
    batch_size: int = 256,
    seed: int = 0,
    num_latent_steps: int | None = None,
) -> np.ndarray:
    """Per-image score (higher = more out-of-distribution) of uint8 ``[N, H, W, C]`` images in the pipeline's format.

    ``"energy"``: ``E(x)``; ``"recon"``: ``||G(z~) - x||^2`` summed over pixels (``[-1, 1]`` scale), ``z~`` from the
    encoder's mean and ``num_latent_steps`` posterior Langevin steps (default: the pipeline's).
    """
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
    device = pipe._execution_device
    out = []
    for i in range(0, len(images), batch_size):
        x = _pixel_values(images[i : i + batch_size], device)
        if score == "energy":
            model = pipe.energy_model
            was_training = model.training
            model.eval()
            try:
                out.append(model(x.to(model.dtype), return_dict=False)[0].float().cpu())
            finally:
                model.train(was_training)
        else:
            rec = pipe.reconstruct(
                pixel_values=x,
                num_latent_steps=num_latent_steps,
                generator=seed + i,
                sample_posterior=False,
                output_type="pt",
            )
            recon = rec.images.to(x.device).float() * 2 - 1
            out.append((recon - x).pow(2).flatten(1).sum(1).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def ood_metrics(in_scores: Sequence[float], out_scores: Sequence[float]) -> dict[str, float]:
    """AUROC, AUPR (in-distribution positive) and FPR@95 from scores where higher = more out-of-distribution."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    in_scores, out_scores = np.asarray(in_scores, dtype=np.float64), np.asarray(out_scores, dtype=np.float64)
    if in_scores.ndim != 1 or out_scores.ndim != 1 or not len(in_scores) or not len(out_scores):
        raise ValueError(
            f"expected two non-empty 1-D score arrays, got shapes {in_scores.shape} and {out_scores.shape}"
        )
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
    pipe,
    in_images: np.ndarray,
    ood_sets: Mapping[str, np.ndarray],
    *,
    scores: Sequence[str] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    num_latent_steps: int | None = None,
) -> dict:
    """Score the in-distribution images and every OOD set; one row per (score, set) with AUROC / AUPR / FPR@95.

    ``scores`` defaults to ``"energy"`` (when the pipeline has an energy model) and ``"recon"`` (when it has an
    encoder). Returns ``{"rows": [...], "markdown": str, "mean_scores": {score: {set: mean}}}``.
    """
    if scores is None:
        scores = [s for s, ok in (("energy", pipe.energy_model is not None), ("recon", pipe.encoder is not None)) if ok]
    if not scores:
        raise ValueError("this pipeline has neither an energy_model nor an encoder: nothing to score")
    rows, means = [], {}
    for score in scores:
        kw = dict(batch_size=batch_size, seed=seed, num_latent_steps=num_latent_steps)
        in_scores = ood_scores(pipe, in_images, score, **kw)
        means[score] = {"in_distribution": float(in_scores.mean())}
        for name, images in ood_sets.items():
            out_scores = ood_scores(pipe, images, score, **kw)
            means[score][name] = float(out_scores.mean())
            rows.append(
                {
                    "score": score,
                    "ood_set": name,
                    "num_in": len(in_scores),
                    "num_ood": len(out_scores),
                    **ood_metrics(in_scores, out_scores),
                }
            )
    from .analysis import markdown_table

    return {
        "rows": rows,
        "mean_scores": means,
        "markdown": markdown_table(rows, ["score", "ood_set", "auroc", "aupr", "fpr95"], floatfmt=".3f"),
    }


__all__ = ["OOD_SETS", "SCORES", "ood_evaluation", "ood_metrics", "ood_scores", "synthetic_ood_sets"]

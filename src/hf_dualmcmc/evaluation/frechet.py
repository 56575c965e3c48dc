"""Frechet statistics ``{"mu", "sigma"}`` of features, the Frechet distance (torch-fidelity's code) and ``.npz``
statistics files, shared by FID (:mod:`.fid`) and the domain Frechet distance (:mod:`.domain`). Files are read with
``np.load(allow_pickle=False)``: a pickle or object arrays are refused with a ``ValueError`` naming the file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from .images import load_images


def feature_statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """``{"mu", "sigma"}`` (float64) of features ``[N, d]``, N >= 2 (torch-fidelity's ``fid_features_to_statistics``)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    if features.shape[0] < 2:
        raise ValueError(f"need at least 2 images for feature statistics, got {features.shape[0]}")
    return fid_features_to_statistics(features.double())


def frechet_distance(stats_1: dict, stats_2: dict) -> float:
    """Frechet distance ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` via torch-fidelity's implementation."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    s1, s2 = ({k: np.asarray(s[k], dtype=np.float64) for k in ("mu", "sigma")} for s in (stats_1, stats_2))
    if s1["mu"].shape != s2["mu"].shape:
        raise ValueError(f"statistics have different feature sizes: {s1['mu'].shape} vs {s2['mu'].shape}")
    return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])


def save_statistics(path: str | os.PathLike, stats: dict, meta: dict | None = None) -> str:
    """Atomically write ``{"mu", "sigma"}`` (and a JSON ``meta`` string) to an ``.npz`` file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    meta = np.array(json.dumps(meta or {}))
    return str(atomic_write(path, lambda f: np.savez(f, mu=stats["mu"], sigma=stats["sigma"], meta=meta)))


def _read_npz(path: str | os.PathLike, keys: tuple[str, ...] = ()) -> tuple[list[str], dict]:
    """``(names, arrays)``: all array names of an ``.npz`` and the arrays ``keys`` among them."""
    label = repr(str(path))
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:  # a pickle
        raise ValueError(f"{label} was refused: reading it would need unpickling ({err})") from err
    except Exception as err:  # OSError, BadZipFile, ...
        raise ValueError(f"{label} is not a readable .npz file ({type(err).__name__}: {err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{label} holds a single array (.npy format), expected an .npz archive of named arrays")
    with data:
        try:
            return list(data.files), {k: data[k] for k in keys if k in data.files}
        except ValueError as err:  # object arrays
            raise ValueError(f"{label} was refused: it holds object (pickled) arrays ({err})") from err
        except Exception as err:  # a damaged member: BadZipFile, EOFError, zlib.error, ...
            raise ValueError(f"{label} is truncated or corrupt ({type(err).__name__}: {err})") from err


def is_statistics_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ``.npz`` holding arrays ``mu`` and ``sigma``."""
    return Path(path).suffix == ".npz" and Path(path).is_file() and {"mu", "sigma"} <= set(_read_npz(path)[0])


def load_statistics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{"mu", "sigma"}`` (float64) of an ``.npz`` (e.g. TTUR's ``fid_stats_cifar10_train.npz``); ``ValueError``
    naming the file unless ``mu`` is a finite vector and ``sigma`` a matching finite matrix."""
    names, arrays = _read_npz(path, keys=("mu", "sigma"))
    if len(arrays) < 2:
        raise ValueError(f"{str(path)!r} is not a statistics file: expected arrays 'mu' and 'sigma', got {names}")
    mu, sigma = arrays["mu"], arrays["sigma"]
    if (
        mu.ndim != 1
        or sigma.shape != (len(mu),) * 2
        or not all(np.issubdtype(a.dtype, np.number) for a in arrays.values())
    ):
        raise ValueError(
            f"{str(path)!r}: expected a numeric vector 'mu' [d] and matrix 'sigma' [d, d], got "
            f"{mu.dtype} {list(mu.shape)} and {sigma.dtype} {list(sigma.shape)}"
        )
    stats = {"mu": mu.astype(np.float64), "sigma": sigma.astype(np.float64)}
    if not (np.isfinite(stats["mu"]).all() and np.isfinite(stats["sigma"]).all()):
        raise ValueError(f"{str(path)!r}: 'mu'/'sigma' contain NaN or inf values, expected finite statistics")
    return stats


def reference_statistics(
    source: str | os.PathLike,
    scorer,
    *,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    max_images: int | None = None,
    split: str = "test",
) -> tuple[dict[str, np.ndarray], dict]:
    """``(stats, info)`` of a :class:`~.fid.InceptionScorer`: read from a stats ``.npz``, or computed from any
    :func:`load_images` source and cached as ``<cache_dir>/fid-ref-<hash>.npz`` (keyed by source, split, size, count,
    feature layer and weights)."""
    if is_statistics_file(source):
        stats = load_statistics(source)
        if stats["mu"].shape[0] != int(scorer.fid_feature_layer):
            raise ValueError(
                f"{source} holds {stats['mu'].shape[0]}-d statistics but the scorer uses feature layer "
                f"{scorer.fid_feature_layer}: expected matching sizes"
            )
        return stats, {"source": str(source), "kind": "precomputed statistics"}
    key = json.dumps([str(source), split, image_size, max_images, scorer.fid_feature_layer, scorer.weights_sha256])
    cache = Path(cache_dir or ".") / f"fid-ref-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if cache_dir is not None and cache.is_file():
        try:
            meta = json.loads(str(_read_npz(cache, keys=("meta",))[1].get("meta")))
        except json.JSONDecodeError as err:
            raise ValueError(f"cached reference statistics {str(cache)!r} are damaged ({err}); delete them") from err
        return load_statistics(cache), {**meta, "cache": str(cache), "cached": True}
    images = load_images(source, image_size=image_size, max_images=max_images, split=split)
    stats = scorer.statistics(images)
    info = {"source": str(source), "kind": "images", "split": split, "num_images": len(images)}
    info.update(image_shape=list(images.shape[1:]), fid_feature_layer=scorer.fid_feature_layer)
    if cache_dir is not None:
        save_statistics(cache, stats, info)
        info.update(cache=str(cache), cached=False)
    return stats, info


__all__ = ["feature_statistics", "frechet_distance", "is_statistics_file", "load_statistics", "reference_statistics"]
__all__ += ["save_statistics"]

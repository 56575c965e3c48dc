"""FID and Inception Score through torch-fidelity (its TF-compatible InceptionV3, Frechet distance and IS code).

Nothing here re-implements Inception or the matrix square root: features come from torch-fidelity's
``inception-v3-compat`` extractor (bit-compatible with the TTUR/TF reference implementation: TF1 bilinear resize to
299 px without antialiasing), statistics and distances from ``torch_fidelity.metric_fid`` and the score from
``torch_fidelity.metric_isc``. Inputs are quantised to ``uint8`` first, as the library and image files require.

Offline machines pass the weights file explicitly (``inception_weights=`` / ``--inception-weights``): the file torch-
fidelity downloads, :data:`INCEPTION_WEIGHTS_FILENAME`. :func:`save_random_inception_weights` writes a randomly
initialised network in the same format, for exercising the real code path in tests (values then mean nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from .images import as_rgb, load_images, to_uint8

FEATURE_EXTRACTOR = "inception-v3-compat"
INCEPTION_WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
FID_FEATURE_LAYER = "2048"
IS_FEATURE_LAYER = "logits_unbiased"
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DUALMCMC_OFFLINE", "TRANSFORMERS_OFFLINE")


class InceptionWeightsNotFoundError(FileNotFoundError):
    """Raised when the InceptionV3 weights are neither given, cached nor downloadable."""


def _is_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENV_VARS)


def inception_weights_url() -> str:
    """The URL torch-fidelity downloads its InceptionV3 weights from."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def resolve_inception_weights(path: str | os.PathLike | None = None) -> str:
    """The weights file to load: ``path``, else torch hub's cached copy, else a download (refused when offline).

    Raises:
        InceptionWeightsNotFoundError: naming ``--inception-weights`` and the expected file name, when ``path`` does
            not exist, or when no cached copy exists and the machine is offline or the download fails.
    """
    hint = (
        f"pass --inception-weights PATH (Python: inception_weights=PATH) pointing to torch-fidelity's InceptionV3 "
        f"weights file {INCEPTION_WEIGHTS_FILENAME!r} (download it on a connected machine from {inception_weights_url()})"
    )
    if path is not None:
        if not Path(path).is_file():
            raise InceptionWeightsNotFoundError(f"Inception weights file {str(path)!r} does not exist: {hint}")
        return str(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILENAME
    if cached.is_file():
        return str(cached)
    if _is_offline():
        raise InceptionWeightsNotFoundError(
            f"FID/IS need InceptionV3 weights, but none are cached at {cached} and this machine is offline: {hint}"
        )
    try:
        torch.hub.download_url_to_file(inception_weights_url(), str(cached), progress=False)
    except Exception as err:  # network errors come in many types (URLError, HTTPError, OSError, ...)
        raise InceptionWeightsNotFoundError(f"could not download the InceptionV3 weights ({err}): {hint}") from err
    return str(cached)


def save_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> str:
    """Write a randomly initialised torch-fidelity InceptionV3 state dict to ``path`` (its exact loadable format).

    For offline plumbing tests only: FID/IS values computed with it are meaningless. Convolutions get a variance-
    preserving (He) initialisation so that features stay well scaled through the 90-odd layers. Atomic write.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # skip the weights the constructor would load
            return None

    torch.manual_seed(seed)
    with mock.patch("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", return_value=None):
        net = _Unloaded(FEATURE_EXTRACTOR, [FID_FEATURE_LAYER])
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, path)
    return str(path)


def _library_versions() -> dict:
    import torch_fidelity

    return {"torch_fidelity": torch_fidelity.__version__, "torch": torch.__version__, "numpy": np.__version__}


class _UInt8Dataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray):
        self.images = torch.from_numpy(np.ascontiguousarray(as_rgb(to_uint8(images)).transpose(0, 3, 1, 2)))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class InceptionScorer:
    """torch-fidelity's InceptionV3 loaded once; FID statistics, Frechet distance and Inception Score from it.

    Args:
        inception_weights: path to :data:`INCEPTION_WEIGHTS_FILENAME` (see :func:`resolve_inception_weights`).
        fid_feature_layer: ``"2048"`` (pool3, the standard FID) or ``"64"``/``"192"``/``"768"`` (cheaper, e.g. for
            tests; not comparable with published numbers).
        device: ``"cpu"`` or ``"cuda"``.
        batch_size: images per Inception forward.
        compute_is: also load the logits head for the Inception Score.

    ```python
    >>> scorer = InceptionScorer(inception_weights="weights-inception-2015-12-05-6726825d.pth")
    >>> ref = scorer.statistics(reference_uint8)            # {"mu", "sigma"}
    >>> scorer.frechet_distance(scorer.statistics(samples_uint8), ref)
    ```
    """

    def __init__(
        self,
        inception_weights: str | os.PathLike | None = None,
        *,
        fid_feature_layer: str = FID_FEATURE_LAYER,
        device: str = "cpu",
        batch_size: int = 64,
        compute_is: bool = True,
        progress: bool = False,
    ):
        from torch_fidelity.utils import create_feature_extractor

        layers = ("64", "192", "768", "2048")
        if fid_feature_layer not in layers:
            raise ValueError(f"fid_feature_layer must be one of {layers}, got {fid_feature_layer!r}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.weights_path = resolve_inception_weights(inception_weights)
        self.fid_feature_layer = fid_feature_layer
        self.features_list = [fid_feature_layer] + ([IS_FEATURE_LAYER] if compute_is else [])
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self.extractor = create_feature_extractor(
            FEATURE_EXTRACTOR, self.features_list, cuda=device == "cuda",
            feature_extractor_weights_path=self.weights_path, verbose=False,
        )
        # FID-only statistics (e.g. of reference images) stop at the FID layer instead of running the logits head
        self._fid_extractor = self.extractor if not compute_is else create_feature_extractor(
            FEATURE_EXTRACTOR, [fid_feature_layer], cuda=device == "cuda",
            feature_extractor_weights_path=self.weights_path, verbose=False,
        )

    @property
    def options(self) -> dict:
        """What the numbers depend on, for the results JSON."""
        return {
            "library": "torch-fidelity",
            "feature_extractor": FEATURE_EXTRACTOR,
            "fid_feature_layer": self.fid_feature_layer,
            "is_feature_layer": IS_FEATURE_LAYER if IS_FEATURE_LAYER in self.features_list else None,
            "resize": "bilinear to 299x299, TensorFlow-1.x compatible, no antialias",
            "antialias": False,
            "quantisation": "uint8, round(255 * x); grayscale replicated to RGB",
            "inception_weights": Path(self.weights_path).name,
            "inception_weights_sha256_prefix": _sha256(self.weights_path)[:16],
            "versions": _library_versions(),
        }

    def features(self, images, *, fid_only: bool = False) -> dict[str, torch.Tensor]:
        """Features of ``images`` (anything :func:`~hf_dualmcmc.evaluation.images.to_uint8` accepts) per layer.

        ``fid_only`` computes just the FID layer (cheaper when the scorer also serves the Inception Score).
        """
        from torch_fidelity.utils import get_featuresdict_from_dataset

        dataset = _UInt8Dataset(images)
        if len(dataset) < 2:
            raise ValueError(f"need at least 2 images for feature statistics, got {len(dataset)}")
        extractor = self._fid_extractor if fid_only else self.extractor
        return get_featuresdict_from_dataset(
            dataset, extractor, self.batch_size, self.device == "cuda", save_cpu_ram=True, verbose=self.progress
        )

    def statistics(self, images=None, *, features: dict | None = None) -> dict[str, np.ndarray]:
        """FID statistics ``{"mu", "sigma"}`` (float64) of ``images`` (or of precomputed ``features``)."""
        from torch_fidelity.metric_fid import fid_features_to_statistics

        feats = self.features(images, fid_only=True) if features is None else features
        return fid_features_to_statistics(feats[self.fid_feature_layer].double())

    @staticmethod
    def frechet_distance(stats_1: dict, stats_2: dict) -> float:
        """Frechet distance between two ``{"mu", "sigma"}`` statistics (torch-fidelity's TTUR-derived formula)."""
        return frechet_distance(stats_1, stats_2)

    def inception_score(self, images=None, *, features: dict | None = None, splits: int = 10) -> tuple[float, float]:
        """``(mean, std)`` Inception Score over ``splits`` splits (torch-fidelity's implementation, seed 2020)."""
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        if IS_FEATURE_LAYER not in self.features_list:
            raise ValueError("this scorer was built with compute_is=False")
        feats = self.features(images) if features is None else features
        logits = feats[IS_FEATURE_LAYER]
        splits = max(1, min(splits, logits.shape[0]))
        out = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=2020)
        return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def frechet_distance(stats_1: dict, stats_2: dict) -> float:
    """Frechet distance ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` via torch-fidelity's implementation."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    s1 = {k: np.asarray(stats_1[k], dtype=np.float64) for k in ("mu", "sigma")}
    s2 = {k: np.asarray(stats_2[k], dtype=np.float64) for k in ("mu", "sigma")}
    if s1["mu"].shape != s2["mu"].shape:
        raise ValueError(
            f"statistics have different feature sizes: {s1['mu'].shape} vs {s2['mu'].shape}; expected the same "
            "feature layer (e.g. 2048 for standard FID)"
        )
    return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])


def save_statistics(path: str | os.PathLike, stats: dict, meta: dict | None = None) -> str:
    """Atomically write ``{"mu", "sigma"}`` (and a JSON ``meta`` string) to an ``.npz`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, mu=stats["mu"], sigma=stats["sigma"], meta=np.array(json.dumps(meta or {})))
    os.replace(tmp, path)
    return str(path)


def load_statistics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``{"mu", "sigma"}`` from an ``.npz`` file (e.g. the TTUR ``fid_stats_cifar10_train.npz``)."""
    with np.load(path) as data:
        if "mu" not in data or "sigma" not in data:
            raise ValueError(f"{path} is not a statistics file: expected arrays 'mu' and 'sigma', got {list(data.keys())}")
        return {"mu": data["mu"].astype(np.float64), "sigma": data["sigma"].astype(np.float64)}


def reference_statistics(
    source: str | os.PathLike,
    scorer: InceptionScorer,
    *,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    max_images: int | None = None,
    split: str = "test",
) -> tuple[dict[str, np.ndarray], dict]:
    """Reference FID statistics: read from a stats ``.npz`` or computed once from an image source and cached.

    ``source`` is a statistics ``.npz`` (arrays ``mu``/``sigma``) or any :func:`load_images` source. Computed
    statistics are cached as ``<cache_dir>/fid-ref-<hash>.npz`` keyed by source, split, size, count, feature layer
    and weights. Returns ``(stats, info)``; ``info`` records where they came from.
    """
    path = Path(str(source))
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as data:
            is_stats = "mu" in data and "sigma" in data
        if is_stats:
            stats = load_statistics(path)
            if stats["mu"].shape[0] != int(scorer.fid_feature_layer):
                raise ValueError(
                    f"{path} holds {stats['mu'].shape[0]}-d statistics but the scorer uses feature layer "
                    f"{scorer.fid_feature_layer}: expected matching sizes"
                )
            return stats, {"source": str(source), "kind": "precomputed statistics"}
    key = json.dumps(
        [str(source), split, image_size, max_images, scorer.fid_feature_layer, scorer.options["inception_weights_sha256_prefix"]]
    )
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"fid-ref-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        if cache.is_file():
            with np.load(cache) as data:
                meta = json.loads(str(data["meta"]))
            return load_statistics(cache), {**meta, "cache": str(cache), "cached": True}
    images = load_images(source, image_size=image_size, max_images=max_images, split=split)
    stats = scorer.statistics(images)
    info = {"source": str(source), "kind": "images", "split": split, "num_images": int(images.shape[0]),
            "image_shape": list(images.shape[1:]), "fid_feature_layer": scorer.fid_feature_layer}
    if cache is not None:
        save_statistics(cache, stats, info)
        info = {**info, "cache": str(cache), "cached": False}
    return stats, info


def fid_and_is(
    proposals: np.ndarray,
    revised: np.ndarray,
    reference_stats: dict,
    scorer: InceptionScorer,
    *,
    compute_is: bool = True,
) -> dict:
    """Proposal FID, revised FID (and IS of both) of ``uint8`` sample sets against reference statistics."""
    results = {}
    for name, images in (("proposal", proposals), ("revised", revised)):
        feats = scorer.features(images)
        results[f"fid_{name}"] = frechet_distance(scorer.statistics(features=feats), reference_stats)
        if compute_is and IS_FEATURE_LAYER in scorer.features_list:
            mean, std = scorer.inception_score(features=feats)
            results[f"is_{name}"], results[f"is_{name}_std"] = mean, std
    return results


__all__ = [
    "FID_FEATURE_LAYER",
    "INCEPTION_WEIGHTS_FILENAME",
    "InceptionScorer",
    "InceptionWeightsNotFoundError",
    "fid_and_is",
    "frechet_distance",
    "inception_weights_url",
    "load_statistics",
    "reference_statistics",
    "resolve_inception_weights",
    "save_random_inception_weights",
    "save_statistics",
]

"""FID and Inception Score through torch-fidelity (its TF-compatible InceptionV3, Frechet distance and IS code).

Nothing here re-implements Inception or the matrix square root: features come from torch-fidelity's
``inception-v3-compat`` extractor (bit-compatible with the TTUR/TF reference implementation: TF1 bilinear resize to
299 px without antialiasing), statistics and distances from ``torch_fidelity.metric_fid`` and the score from
``torch_fidelity.metric_isc``. Inputs are quantised to ``uint8`` first, as the library and image files require.

Offline machines pass the weights file explicitly (``inception_weights=`` / ``--inception-weights``): the file torch-
fidelity downloads, :data:`INCEPTION_WEIGHTS_FILENAME`. Loading it never runs code: the file's SHA-256 must equal
:data:`INCEPTION_WEIGHTS_SHA256` (or the caller's ``expected_sha256=`` / ``--inception-weights-sha256``), the verified
bytes are read with ``torch.load(weights_only=True)`` and the state dict is handed to torch-fidelity's extractor
in memory (torch-fidelity itself would ``torch.load(path, weights_only=False)``). :func:`save_random_inception_weights`
writes a randomly initialised network in the same format, for exercising the real code path in tests (values then
mean nothing; pass its hash).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from ..serialization import load_torch_file
from .images import as_rgb, load_images, to_uint8

FEATURE_EXTRACTOR = "inception-v3-compat"
INCEPTION_WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
# SHA-256 of INCEPTION_WEIGHTS_FILENAME. torch-fidelity publishes only its first 8 hex digits, in the file name
# (torch.hub's convention). The full digest is the one several independent public projects pin for this file (and
# for pytorch-fid's pt_inception-2015-12-05-6726825d.pth); it starts with that prefix. See docs/EVALUATION.md.
INCEPTION_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_FEATURE_LAYER = "2048"
IS_FEATURE_LAYER = "logits_unbiased"
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DUALMCMC_OFFLINE", "TRANSFORMERS_OFFLINE")


class InceptionWeightsNotFoundError(FileNotFoundError):
    """Raised when the InceptionV3 weights are neither given, cached nor downloadable."""


class InceptionWeightsError(ValueError):
    """The weights file has the wrong SHA-256, would need unsafe unpickling, or is not torch-fidelity's InceptionV3."""


def _is_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENV_VARS)


def inception_weights_url() -> str:
    """The URL torch-fidelity downloads its InceptionV3 weights from."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def _expected_sha256(expected_sha256: str | None) -> str:
    if expected_sha256 is None:
        return INCEPTION_WEIGHTS_SHA256
    value = str(expected_sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(
            f"expected_sha256 (--inception-weights-sha256) must be 64 hex digits (a SHA-256), got {expected_sha256!r}"
        )
    return value


def resolve_inception_weights(path: str | os.PathLike | None = None, expected_sha256: str | None = None) -> str:
    """The weights file to load: ``path``, else torch hub's cached copy, else a download (refused when offline).

    A download is checked by torch hub against ``expected_sha256`` (default :data:`INCEPTION_WEIGHTS_SHA256`) before
    it is moved into the cache. The file itself is verified when loaded (:func:`load_inception_state_dict`).

    Raises:
        InceptionWeightsNotFoundError: naming ``--inception-weights`` and the expected file name, when ``path`` does
            not exist, or when no cached copy exists and the machine is offline or the download fails.
        InceptionWeightsError: the downloaded file does not have the expected SHA-256 (nothing is cached).
    """
    expected = _expected_sha256(expected_sha256)
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
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(inception_weights_url(), str(cached), hash_prefix=expected, progress=False)
    except Exception as err:  # network errors come in many types (URLError, HTTPError, OSError, ...)
        if isinstance(err, RuntimeError) and "invalid hash value" in str(err):  # torch hub's hash_prefix check
            raise InceptionWeightsError(
                f"the InceptionV3 weights downloaded from {inception_weights_url()} were discarded: {err}"
            ) from err
        raise InceptionWeightsNotFoundError(f"could not download the InceptionV3 weights ({err}): {hint}") from err
    return str(cached)


def load_inception_state_dict(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The verified InceptionV3 state dict in ``path``: SHA-256 checked first, then ``torch.load(weights_only=True)``.

    The file is read once; the same bytes are hashed and unpickled, so nothing unverified is ever unpickled.

    Args:
        path: the weights file.
        expected_sha256: its SHA-256 (64 hex digits); default :data:`INCEPTION_WEIGHTS_SHA256`, the published file.
            Pass your own for another file you trust (e.g. :func:`save_random_inception_weights` output).

    Raises:
        InceptionWeightsError: naming the file, the expected and the actual hash on a mismatch; or when the file
            would need unsafe unpickling or holds something other than a ``{name: tensor}`` state dict.
    """
    expected = _expected_sha256(expected_sha256)
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        which = "the published torch-fidelity file's" if expected == INCEPTION_WEIGHTS_SHA256 else "the given"
        raise InceptionWeightsError(
            f"Inception weights file {str(path)!r} has SHA-256 {actual}, expected {expected} ({which}); refusing to "
            "load it. Use the published file, or pass --inception-weights-sha256 (Python: expected_sha256=) with the "
            "hash of another weights file you trust"
        )
    expectation = "torch-fidelity's InceptionV3 state dict ({name: tensor})"
    try:
        state_dict = load_torch_file(data, what="Inception weights file", expected=expectation, name=str(path))
    except ValueError as err:
        raise InceptionWeightsError(str(err)) from err
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise InceptionWeightsError(
            f"Inception weights file {str(path)!r} holds a {type(state_dict).__name__}, expected {expectation}"
        )
    problems = _layout_problems(state_dict)
    if problems:
        raise InceptionWeightsError(
            f"Inception weights file {str(path)!r} is not torch-fidelity's InceptionV3 state dict: "
            + "; ".join(problems)
        )
    return dict(state_dict)


def _inception_network(features_list: list[str], state_dict: dict | None = None):
    """torch-fidelity's InceptionV3 extractor holding ``state_dict`` (random init when ``None``), without its file loading.

    Given no weights path, torch-fidelity's constructor fetches the weights with ``load_state_dict_from_url``; that one
    name in its module is replaced, for the constructor's duration, by a function returning the in-memory state dict,
    so torch-fidelity's own ``torch.load(path, weights_only=False)`` is never reached.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    network = tf_inception.FeatureExtractorInceptionV3
    if state_dict is None:

        class network(network):  # noqa: N801  keep the initialisation, load nothing
            def load_state_dict(self, *args, **kwargs):
                return None

    with mock.patch.object(tf_inception, "load_state_dict_from_url", lambda url, *args, **kwargs: state_dict):
        return network(FEATURE_EXTRACTOR, list(features_list), verbose=False)


def _layout_problems(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrongly shaped keys against torch-fidelity's InceptionV3 (empty when it matches)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in _inception_network([FID_FEATURE_LAYER]).state_dict().items()}

    def listed(what: str, items: list[str]) -> list[str]:
        return [f"{len(items)} {what}: {', '.join(items[:5])}{', ...' if len(items) > 5 else ''}"] if items else []

    return (
        listed("missing keys", [k for k in expected if k not in state_dict])
        + listed("unexpected keys", [k for k in state_dict if k not in expected])
        + listed(
            "wrong shapes",
            [
                f"{k} expected {list(shape)}, got {list(state_dict[k].shape)}"
                for k, shape in expected.items()
                if k in state_dict and state_dict[k].shape != shape
            ],
        )
    )


def save_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> str:
    """Write a randomly initialised torch-fidelity InceptionV3 state dict to ``path`` (its exact loadable format).

    For offline plumbing tests only: FID/IS values computed with it are meaningless. Convolutions get a variance-
    preserving (He) initialisation so that features stay well scaled through the 90-odd layers. Atomic write. Pass
    the file's SHA-256 (:func:`hf_dualmcmc.serialization.file_sha256`) as ``expected_sha256`` to load it.
    """
    torch.manual_seed(seed)
    net = _inception_network([FID_FEATURE_LAYER])
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
        expected_sha256: the weights file's SHA-256; default :data:`INCEPTION_WEIGHTS_SHA256` (the published file).
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
        expected_sha256: str | None = None,
        fid_feature_layer: str = FID_FEATURE_LAYER,
        device: str = "cpu",
        batch_size: int = 64,
        compute_is: bool = True,
        progress: bool = False,
    ):
        layers = ("64", "192", "768", "2048")
        if fid_feature_layer not in layers:
            raise ValueError(f"fid_feature_layer must be one of {layers}, got {fid_feature_layer!r}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.weights_sha256 = _expected_sha256(expected_sha256)
        self.weights_path = resolve_inception_weights(inception_weights, self.weights_sha256)
        state_dict = load_inception_state_dict(self.weights_path, self.weights_sha256)
        self.fid_feature_layer = fid_feature_layer
        self.features_list = [fid_feature_layer] + ([IS_FEATURE_LAYER] if compute_is else [])
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self.extractor = _inception_network(self.features_list, state_dict).to(device)
        # FID-only statistics (e.g. of reference images) stop at the FID layer instead of running the logits head
        self._fid_extractor = (
            _inception_network([fid_feature_layer], state_dict).to(device) if compute_is else self.extractor
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
            "inception_weights_sha256": self.weights_sha256,
            "inception_weights_published": self.weights_sha256 == INCEPTION_WEIGHTS_SHA256,
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


def _read_npz(path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> tuple[list[str], dict]:
    """``(names, arrays)`` of an ``.npz``: all its array names and the arrays ``keys`` (default: all) among them.

    Read with ``np.load(allow_pickle=False)``: a pickle, or an archive holding object (pickled) arrays, is refused
    with a ``ValueError`` naming the file; nothing is unpickled.
    """
    label = repr(str(path))
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:  # "Cannot load file containing pickled data when allow_pickle=False", object .npy
        raise ValueError(
            f"{label} was refused: reading it would need unpickling ({err}); expected an .npz of plain numeric arrays"
        ) from err
    except Exception as err:  # OSError, BadZipFile, ...
        raise ValueError(f"{label} is not a readable .npz file ({type(err).__name__}: {err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{label} holds a single array (.npy format), expected an .npz archive of named arrays")
    with data:
        names = list(data.files)
        try:
            return names, {k: data[k] for k in (names if keys is None else keys) if k in names}
        except ValueError as err:  # "Object arrays cannot be loaded when allow_pickle=False"
            raise ValueError(
                f"{label} was refused: it holds object (pickled) arrays ({err}); expected an .npz of "
                "plain numeric arrays"
            ) from err
        except Exception as err:  # a damaged member: BadZipFile, EOFError, zlib.error, ...
            raise ValueError(f"{label} is truncated or corrupt ({type(err).__name__}: {err})") from err


def _is_statistics_file(path: Path) -> bool:
    return path.suffix == ".npz" and path.is_file() and {"mu", "sigma"} <= set(_read_npz(path, keys=())[0])


def load_statistics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``{"mu", "sigma"}`` (float64) from an ``.npz`` file (e.g. the TTUR ``fid_stats_cifar10_train.npz``).

    Read with ``np.load(allow_pickle=False)``: a pickle or object arrays are refused, never unpickled. Raises ``ValueError`` naming the file when ``mu`` is not a finite vector or
    ``sigma`` not a matching finite square matrix.
    """
    names, arrays = _read_npz(path, keys=("mu", "sigma"))
    if "mu" not in arrays or "sigma" not in arrays:
        raise ValueError(f"{str(path)!r} is not a statistics file: expected arrays 'mu' and 'sigma', got {names}")
    mu, sigma = arrays["mu"], arrays["sigma"]
    if (
        mu.ndim != 1
        or sigma.shape != (mu.shape[0], mu.shape[0])
        or not (np.issubdtype(mu.dtype, np.number) and np.issubdtype(sigma.dtype, np.number))
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
    scorer: InceptionScorer,
    *,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    max_images: int | None = None,
    split: str = "test",
) -> tuple[dict[str, np.ndarray], dict]:
    """Reference FID statistics: read from a stats ``.npz`` or computed once from an image source and cached.

    ``source`` is a statistics ``.npz`` (arrays ``mu``/``sigma``) or any :func:`load_images` source. Computed
    statistics are cached as ``<cache_dir>/fid-ref-<hash>.npz`` (``mu``, ``sigma`` and a JSON string ``meta``;
    no pickle) keyed by source, split, size, count, feature layer and weights hash. Returns ``(stats, info)``;
    ``info`` records where they came from.
    """
    path = Path(str(source))
    if _is_statistics_file(path):
        stats = load_statistics(path)
        if stats["mu"].shape[0] != int(scorer.fid_feature_layer):
            raise ValueError(
                f"{path} holds {stats['mu'].shape[0]}-d statistics but the scorer uses feature layer "
                f"{scorer.fid_feature_layer}: expected matching sizes"
            )
        return stats, {"source": str(source), "kind": "precomputed statistics"}
    key = json.dumps([str(source), split, image_size, max_images, scorer.fid_feature_layer, scorer.weights_sha256])
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"fid-ref-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        if cache.is_file():
            stats = load_statistics(cache)
            meta = _read_npz(cache, keys=("meta",))[1].get("meta")
            try:
                meta = json.loads(str(meta))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"cached reference statistics {str(cache)!r}: 'meta' is not JSON ({err}); "
                    "delete the file to recompute it"
                ) from err
            return stats, {**meta, "cache": str(cache), "cached": True}
    images = load_images(source, image_size=image_size, max_images=max_images, split=split)
    stats = scorer.statistics(images)
    info = {
        "source": str(source),
        "kind": "images",
        "split": split,
        "num_images": int(images.shape[0]),
        "image_shape": list(images.shape[1:]),
        "fid_feature_layer": scorer.fid_feature_layer,
    }
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
    "INCEPTION_WEIGHTS_SHA256",
    "InceptionScorer",
    "InceptionWeightsError",
    "InceptionWeightsNotFoundError",
    "fid_and_is",
    "frechet_distance",
    "inception_weights_url",
    "load_inception_state_dict",
    "load_statistics",
    "reference_statistics",
    "resolve_inception_weights",
    "save_random_inception_weights",
    "save_statistics",
]

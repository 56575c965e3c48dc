"""FID and Inception Score through torch-fidelity: its TF-compatible InceptionV3 (``inception-v3-compat``: TF1
bilinear resize to 299 px, no antialias), Frechet distance and Inception Score, on images quantised to ``uint8``.

The weights file (:data:`INCEPTION_WEIGHTS_FILENAME`) is pinned by its SHA-256 (:data:`INCEPTION_WEIGHTS_SHA256`, or
``expected_sha256=`` for another file the caller trusts) and must pass ``torch.load(weights_only=True)``; then
torch-fidelity's public constructor loads a private copy of exactly those bytes (``feature_extractor_weights_path``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..serialization import load_torch_file
from .frechet import feature_statistics, frechet_distance
from .images import as_rgb, to_uint8

FEATURE_EXTRACTOR = "inception-v3-compat"
INCEPTION_WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
# torch-fidelity publishes only the first 8 hex digits (the file name); the full digest is the one independent public
# projects pin for this file (and pytorch-fid's pt_inception-2015-12-05-6726825d.pth). See docs/EVALUATION.md.
INCEPTION_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_FEATURE_LAYER = "2048"
IS_FEATURE_LAYER = "logits_unbiased"
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DUALMCMC_OFFLINE", "TRANSFORMERS_OFFLINE")


class InceptionWeightsNotFoundError(FileNotFoundError):
    """The InceptionV3 weights are neither given, cached nor downloadable."""


class InceptionWeightsError(ValueError):
    """The weights file has the wrong SHA-256, would need unsafe unpickling, or is not torch-fidelity's InceptionV3."""


def inception_weights_url() -> str:
    """The URL torch-fidelity downloads its InceptionV3 weights from."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def _expected_sha256(expected_sha256: str | None) -> str:
    value = INCEPTION_WEIGHTS_SHA256 if expected_sha256 is None else str(expected_sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(
            f"expected_sha256 (--inception_weights_sha256) must be 64 hex digits (a SHA-256), got {expected_sha256!r}"
        )
    return value


def resolve_inception_weights(path: str | os.PathLike | None = None, expected_sha256: str | None = None) -> str:
    """The weights file: ``path``, else torch hub's cached copy, else a download (refused offline) that torch hub
    checks against ``expected_sha256`` before caching it. Raises :class:`InceptionWeightsNotFoundError` naming
    ``--inception_weights`` and the file name, or :class:`InceptionWeightsError` for a download with another hash."""
    expected, url = _expected_sha256(expected_sha256), inception_weights_url()
    hint = (
        f"pass --inception_weights PATH (Python: inception_weights=PATH) pointing to torch-fidelity's InceptionV3 "
        f"weights file {INCEPTION_WEIGHTS_FILENAME!r} (download it on a connected machine from {url})"
    )
    if path is not None:
        if not Path(path).is_file():
            raise InceptionWeightsNotFoundError(f"Inception weights file {str(path)!r} does not exist: {hint}")
        return str(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILENAME
    if cached.is_file():
        return str(cached)
    if any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENV_VARS):
        raise InceptionWeightsNotFoundError(
            f"no InceptionV3 weights cached at {cached} and this machine is offline: {hint}"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(cached), hash_prefix=expected, progress=False)
    except Exception as err:  # network errors come in many types (URLError, HTTPError, OSError, ...)
        if isinstance(err, RuntimeError) and "invalid hash value" in str(err):
            raise InceptionWeightsError(f"the InceptionV3 weights downloaded from {url} were discarded: {err}") from err
        raise InceptionWeightsNotFoundError(f"could not download the InceptionV3 weights ({err}): {hint}") from err
    return str(cached)


def _load(path: str | os.PathLike, expected_sha256: str | None) -> tuple[bytes, dict[str, torch.Tensor]]:
    expected, data = _expected_sha256(expected_sha256), Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        which = "the published torch-fidelity file's" if expected == INCEPTION_WEIGHTS_SHA256 else "the given"
        raise InceptionWeightsError(
            f"Inception weights file {str(path)!r} has SHA-256 {actual}, expected {expected} ({which}); refusing to "
            "load it. Use the published file, or pass --inception_weights_sha256 (Python: expected_sha256=) with the "
            "hash of another weights file you trust"
        )
    expectation = "torch-fidelity's InceptionV3 state dict ({name: tensor})"
    try:
        state_dict = load_torch_file(data, what="Inception weights file", expected=expectation, name=str(path))
    except ValueError as err:
        raise InceptionWeightsError(str(err)) from err
    if not isinstance(state_dict, Mapping):
        raise InceptionWeightsError(f"{str(path)!r} holds a {type(state_dict).__name__}, expected {expectation}")
    return data, dict(state_dict)


def load_inception_state_dict(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: its SHA-256 checked (default :data:`INCEPTION_WEIGHTS_SHA256`), then the same
    bytes read with ``torch.load(weights_only=True)``. Raises :class:`InceptionWeightsError` naming the file."""
    return _load(path, expected_sha256)[1]


class InceptionScorer:
    """torch-fidelity's InceptionV3, loaded once from ``inception_weights`` (:func:`resolve_inception_weights`,
    checked against ``expected_sha256``); FID statistics and Inception Score (``compute_is``) from it.
    ``fid_feature_layer``: ``"2048"`` (pool3, standard FID) or ``"64"``/``"192"``/``"768"`` (smoke runs only)."""

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
        from torch_fidelity import FeatureExtractorInceptionV3

        if fid_feature_layer not in ("64", "192", "768", "2048"):
            raise ValueError(f"fid_feature_layer must be one of 64, 192, 768, 2048, got {fid_feature_layer!r}")
        self.weights_sha256 = _expected_sha256(expected_sha256)
        self.weights_path = resolve_inception_weights(inception_weights, self.weights_sha256)
        data = _load(self.weights_path, self.weights_sha256)[0]  # hash checked, nothing but tensors
        self.fid_feature_layer, self.device = fid_feature_layer, device
        self.batch_size, self.progress = batch_size, progress
        self.features_list = [fid_feature_layer] + ([IS_FEATURE_LAYER] if compute_is else [])
        with tempfile.TemporaryDirectory() as tmp:  # the file torch-fidelity loads is exactly the verified bytes
            (copy := Path(tmp, INCEPTION_WEIGHTS_FILENAME)).write_bytes(data)
            try:
                extractor = FeatureExtractorInceptionV3(
                    FEATURE_EXTRACTOR, self.features_list, feature_extractor_weights_path=str(copy)
                )
            except RuntimeError as err:  # load_state_dict: missing / unexpected keys, size mismatches
                raise InceptionWeightsError(
                    f"Inception weights file {self.weights_path!r} is not torch-fidelity's InceptionV3 state dict: "
                    + "; ".join(part.strip()[:200] for part in str(err).splitlines()[1:])
                ) from None
        self.extractor = extractor.to(device)

    @property
    def options(self) -> dict:
        """What the numbers depend on, for the results JSON."""
        from torch_fidelity import __version__ as version

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
            "versions": {"torch_fidelity": version, "torch": torch.__version__, "numpy": np.__version__},
        }

    @torch.no_grad()
    def features(self, images) -> dict[str, torch.Tensor]:
        """Features of ``images`` (anything :func:`~hf_dualmcmc.evaluation.images.to_uint8` accepts) per layer."""
        from tqdm.auto import tqdm

        x = torch.from_numpy(np.ascontiguousarray(as_rgb(to_uint8(images)).transpose(0, 3, 1, 2)))
        if len(x) < 2:
            raise ValueError(f"need at least 2 images for feature statistics, got {len(x)}")
        batches = tqdm(range(0, len(x), self.batch_size), desc="Inception features", disable=not self.progress)
        out = [self.extractor(x[i : i + self.batch_size].to(self.device)) for i in batches]
        return {name: torch.cat([o[k].cpu() for o in out]) for k, name in enumerate(self.features_list)}

    def statistics(self, images=None, *, features: dict | None = None) -> dict[str, np.ndarray]:
        """FID statistics ``{"mu", "sigma"}`` (float64) of ``images`` (or of precomputed ``features``)."""
        return feature_statistics((self.features(images) if features is None else features)[self.fid_feature_layer])

    def inception_score(self, images=None, *, features: dict | None = None, splits: int = 10) -> tuple[float, float]:
        """``(mean, std)`` Inception Score over ``splits`` splits (torch-fidelity's implementation, seed 2020)."""
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        if IS_FEATURE_LAYER not in self.features_list:
            raise ValueError("this scorer was built with compute_is=False")
        logits = (self.features(images) if features is None else features)[IS_FEATURE_LAYER]
        out = isc_features_to_metric(logits, splits=max(1, min(splits, logits.shape[0])), shuffle=True, rng_seed=2020)
        return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]


def fid_and_is(proposals, revised, reference_stats: dict, scorer: InceptionScorer, *, compute_is: bool = True) -> dict:
    """Proposal FID, revised FID (and IS of both, when the scorer computes it) against reference statistics."""
    results = {}
    for name, images in (("proposal", proposals), ("revised", revised)):
        feats = scorer.features(images)
        results[f"fid_{name}"] = frechet_distance(scorer.statistics(features=feats), reference_stats)
        if compute_is and IS_FEATURE_LAYER in scorer.features_list:
            results[f"is_{name}"], results[f"is_{name}_std"] = scorer.inception_score(features=feats)
    return results


__all__ = ["FID_FEATURE_LAYER", "INCEPTION_WEIGHTS_FILENAME", "INCEPTION_WEIGHTS_SHA256", "InceptionScorer"]
__all__ += ["InceptionWeightsError", "InceptionWeightsNotFoundError", "fid_and_is", "inception_weights_url"]
__all__ += ["load_inception_state_dict", "resolve_inception_weights"]

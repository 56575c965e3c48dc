"""Domain Frechet distance for small grayscale data (sklearn digits 8x8, MNIST padded to 32x32).

InceptionV3 features of 8-32 px digits say little, so this metric swaps the feature network for a small CNN classifier
trained on the data itself (its penultimate, globally pooled activations), then uses the *same* Frechet code as FID
(:func:`hf_dualmcmc.evaluation.fid.frechet_distance`, i.e. torch-fidelity's). The classifier is trained once on the
``"train"`` partition of the training data (:func:`hf_dualmcmc.evaluation.images.builtin_split`, the same as
:mod:`hf_dualmcmc.data`'s) and cached as ``domain-classifier-<name>.safetensors`` plus a
``.json`` with its settings and held-out accuracy (no pickle: a cache that is not valid safetensors/JSON, or does not
fit the network, is an error naming the file). Reference statistics use the held-out partition.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .fid import frechet_distance
from .images import BUILTIN_SOURCES, builtin_split, to_uint8

DOMAIN_DATASETS = BUILTIN_SOURCES
DEFAULT_TRAIN_STEPS = 600


class DomainClassifier(nn.Module):
    """A three-block CNN (conv-BN-ReLU, 16-32-64 channels, global average pooling) for 1-channel digits of any size >= 8 px.

    ``features(x)`` returns the 64-d pooled activations used for the Frechet distance; ``forward`` the logits.
    Inputs are ``[B, 1, H, W]`` floats in ``[0, 1]``.
    """

    feature_dim = 64

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - 0.5) / 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    images = to_uint8(images)
    if images.shape[-1] == 3:  # luminance, as PIL's "L" conversion
        images = np.round(images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def _accuracy(model: DomainClassifier, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
            for i in range(0, len(x), batch_size)
        )
    return correct / max(1, len(x))


def train_domain_classifier(
    dataset: str,
    *,
    steps: int = DEFAULT_TRAIN_STEPS,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = False,
) -> tuple[DomainClassifier, dict]:
    """Train :class:`DomainClassifier` on the fixed training partition of ``dataset``; returns ``(model, info)``.

    ``info`` holds the settings and the held-out (test partition) accuracy.
    """
    from tqdm.auto import tqdm

    if dataset not in DOMAIN_DATASETS:
        raise ValueError(f"dataset must be one of {DOMAIN_DATASETS}, got {dataset!r}")
    train_x, train_y = builtin_split(dataset, "train")
    test_x, test_y = builtin_split(dataset, "test")
    xt, yt = _to_tensor(train_x), torch.from_numpy(train_y)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DomainClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in tqdm(range(steps), desc=f"training {dataset} classifier", disable=not progress):
        idx = torch.randint(0, len(xt), (batch_size,), generator=gen)
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    info = {
        "dataset": dataset,
        "image_size": int(train_x.shape[1]),
        "num_train": int(len(train_x)),
        "num_test": int(len(test_x)),
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "feature_dim": DomainClassifier.feature_dim,
        "test_accuracy": _accuracy(model, _to_tensor(test_x), torch.from_numpy(test_y)),
        "torch": torch.__version__,
    }
    return model, info


def load_or_train_domain_classifier(
    dataset: str,
    cache_dir: str | os.PathLike,
    *,
    steps: int = DEFAULT_TRAIN_STEPS,
    seed: int = 0,
    progress: bool = False,
) -> tuple[DomainClassifier, dict]:
    """The cached classifier for ``dataset`` (same steps/seed), else train it and cache it (atomic writes).

    Raises:
        ValueError: naming the cache file, when it is not JSON / safetensors or does not fit :class:`DomainClassifier`
            (delete the two files to retrain).
    """
    cache_dir = Path(cache_dir)
    weights, meta = (
        cache_dir / f"domain-classifier-{dataset}.safetensors",
        cache_dir / f"domain-classifier-{dataset}.json",
    )
    if weights.is_file() and meta.is_file():
        retrain = f"delete {weights.name} and {meta.name} to retrain"
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"domain classifier cache {str(meta)!r} is not JSON ({err}); {retrain}") from err
        if not isinstance(info, dict):
            raise ValueError(
                f"domain classifier cache {str(meta)!r} holds a {type(info).__name__}, expected a JSON "
                f"object; {retrain}"
            )
        if info.get("steps") == steps and info.get("seed") == seed and info.get("dataset") == dataset:
            try:
                state_dict = load_file(str(weights))
            except SafetensorError as err:
                raise ValueError(
                    f"domain classifier cache {str(weights)!r} is not a safetensors file ({err}); {retrain}"
                ) from err
            model = DomainClassifier()
            try:
                model.load_state_dict(state_dict)
            except RuntimeError as err:
                raise ValueError(
                    f"domain classifier cache {str(weights)!r} does not fit DomainClassifier ({err}); {retrain}"
                ) from err
            model.eval()
            return model, {**info, "cached": True}
    model, info = train_domain_classifier(dataset, steps=steps, seed=seed, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp_w, tmp_m = weights.with_name(weights.name + ".tmp"), meta.with_name(meta.name + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_w), metadata={"dataset": dataset})
    tmp_m.write_text(json.dumps(info, indent=2))
    os.replace(tmp_w, weights)
    os.replace(tmp_m, meta)
    return model, {**info, "cached": False}


class DomainFrechetScorer:
    """Frechet distance in the feature space of a :class:`DomainClassifier` trained on ``dataset``.

    Images of another size are resized to the classifier's training size (bilinear, antialiased) first; RGB images
    are converted to luminance. Reference statistics: the held-out partition of ``dataset``.
    """

    def __init__(
        self,
        dataset: str,
        cache_dir: str | os.PathLike,
        *,
        steps: int = DEFAULT_TRAIN_STEPS,
        seed: int = 0,
        progress: bool = False,
    ):
        self.dataset = dataset
        self.model, self.info = load_or_train_domain_classifier(
            dataset, cache_dir, steps=steps, seed=seed, progress=progress
        )
        self.image_size = self.info["image_size"]
        self._reference = None

    def features(self, images, batch_size: int = 500) -> torch.Tensor:
        x = _to_tensor(images)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False
            ).clamp(0, 1)
        with torch.no_grad():
            return torch.cat([self.model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    def statistics(self, images) -> dict[str, np.ndarray]:
        from torch_fidelity.metric_fid import fid_features_to_statistics

        feats = self.features(images)
        if feats.shape[0] < 2:
            raise ValueError(f"need at least 2 images for feature statistics, got {feats.shape[0]}")
        return fid_features_to_statistics(feats.double())

    def reference_statistics(self) -> dict[str, np.ndarray]:
        if self._reference is None:
            self._reference = self.statistics(builtin_split(self.dataset, "test")[0])
        return self._reference

    def distance(self, images, reference=None) -> float:
        """Frechet distance between ``images`` and ``reference`` images (default: the held-out partition)."""
        ref = self.reference_statistics() if reference is None else self.statistics(reference)
        return frechet_distance(self.statistics(images), ref)

    @property
    def options(self) -> dict:
        return {
            "feature_network": "DomainClassifier (3 conv-BN-ReLU blocks, 64-d pooled features)",
            "classifier": self.info,
            "reference": f"{self.dataset} held-out partition",
            "frechet": "torch_fidelity.metric_fid",
        }


__all__ = [
    "DOMAIN_DATASETS",
    "DomainClassifier",
    "DomainFrechetScorer",
    "load_or_train_domain_classifier",
    "train_domain_classifier",
]

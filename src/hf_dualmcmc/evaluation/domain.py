"""Domain Frechet distance for small grayscale data (sklearn digits 8x8, MNIST padded to 32x32).

InceptionV3 features of 8-32 px digits say little, so the feature network is a small CNN classifier trained on the
``"train"`` partition of the data itself (:func:`~.images.builtin_split`; its 64-d pooled activations), with the same
Frechet code as FID. The classifier is cached as ``domain-classifier-<name>.safetensors`` plus a ``.json`` of its
settings and held-out accuracy (a cache that is not safetensors/JSON or does not fit is an error naming the file).
Reference statistics use the held-out partition.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..atomic import atomic_write
from .frechet import feature_statistics, frechet_distance
from .images import BUILTIN_SOURCES, builtin_split, to_uint8

DOMAIN_DATASETS = BUILTIN_SOURCES
DEFAULT_TRAIN_STEPS = 600


class DomainClassifier(torch.nn.Module):
    """Three conv-BN-ReLU blocks (16-32-64 channels), global average pooling and a linear head, for ``[B, 1, H, W]``
    digits in ``[0, 1]`` of any size >= 8 px. ``features(x)``: the 64-d pooled activations; ``forward``: logits."""

    feature_dim = 64

    def __init__(self, num_classes: int = 10):
        super().__init__()
        nn, widths = torch.nn, ((1, 16), (16, 32), (32, 64))
        blocks = [(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)) for i, o in widths]
        self.body = nn.Sequential(*[m for b in blocks for m in b][:-1], nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - 0.5) / 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _to_tensor(images) -> torch.Tensor:
    images = to_uint8(images)
    if images.shape[-1] == 3:  # luminance, as PIL's "L" conversion
        images = np.round(images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def train_domain_classifier(
    dataset: str,
    *,
    steps: int = DEFAULT_TRAIN_STEPS,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = False,
) -> tuple[DomainClassifier, dict]:
    """Train :class:`DomainClassifier` on the training partition of ``dataset``; returns ``(model, info)`` with the
    settings and the held-out (test partition) accuracy."""
    from tqdm.auto import tqdm

    if dataset not in DOMAIN_DATASETS:
        raise ValueError(f"dataset must be one of {DOMAIN_DATASETS}, got {dataset!r}")
    (train_x, train_y), (test_x, test_y) = builtin_split(dataset, "train"), builtin_split(dataset, "test")
    x, y = _to_tensor(train_x), torch.from_numpy(train_y)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DomainClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(steps), desc=f"training {dataset} classifier", disable=not progress):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        test = _to_tensor(test_x)
        predicted = torch.cat([model(test[i : i + 500]).argmax(1) for i in range(0, len(test), 500)])
    info = {"dataset": dataset, "image_size": int(train_x.shape[1]), "num_train": len(train_x), "num_test": len(test_x)}
    info.update(steps=steps, batch_size=batch_size, lr=lr, seed=seed, feature_dim=DomainClassifier.feature_dim)
    info.update(test_accuracy=float((predicted == torch.from_numpy(test_y)).float().mean()), torch=torch.__version__)
    return model, info


def load_or_train_domain_classifier(
    dataset: str,
    cache_dir: str | os.PathLike,
    *,
    steps: int = DEFAULT_TRAIN_STEPS,
    seed: int = 0,
    progress: bool = False,
) -> tuple[DomainClassifier, dict]:
    """The classifier cached in ``cache_dir`` for ``dataset`` (same steps and seed), else a newly trained one, cached.
    A cache that is not JSON / safetensors or does not fit raises ``ValueError`` naming the file."""
    weights, meta = (Path(cache_dir, f"domain-classifier-{dataset}{ext}") for ext in (".safetensors", ".json"))
    if weights.is_file() and meta.is_file():
        retrain = f"delete {weights.name} and {meta.name} to retrain"
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"domain classifier cache {str(meta)!r} is not JSON ({err}); {retrain}") from err
        if not isinstance(info, dict):  # not a file this project wrote: never trained over
            raise ValueError(f"domain classifier cache {str(meta)!r} is not a JSON object; {retrain}")
        if [info.get(k) for k in ("steps", "seed", "dataset")] == [steps, seed, dataset]:
            model = DomainClassifier()
            try:
                model.load_state_dict(load_file(str(weights)))
            except (SafetensorError, RuntimeError) as err:  # not safetensors, or not this network's weights
                raise ValueError(
                    f"domain classifier cache {str(weights)!r} is not a safetensors file of a DomainClassifier ({err}); {retrain}"
                ) from err
            return model.eval(), {**info, "cached": True}
    model, info = train_domain_classifier(dataset, steps=steps, seed=seed, progress=progress)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(weights, save(state, metadata={"dataset": dataset}))
    atomic_write(meta, json.dumps(info, indent=2))
    return model, {**info, "cached": False}


class DomainFrechetScorer:
    """Frechet distance in the feature space of a :class:`DomainClassifier` trained on ``dataset``, against its
    held-out partition. Images of another size are resized (bilinear, antialiased); RGB becomes luminance."""

    def __init__(self, dataset: str, cache_dir: str | os.PathLike, **kwargs):  # kwargs: steps, seed, progress
        self.dataset = dataset
        self.model, self.info = load_or_train_domain_classifier(dataset, cache_dir, **kwargs)
        self.image_size = self.info["image_size"]
        self._reference = None

    @torch.no_grad()
    def features(self, images, batch_size: int = 500) -> torch.Tensor:
        x = _to_tensor(images)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True).clamp(0, 1)
        return torch.cat([self.model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    def statistics(self, images) -> dict[str, np.ndarray]:
        return feature_statistics(self.features(images))

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


__all__ = ["DOMAIN_DATASETS", "DomainClassifier", "DomainFrechetScorer", "load_or_train_domain_classifier"]
__all__ += ["train_domain_classifier"]

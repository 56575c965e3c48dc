"""Image sources and sampling helpers shared by the evaluation suite.

Every function here speaks one currency: ``uint8`` arrays ``[N, H, W, C]`` (``C`` = 1 or 3), the format FID/IS
libraries quantise to and image files store. Sources accepted by :func:`load_images`:

* ``"mnist"`` -- the MNIST test split in ``../shared/data/mnist`` (IDX gzip; override with ``HF_DUALMCMC_SHARED``),
  padded 28 -> 32 px; ``"digits"`` -- scikit-learn's 8x8 digits (values 0..16 rescaled to 0..255);
* a ``.npz`` file holding an image array (key ``images``, ``x`` or the first array);
* a directory of image files (png/jpg/jpeg/bmp/webp, sorted by name, searched recursively);
* anything else is handed to :func:`datasets.load_dataset` (a Hub name, or a local ``imagefolder`` path written as
  ``imagefolder:PATH``), using its ``image``/``img`` column.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from ..data import default_shared_dir, find_image_column, load_mnist_images
from ..data import load_digits_images as _load_digits

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
BUILTIN_SOURCES = ("mnist", "digits")

# The built-in sets use the training data's partitions (hf_dualmcmc.data), so "test" is held out from training:
# MNIST (10k test split here): [0, 9000) train, [9000, 10000) test; digits: a fixed seeded 90/10 split.


def shared_dir() -> Path:
    """The project's shared data folder (``$HF_DUALMCMC_SHARED`` or ``../shared``): see ``hf_dualmcmc.data``."""
    return default_shared_dir()


def load_mnist(pad_to: int = 32, split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """MNIST as ``(uint8 [N, pad_to, pad_to, 1], labels [N])`` (zero-padded from 28 px), split as for training."""
    if pad_to < 28:
        raise ValueError(f"pad_to must be >= 28 for MNIST, got {pad_to}")
    images, labels = load_mnist_images(None, split, return_labels=True)
    lo = (pad_to - 28) // 2
    padded = np.zeros((images.shape[0], pad_to, pad_to), dtype=np.uint8)
    padded[:, lo : lo + 28, lo : lo + 28] = images
    return padded[..., None], labels


def load_digits_images(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(uint8 [N, 8, 8, 1], labels [N])``, split as for training."""
    images, labels = _load_digits(split, return_labels=True)
    return images[..., None], labels


def builtin_split(name: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The ``"train"``/``"test"``/``"all"`` partition of a built-in source: the same as the training data's, so a
    model trained on ``"train"`` (the default of ``configs/mnist.yaml`` / ``configs/digits.yaml``) never saw ``"test"``."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if name == "mnist":
        return load_mnist(split=split)
    if name == "digits":
        return load_digits_images(split)
    raise ValueError(f"unknown built-in source {name!r}; expected one of {BUILTIN_SOURCES}")


def to_uint8(images) -> np.ndarray:
    """Quantise images to ``uint8 [N, H, W, C]``.

    Accepts PIL images, numpy arrays (uint8, or float in ``[0, 1]``; ``[N, H, W, C]``, ``[N, H, W]``) and torch
    tensors ``[N, C, H, W]`` in ``[0, 1]``. Floats are rounded (``round(255 * x)``), as image files store them.
    """
    if isinstance(images, PIL.Image.Image):
        images = [images]
    if isinstance(images, list):
        if not images:
            raise ValueError("expected at least one image, got an empty list")
        if isinstance(images[0], PIL.Image.Image):
            arrays = [np.asarray(im) for im in images]
            images = np.stack([a if a.ndim == 3 else a[..., None] for a in arrays])
        else:
            images = np.asarray(images)
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ValueError(f"torch images must be [N, C, H, W] in [0, 1], got shape {tuple(images.shape)}")
        images = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    if not isinstance(images, np.ndarray):
        raise ValueError(f"expected PIL images, a numpy array or a torch tensor, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must be [N, H, W, C] with C in (1, 3), got shape {images.shape}")
    if images.shape[-1] == 4:
        images = images[..., :3]
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    images = images.astype(np.float64)
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-4 or hi > 1 + 1e-4 or not np.isfinite([lo, hi]).all():
        raise ValueError(f"float images must lie in [0, 1], got min {lo:.4g}, max {hi:.4g}")
    return np.round(images.clip(0, 1) * 255.0).astype(np.uint8)


def convert_images(images: np.ndarray, image_size: int | None = None, num_channels: int | None = None) -> np.ndarray:
    """Resize (bicubic, PIL) and convert channels (L <-> RGB) of ``uint8 [N, H, W, C]`` images."""
    images = to_uint8(images)
    same_size = image_size is None or images.shape[1:3] == (image_size, image_size)
    same_channels = num_channels is None or images.shape[-1] == num_channels
    if same_size and same_channels:
        return images
    if num_channels not in (None, 1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels!r}")
    mode = {1: "L", 3: "RGB"}[num_channels or images.shape[-1]]
    out = []
    for a in images:
        im = PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).convert(mode)
        if not same_size:
            im = im.resize((image_size, image_size), PIL.Image.BICUBIC)
        arr = np.asarray(im)
        out.append(arr[..., None] if arr.ndim == 2 else arr)
    return np.stack(out)


def _load_npz_images(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as data:
        keys = list(data.keys())
        if "mu" in keys and "sigma" in keys and not ({"images", "x"} & set(keys)):
            raise ValueError(f"{path} holds statistics (mu, sigma), not images: use it as a FID reference only")
        key = next((k for k in ("images", "x") if k in keys), keys[0] if keys else None)
        if key is None:
            raise ValueError(f"{path} holds no arrays: expected an image array under 'images'")
        return data[key]


def _load_image_dir(path: Path, max_images: int | None) -> list[PIL.Image.Image]:
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {path}")
    files = files[:max_images] if max_images else files
    images = []
    for p in files:
        with PIL.Image.open(p) as im:
            images.append(im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy())
    return images


def _load_hf_dataset(source: str, split: str, max_images: int | None) -> list[PIL.Image.Image]:
    import datasets

    if source.startswith("imagefolder:"):
        ds = datasets.load_dataset("imagefolder", data_dir=source.split(":", 1)[1], split=split)
    else:
        ds = datasets.load_dataset(source, split=split)
    column = find_image_column(ds)  # by feature type, as for training (a clear error lists the columns)
    if max_images:
        ds = ds.select(range(min(max_images, len(ds))))
    return [im if im.mode in ("L", "RGB") else im.convert("RGB") for im in ds[column]]


def load_images(
    source: str | os.PathLike,
    *,
    image_size: int | None = None,
    num_channels: int | None = None,
    max_images: int | None = None,
    split: str = "test",
) -> np.ndarray:
    """Load reference / held-out images from ``source`` as ``uint8 [N, H, W, C]`` (see the module docstring).

    ``image_size``/``num_channels`` convert the images to a pipeline's format; ``split`` picks the partition of a
    built-in source (``"test"``: the held-out part) or the split of a ``datasets`` source.
    """
    source = str(source)
    if source in BUILTIN_SOURCES:
        images = builtin_split(source, split)[0]
    else:
        path = Path(source)
        if path.suffix == ".npz" and path.is_file():
            images = _load_npz_images(path)
        elif path.is_dir():
            images = _load_image_dir(path, max_images)
        else:
            images = _load_hf_dataset(source, split, max_images)
    images = to_uint8(images)
    if max_images:
        images = images[:max_images]
    return convert_images(images, image_size, num_channels)


def as_rgb(images: np.ndarray) -> np.ndarray:
    """``uint8 [N, H, W, 1|3]`` -> ``[N, H, W, 3]`` (grayscale replicated, as FID on grayscale data is computed)."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def sample_images(
    pipe,
    num_samples: int,
    *,
    batch_size: int = 100,
    seed: int = 0,
    num_inference_steps: int | None = None,
    step_size: float | None = None,
    noise_scale: float | None = None,
    bn_stats: str | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw ``num_samples`` from a :class:`~hf_dualmcmc.DualMCMCPipeline` in batches.

    Returns ``(proposals, revised, sampler)``: two ``uint8 [N, H, W, C]`` arrays (generator proposals and the
    Langevin-revised samples) and the resolved sampler settings (steps, step size, noise, BN mode, batch size, seed).
    The batch size matters with ``bn_stats="batch"``: the authors sample in batches of 100.
    """
    from tqdm.auto import tqdm

    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    cfg = pipe.config
    sampler = {
        "num_inference_steps": cfg.num_inference_steps if num_inference_steps is None else num_inference_steps,
        "step_size": cfg.step_size if step_size is None else step_size,
        "noise_scale": cfg.noise_scale if noise_scale is None else noise_scale,
        "bn_stats": cfg.bn_stats if bn_stats is None else bn_stats,
        "batch_size": batch_size,
        "seed": seed,
    }
    generator = torch.Generator(device="cpu").manual_seed(seed)
    proposals, revised = [], []
    was_disabled = getattr(pipe, "_progress_bar_config", {}).get("disable", False)
    pipe.set_progress_bar_config(disable=True)
    try:
        with tqdm(total=num_samples, desc="sampling", unit="img", disable=not progress) as bar:
            done = 0
            while done < num_samples:
                n = min(batch_size, num_samples - done)
                out = pipe(
                    batch_size=n, num_inference_steps=sampler["num_inference_steps"], step_size=sampler["step_size"],
                    noise_scale=sampler["noise_scale"], bn_stats=sampler["bn_stats"], generator=generator,
                    output_type="pt", return_proposals=True,
                )
                proposals.append(to_uint8(out.proposals))
                revised.append(to_uint8(out.images))
                done += n
                bar.update(n)
    finally:
        pipe.set_progress_bar_config(disable=was_disabled)
    return np.concatenate(proposals), np.concatenate(revised), sampler


__all__ = [
    "BUILTIN_SOURCES",
    "as_rgb",
    "builtin_split",
    "convert_images",
    "load_digits_images",
    "load_images",
    "load_mnist",
    "sample_images",
    "shared_dir",
    "to_uint8",
]

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

import gzip
import os
from pathlib import Path

import numpy as np
import PIL.Image
import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
BUILTIN_SOURCES = ("mnist", "digits")

# Fixed, documented partitions of the two built-in sets (classifier train / held-out test).
MNIST_NUM_TRAIN = 8000  # MNIST test split: images [0, 8000) train the domain classifier, [8000, 10000) are held out
DIGITS_NUM_TRAIN = 1400  # sklearn digits: [0, 1400) train, [1400, 1797) held out


def shared_dir() -> Path:
    """The project's shared data folder: ``$HF_DUALMCMC_SHARED`` or ``../shared`` next to the repository."""
    env = os.environ.get("HF_DUALMCMC_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared"


def _read_idx(path: Path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path} is not an IDX file with magic {magic} (found {found})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(pad_to: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The 10k MNIST test split as ``(uint8 [N, pad_to, pad_to, 1], labels [N])`` (zero-padded from 28 px)."""
    root = shared_dir() / "data" / "mnist"
    images_path, labels_path = root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz"
    if not images_path.is_file() or not labels_path.is_file():
        raise FileNotFoundError(
            f"MNIST not found: expected {images_path} and {labels_path} (set HF_DUALMCMC_SHARED to the shared folder)"
        )
    images = _read_idx(images_path, 2051)
    labels = _read_idx(labels_path, 2049).astype(np.int64)
    if pad_to < 28:
        raise ValueError(f"pad_to must be >= 28 for MNIST, got {pad_to}")
    lo = (pad_to - 28) // 2
    padded = np.zeros((images.shape[0], pad_to, pad_to), dtype=np.uint8)
    padded[:, lo : lo + 28, lo : lo + 28] = images
    return padded[..., None], labels


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as ``(uint8 [N, 8, 8, 1], labels [N])``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images / 16.0 * 255.0).clip(0, 255).astype(np.uint8)
    return images[..., None], bunch.target.astype(np.int64)


def builtin_split(name: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The fixed ``"train"``/``"test"``/``"all"`` partition of a built-in source (see the module constants)."""
    if name == "mnist":
        images, labels = load_mnist()
        cut = MNIST_NUM_TRAIN
    elif name == "digits":
        images, labels = load_digits_images()
        cut = DIGITS_NUM_TRAIN
    else:
        raise ValueError(f"unknown built-in source {name!r}; expected one of {BUILTIN_SOURCES}")
    if split == "train":
        return images[:cut], labels[:cut]
    if split == "test":
        return images[cut:], labels[cut:]
    if split == "all":
        return images, labels
    raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")


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
    with np.load(path) as data:
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
    column = next((c for c in ("image", "img", "images") if c in ds.column_names), None)
    if column is None:
        raise ValueError(f"dataset {source!r} has no image column: expected 'image' or 'img', got {ds.column_names}")
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
    num_revision_steps: int | None = None,
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
        "num_revision_steps": cfg.num_revision_steps if num_revision_steps is None else num_revision_steps,
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
                    batch_size=n, num_revision_steps=sampler["num_revision_steps"], step_size=sampler["step_size"],
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
    "DIGITS_NUM_TRAIN",
    "MNIST_NUM_TRAIN",
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

"""Image data for training and evaluation: one source grammar, one loader, ``[-1, 1]`` image tensors.

```python
>>> ds = load_image_dataset(DataConfig("sklearn:digits", image_size=8, num_channels=1))
>>> describe(ds)
'InMemoryImageDataset: 1617 images, 1x8x8 uint8 in memory (0.1 MiB), random_flip=False'
>>> ds[0].shape, ds[0].dtype  # values in [-1, 1]
(torch.Size([1, 8, 8]), torch.float32)
```

Sources (:func:`load_source`, docs/TRAINING.md): ``"sklearn:digits"`` (``"digits"``), ``"mnist:<dir>"`` (IDX files;
``"mnist"``: ``$HF_DUALMCMC_MNIST_DIR``), an images ``.npz``, else through ``datasets``: a directory, a data file or
glob, a Hub name. Images are decoded once (:class:`InMemoryImageDataset`) when they fit ``max_in_memory_bytes``, else
on the fly (:class:`LazyImageDataset`).
"""

from __future__ import annotations

import glob
import gzip
import os
from functools import partial
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import torch
from datasets.utils.tqdm import tqdm
from huggingface_hub.utils import HFValidationError, validate_repo_id
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from .training_config import DataConfig

SPLITS = ("train", "test", "all")
DIGITS_TEST_SIZE = 180
MNIST_T10K_TRAIN_SIZE = 9000
HIGH_DEPTH_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1}


def _crop_box(image: Any, box: tuple[int, int, int, int]) -> Any:
    height, width = F.get_size(image)
    if box[2] > width or box[3] > height:
        raise ValueError(f"crop_box {box} does not fit inside an image of {width}x{height} (WxH)")
    return F.crop(image, box[1], box[0], box[3] - box[1], box[2] - box[0])


def _to_8bit(image: PIL.Image.Image) -> PIL.Image.Image:
    """High-depth grayscale (``"I;16*"``, ``"I"``: 0..65535, ``"F"``: 0..1) as ``"L"`` (Pillow's conversion clips)."""
    array = np.asarray(image, dtype=np.float64)
    top = HIGH_DEPTH_MODES[image.mode]
    if not np.isfinite(array).all():
        raise ValueError(f"non-finite pixel values (NaN or inf) in a {image.mode!r} image")
    if array.size and (array.min() < 0 or array.max() > top):
        raise ValueError(f"{image.mode!r} pixel values must be in [0, {top}], got [{array.min():g}, {array.max():g}]")
    return PIL.Image.fromarray(np.rint(array * (255 / top)).astype(np.uint8), "L")


def to_mode(image: Any, mode: str) -> Any:
    """PIL's ``convert(mode)`` for PIL images and uint8 tensors ``[..., C, H, W]`` (Pillow's rounded ITU-R 601 luma);
    high-depth grayscale scaled to 8 bits, alpha (a palette's transparency, 4 tensor channels) composited on white."""
    if isinstance(image, PIL.Image.Image):
        if image.mode == "LAB":  # Pillow has no LAB -> RGB conversion (it reinterprets the channels)
            raise ValueError("LAB images are not supported; convert them to RGB first")
        if image.mode in HIGH_DEPTH_MODES:
            image = _to_8bit(image)
        if "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info:
            image = PIL.Image.alpha_composite(PIL.Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
        return image if image.mode == mode else image.convert(mode)
    if image.shape[-3] == 4:
        rgb, alpha = image[..., :3, :, :].to(torch.int32), image[..., 3:, :, :].to(torch.int32)
        image = ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).to(torch.uint8)
    if mode == "RGB":
        return image[..., :3, :, :] if image.shape[-3] >= 3 else image.expand(*image.shape[:-3], 3, -1, -1)
    if image.shape[-3] == 1:
        return image
    red, green, blue = image[..., :3, :, :].to(torch.int32).unbind(-3)
    return ((red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16).to(torch.uint8).unsqueeze(-3)


def _check_fits(image: Any, size: int) -> Any:
    height, width = F.get_size(image)
    if width > size or height > size:
        raise ValueError(
            f"resize='pad' needs images no larger than image_size={size}, got {width}x{height} (WxH); "
            "use resize='resize' or 'center_crop', or a larger image_size"
        )
    return image


def image_transform(config: DataConfig) -> v2.Compose:
    """``config``'s preprocessing, PIL image or uint8 tensor ``[..., C, H, W]`` -> uint8 ``[..., C, S, S]``: crop
    to ``crop_box``, :func:`to_mode`, then ``resize``: ``"resize"`` (bilinear, antialiased, aspect ratio not kept),
    ``"pad"`` (centered on a black canvas; larger images raise) or ``"center_crop"`` (shorter side to ``S``, crop)."""
    size, bilinear = config.image_size, InterpolationMode.BILINEAR
    steps = [v2.Lambda(partial(_crop_box, box=config.crop_box))] if config.crop_box else []
    steps += [v2.Lambda(partial(to_mode, mode=config.mode))] + {
        "resize": [v2.Resize((size, size), bilinear)],
        "pad": [v2.Lambda(partial(_check_fits, size=size)), v2.CenterCrop(size)],
        "center_crop": [v2.Resize(size, bilinear), v2.CenterCrop(size)],
    }[config.resize]
    return v2.Compose([*steps, v2.ToImage()])


class ImageTransform:
    """Picklable ``with_transform`` callable ``{column: [cells]}`` -> ``{"pixel_values": [uint8 [C, S, S]]}``; cells:
    encoded images (decoded here, so errors name the file) or uint8 ``[H, W(, C)]`` arrays (``array_ndim`` 2 / 3)."""

    def __init__(self, image_column: str, config: DataConfig, array_ndim: int | None = None):
        self.image_column, self.config, self.array_ndim = image_column, config, array_ndim
        self.transform, self.origin = image_transform(config), f"source {config.source!r}, split {config.split!r}"

    def __call__(self, batch: dict[str, list]) -> dict[str, list[torch.Tensor]]:
        return {"pixel_values": [self.apply(value) for value in batch[self.image_column]]}

    def apply(self, value: Any) -> torch.Tensor:
        try:
            if self.array_ndim is None:
                image = value if isinstance(value, PIL.Image.Image) else datasets.Image().decode_example(value)
            else:
                image = torch.as_tensor(np.asarray(value, dtype=np.uint8))
                image = image.unsqueeze(-3) if self.array_ndim == 2 else image.movedim(-1, -3)
            return self.transform(image).as_subclass(torch.Tensor)
        except (OSError, SyntaxError, ValueError) as err:  # PIL: OSError (unreadable), SyntaxError (broken PNG)
            path = value.get("path") if isinstance(value, dict) else None
            image = f"image file {path}" if path else f"an image of column {self.image_column!r}"
            raise ValueError(f"cannot use {image} ({self.origin}): {err}") from err


def to_pixel_values(image: torch.Tensor, random_flip: bool = False) -> torch.Tensor:
    """uint8 -> float32 ``v / 127.5 - 1``; ``random_flip``: mirrored if one global-RNG ``torch.rand()`` < 0.5."""
    pixel_values = image.to(torch.float32) / 127.5 - 1.0
    return pixel_values.flip(-1) if random_flip and bool(torch.rand(()) < 0.5) else pixel_values


class InMemoryImageDataset(torch.utils.data.Dataset):
    """Images decoded once, a uint8 tensor ``images`` ``[N, C, H, W]``; items: :func:`to_pixel_values`."""

    def __init__(self, images: torch.Tensor, random_flip: bool = False):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor [N, C, H, W], got {images!r:.80}")
        self.images, self.random_flip = images, bool(random_flip)
        self.num_channels, self.image_size = images.shape[1], images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_pixel_values(self.images[index], self.random_flip)


class LazyImageDataset(torch.utils.data.Dataset):
    """:class:`InMemoryImageDataset`'s items decoded on the fly (an :class:`ImageTransform` via ``with_transform``)."""

    def __init__(self, dataset: datasets.Dataset, image_column: str, config: DataConfig):
        self.image_column, self.config, self.random_flip = image_column, config, bool(config.random_flip)
        self.num_channels, self.image_size = config.num_channels, config.image_size
        cells, array_ndim = _image_cells(dataset, image_column)
        self.dataset = cells.with_transform(ImageTransform(image_column, config, array_ndim))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_pixel_values(self.dataset[int(index)]["pixel_values"], self.random_flip)


def _image_cells(dataset: datasets.Dataset, column: str) -> tuple[datasets.Dataset, int | None]:
    dataset, feature = dataset.select_columns([column]), dataset.features[column]
    if isinstance(feature, datasets.Image):
        return dataset.cast_column(column, datasets.Image(decode=False)), None
    return dataset.with_format("numpy"), len(feature.shape)


def _is_image(feature: Any) -> bool:
    if isinstance(feature, (datasets.Array2D, datasets.Array3D)):
        return feature.dtype == "uint8" and (len(feature.shape) == 2 or feature.shape[-1] in (1, 3, 4))
    return isinstance(feature, datasets.Image)


def find_image_column(dataset: datasets.Dataset, image_column: str | None = None, source: str = "the dataset") -> str:
    """``image_column`` checked, or the image column found by feature type: ``datasets.Image`` columns first, then
    uint8 ``Array2D`` / ``Array3D``; ``"image"``, ``"img"``, ``"pixel_values"`` preferred. ``ValueError`` otherwise."""
    features = dataset.features
    columns = ", ".join(f"{name!r} ({str(feature)[:60]})" for name, feature in features.items()) or "none"
    expected = "expected a datasets.Image or uint8 Array2D/Array3D column"
    if image_column is not None and (image_column not in features or not _is_image(features[image_column])):
        found = f"is {features[image_column]}" if image_column in features else "not found"
        raise ValueError(f"image_column {image_column!r} {found} in {source} ({expected}); columns: {columns}")
    images = [n for n, f in features.items() if isinstance(f, datasets.Image)]
    candidates = images or [n for n, f in features.items() if _is_image(f)]
    if not candidates:
        raise ValueError(f"no image column in {source} ({expected}); columns: {columns}")
    return image_column or next((n for n in ("image", "img", "pixel_values") if n in candidates), candidates[0])


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """A uint8 IDX file (``.gz`` or raw); ``ValueError`` on a bad magic (MNIST: 2051 images, 2049 labels) or size."""
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
        data = handle.read()
    magic, ndim = int.from_bytes(data[:4], "big"), data[3] if len(data) >= 4 else 0
    if len(data) < 4 or data[:3] != b"\0\0\x08" or ndim == 0 or expected_magic not in (None, magic):
        raise ValueError(f"{path}: IDX magic number {magic}, expected {expected_magic or 'a uint8 IDX file'}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - 4 - 4 * ndim != int(np.prod(shape)):
        raise ValueError(f"{path}: IDX header says shape {shape}, file has {len(data) - 4 - 4 * ndim} data bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


def load_mnist_images(directory: str | os.PathLike | None = None, split: str = "train", return_labels: bool = False):
    """MNIST uint8 ``[N, 28, 28]`` from the IDX files in ``directory`` (default: ``$HF_DUALMCMC_MNIST_DIR``), split
    as in docs/TRAINING.md. ``return_labels``: ``(images, int64 labels)``, labels ``None`` without label files."""
    if split not in SPLITS:
        raise ValueError(f"MNIST split must be one of {SPLITS}, got {split!r}")
    given = directory or os.environ.get("HF_DUALMCMC_MNIST_DIR")
    directory = Path(given or "").expanduser()

    def find(name: str) -> Path | None:
        return next((directory / n for n in (f"{name}.gz", name) if given and (directory / n).is_file()), None)

    files = {stem: find(f"{stem}-images-idx3-ubyte") for stem in ("train", "t10k")}
    if not any(files.values()):
        raise FileNotFoundError(
            f"no MNIST IDX images in {directory if given else '$HF_DUALMCMC_MNIST_DIR (not set)'} (expected "
            "t10k-images-idx3-ubyte.gz and/or train-images-idx3-ubyte.gz); pass source='mnist:<dir>' or set "
            "HF_DUALMCMC_MNIST_DIR"
        )
    stems, index = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split], slice(None)
    if files["train"] is None:  # only the 10k test set: a fixed 9,000 / 1,000 partition of it
        stems = ["t10k"]
        index = {"train": slice(MNIST_T10K_TRAIN_SIZE), "test": slice(MNIST_T10K_TRAIN_SIZE, None)}.get(split, index)
    images, labels = [], []
    for stem in stems:
        if files[stem] is None:
            raise FileNotFoundError(f"no {stem}-images-idx3-ubyte[.gz] in {directory} for MNIST split {split!r}")
        images.append(read_idx(files[stem], 2051))
        label_file = find(f"{stem}-labels-idx1-ubyte")
        labels.append(None if label_file is None else read_idx(label_file, 2049).astype(np.int64))
    labels = None if any(lb is None for lb in labels) else np.concatenate(labels)[index]
    return (np.concatenate(images)[index], labels) if return_labels else np.concatenate(images)[index]


def load_digits_images(split: str = "train", return_labels: bool = False):
    """scikit-learn's 8x8 digits as uint8 ``[N, 8, 8]`` (0..16 scaled to 0..255, rounded); ``"test"`` = the first
    180 of ``numpy.random.default_rng(0).permutation(1797)``, ``"train"`` = the other 1,617 (both in original order)."""
    if split not in SPLITS:
        raise ValueError(f"sklearn:digits split must be one of {SPLITS}, got {split!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = np.rint(bunch.images * (255 / 16)).clip(0, 255).astype(np.uint8), bunch.target.astype(np.int64)
    if split != "all":
        perm = np.random.default_rng(0).permutation(len(images))
        index = np.sort(perm[:DIGITS_TEST_SIZE] if split == "test" else perm[DIGITS_TEST_SIZE:])
        images, labels = images[index], labels[index]
    return (images, labels) if return_labels else images


def load_npz_images(path: str | os.PathLike) -> np.ndarray:
    """The uint8 images ``[N, H, W(, C)]`` of an ``.npz`` (key ``images``, ``x`` or ``arr_0``); never unpickles."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:  # a pickle, a corrupt archive
        raise ValueError(f"{path}: not an .npz archive of plain arrays ({err})") from err
    with data:
        key = next((k for k in ("images", "x", "arr_0") if k in data), None)
        if key is None:
            got = "FID statistics (a FID reference only)" if "mu" in data else f"arrays {list(data)}"
        else:
            images = data[key]
            got = f"{images.dtype} {images.shape} under {key!r}"
            if images.dtype.kind in "fc" and not np.isfinite(images).all():
                index = int(np.argwhere(~np.isfinite(images))[0][0])
                raise ValueError(f"{path}: image {index} under {key!r} has non-finite values (NaN or inf)")
            if images.dtype == np.uint8 and (images.ndim == 3 or images.ndim == 4 and images.shape[-1] in (1, 3, 4)):
                return images
    raise ValueError(f"{path}: expected uint8 images [N, H, W(, C)] under 'images', 'x' or 'arr_0', got {got}")


def _array_dataset(images: np.ndarray, labels: np.ndarray | None = None) -> datasets.Dataset:
    array = (datasets.Array2D if images.ndim == 3 else datasets.Array3D)(tuple(images.shape[1:]), "uint8")
    data, features = {"image": images}, {"image": array}
    if labels is not None:
        data["label"], features["label"] = labels, datasets.Value("int64")
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def hub_dataset_id(source: str) -> str | None:
    """``source`` when :func:`load_source` would load it from the Hub (a dataset repository id), else ``None``."""
    local = source in ("digits", "mnist") or source.startswith(("sklearn:", "mnist:", "/", ".", "~"))
    if local or source.endswith(".npz") or Path(source).expanduser().exists() or glob.glob(source):
        return None
    try:
        validate_repo_id(source)
        return source
    except HFValidationError:
        return None


def load_source(source: str, split: str = "train", cache_dir: str | None = None) -> datasets.Dataset:
    """The ``split`` of ``source`` (the grammar of the module docstring) as a ``datasets.Dataset``."""
    if source in ("sklearn:digits", "digits"):
        return _array_dataset(*load_digits_images(split, return_labels=True))
    if source.startswith("sklearn:"):
        raise ValueError(f"unknown scikit-learn source {source!r}; only 'sklearn:digits' is supported")
    if source == "mnist" or source.startswith("mnist:"):
        return _array_dataset(*load_mnist_images(source[len("mnist:") :] or None, split, return_labels=True))
    path = Path(source).expanduser()
    if source.endswith(".npz"):
        return _array_dataset(load_npz_images(path))
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict) and split not in loaded:
            raise ValueError(f"split {split!r} not in {source!r}; available splits: {sorted(loaded)}")
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    files = [] if path.is_dir() else sorted(os.path.abspath(f) for f in glob.glob(str(path), recursive=True))
    args, kwargs = (str(path) if path.is_dir() else source,), {}
    if files:  # a data file or a glob: datasets infers the builder from the files, under any split name
        args, kwargs = (os.path.commonpath([os.path.dirname(f) for f in files]),), {"data_files": {split: files}}
    elif not path.is_dir() and (source.startswith(("/", ".", "~")) or source.count("/") > 1 or "*" in source):
        raise FileNotFoundError(
            f"data source {source!r} does not exist (expected a directory, a data file or glob, "
            "'sklearn:digits', 'mnist[:DIR]', an images .npz or a Hub dataset name)"
        )
    try:
        return datasets.load_dataset(*args, split=split, cache_dir=cache_dir, **kwargs)
    except ValueError as err:  # an unknown split, a split with no data
        what = "has no images (expected at least one)" if "corresponds to no data" in str(err) else f"fails: {err}"
        raise ValueError(f"{source!r} split {split!r} {what}") from err


def decode_images(dataset: datasets.Dataset, image_column: str, config: DataConfig) -> torch.Tensor:
    """Every image of ``image_column`` through :func:`image_transform`, once: uint8 ``[N, C, S, S]``."""
    cells, array_ndim = _image_cells(dataset, image_column)
    transform, size = ImageTransform(image_column, config, array_ndim), config.image_size
    images = torch.empty((len(dataset), config.num_channels, size, size), dtype=torch.uint8)
    with tqdm(total=len(dataset), desc="Decoding images", unit="img") as bar:
        for start in range(0, len(dataset), 256):
            values = cells[start : start + 256][image_column]
            batch = transform.apply(values) if array_ndim else torch.stack([transform.apply(v) for v in values])
            images[start : start + len(batch)] = batch
            bar.update(len(batch))
    return images


def load_image_dataset(config: DataConfig) -> torch.utils.data.Dataset:
    """``config.source`` as float32 ``[C, S, S]`` tensors in ``[-1, 1]``: an :class:`InMemoryImageDataset` (decoded
    once) when ``N * C * S * S <= max_in_memory_bytes``, else a :class:`LazyImageDataset` (``with_transform``)."""
    dataset = load_source(config.source, config.split, config.cache_dir)
    column = find_image_column(dataset, config.image_column, repr(config.source))
    if config.max_images is not None and config.max_images < len(dataset):
        dataset = dataset.select(range(config.max_images))
    if len(dataset) == 0:
        raise ValueError(f"{config.source!r} split {config.split!r} has no images (expected at least one)")
    if config.image_nbytes(len(dataset)) <= config.max_in_memory_bytes:
        return InMemoryImageDataset(decode_images(dataset, column, config), config.random_flip)
    return LazyImageDataset(dataset, column, config)


def check_dataset_size(dataset: Any, batch_size: int) -> None:
    """Raise ``ValueError`` if ``dataset`` holds fewer images than one batch of ``batch_size``."""
    if len(dataset) < batch_size:
        raise ValueError(
            f"dataset has {len(dataset)} images, fewer than one batch of {batch_size}; "
            "lower the batch size or use more images"
        )


def describe(dataset: Any) -> str:
    """One line for logs: class, number of images, image shape, storage."""
    name, config = type(dataset).__name__, getattr(dataset, "config", None)
    if isinstance(dataset, InMemoryImageDataset):
        storage = f"uint8 in memory ({dataset.images.numel() / 2**20:.1f} MiB)"
    elif isinstance(dataset, LazyImageDataset):
        storage = (
            f"decoded on the fly from column {dataset.image_column!r} of {config.source!r} (split {config.split!r})"
        )
    else:
        return f"{name}: {len(dataset)} items"
    size = f"{dataset.num_channels}x{dataset.image_size}x{dataset.image_size}"
    return f"{name}: {len(dataset)} images, {size} {storage}, random_flip={dataset.random_flip}"

"""Image data for training Dual-MCMC models: any ``datasets`` source as a torch ``Dataset`` of ``[-1, 1]`` tensors.

```python
>>> from hf_dualmcmc.data import DataConfig, check_dataset_size, describe, load_image_dataset
>>> ds = load_image_dataset(DataConfig("mnist", image_size=32, num_channels=1, resize="pad"))
>>> check_dataset_size(ds, batch_size=100)
>>> describe(ds)
'InMemoryImageDataset: 9000 images, 1x32x32 uint8 in memory (8.8 MiB), random_flip=False'
>>> ds[0].shape, ds[0].dtype, ds[0].min() >= -1, ds[0].max() <= 1
(torch.Size([1, 32, 32]), torch.float32, tensor(True), tensor(True))
```

Sources (``DataConfig.source``):

* ``"sklearn:digits"``: the 1,797 8x8 scikit-learn digits (values 0..16 scaled to 0..255). Splits: ``"train"`` (a
  fixed 90 % partition: a permutation drawn with ``numpy.random.default_rng(0)``, the last 1,617 of it, kept in
  original order), ``"test"`` (the first 180 of that permutation, in original order) and ``"all"``.
* ``"mnist"`` (the IDX files under ``../shared/data/mnist`` next to the project, or ``$HF_DUALMCMC_SHARED/data/mnist``)
  or ``"mnist:<dir>"``. When the directory holds only the 10,000-image test set (``t10k-*``, as in this project),
  ``"train"`` is its first 9,000 images, ``"test"`` its last 1,000 and ``"all"`` all 10,000. When it also holds the
  full training set (``train-images-idx3-ubyte[.gz]``), ``"train"`` is those 60,000 and ``"test"`` the 10,000.
* a local ``save_to_disk`` directory (``datasets.load_from_disk``), a directory holding ``*.parquet`` files
  (``load_dataset("parquet", data_dir=...)``, splits inferred from file names), any other local directory
  (``load_dataset("imagefolder", data_dir=...)``), a ``.parquet`` file or a glob of them
  (``load_dataset("parquet", data_files={split: ...})``, so any split name works).
* anything else is a Hub dataset name passed to ``datasets.load_dataset(name, split=...)``.

Each image is cropped (``crop_box``), converted to ``"L"`` / ``"RGB"``, brought to ``image_size`` (``resize``: plain
bilinear resize, ``pad``: centered black padding, ``center_crop``: shorter side resized then center crop) and
scaled ``uint8 v -> v / 127.5 - 1``. When ``N * C * H * W`` bytes fit ``max_in_memory_bytes`` everything is decoded
once into an :class:`InMemoryImageDataset`; otherwise a :class:`LazyImageDataset` decodes on the fly through
``datasets.Dataset.with_transform``. Both give identical tensors and apply ``random_flip`` in ``__getitem__`` with
the torch global RNG.
"""

from __future__ import annotations

import glob
import gzip
import os
from io import BytesIO
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import torch
from datasets.utils.tqdm import tqdm

from .training_config import RESIZE_POLICIES, DataConfig

ARRAY_SPLITS = ("train", "test", "all")
DIGITS_TEST_FRACTION = 0.1
DIGITS_SPLIT_SEED = 0
MNIST_T10K_TRAIN_SIZE = 9000
MNIST_IMAGES_MAGIC = 2051
MNIST_LABELS_MAGIC = 2049
PIXEL_VALUES = "pixel_values"
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GLOB_CHARS = ("*", "?", "[")
_DECODE_BATCH_SIZE = 256


# ----------------------------------------------------------------------------------------------------------------
# Per-image preprocessing
# ----------------------------------------------------------------------------------------------------------------


def to_pil_image(value: Any) -> PIL.Image.Image:
    """Turn a dataset cell into a PIL image.

    Accepts a PIL image, an encoded ``{"bytes": ..., "path": ...}`` dict (``datasets.Image(decode=False)``), raw
    encoded bytes, a file path, or a uint8 array-like ``[H, W]`` / ``[H, W, C]`` (``C`` in 1, 3, 4).
    """
    if isinstance(value, PIL.Image.Image):
        return value
    if isinstance(value, (dict, str)):
        return datasets.Image().decode_example(
            value if isinstance(value, dict) else {"path": value, "bytes": None}
        )
    if isinstance(value, (bytes, bytearray)):
        image = PIL.Image.open(BytesIO(value))
        image.load()
        return image
    if value is None:
        raise ValueError("image value is None (missing image in the dataset)")
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            f"expected an image array [H, W] or [H, W, C] with C in (1, 3, 4), got shape {array.shape}"
        )
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"expected image array values in [0, 255], got [{array.min()}, {array.max()}] ({array.dtype})"
            )
        array = np.rint(array).astype(np.uint8)
    return PIL.Image.fromarray(np.ascontiguousarray(array))


def pad_or_resize(image: PIL.Image.Image, image_size: int, policy: str = "resize") -> PIL.Image.Image:
    """Bring a PIL image to ``image_size x image_size`` with ``policy`` in ``"resize"``, ``"pad"``, ``"center_crop"``.

    ``"resize"``: bilinear resize (Pillow's resampling is antialiased when downscaling); the aspect ratio is not kept.
    ``"pad"``: paste centered on a black canvas (e.g. MNIST 28 -> 32 adds 2 px on each side; an odd margin puts the
    extra pixel right/bottom); raises ``ValueError`` if a side is larger than ``image_size``.
    ``"center_crop"``: resize the shorter side to ``image_size`` (bilinear, antialiased, aspect ratio kept), then
    center crop, as torchvision's ``Resize(image_size)`` + ``CenterCrop(image_size)``.
    """
    size = (image_size, image_size)
    width, height = image.size
    if policy == "resize":
        return image if image.size == size else image.resize(size, PIL.Image.BILINEAR)
    if policy == "pad":
        if width > image_size or height > image_size:
            raise ValueError(
                f"resize='pad' needs images no larger than image_size={image_size}, got {width}x{height} (WxH); "
                "use resize='resize' or 'center_crop', or a larger image_size"
            )
        if image.size == size:
            return image
        canvas = PIL.Image.new(image.mode, size)  # zeros: black in L and RGB
        canvas.paste(image, ((image_size - width) // 2, (image_size - height) // 2))
        return canvas
    if policy == "center_crop":
        if image.size == size:
            return image
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode

        image = TF.resize(image, image_size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        return TF.center_crop(image, [image_size, image_size])
    raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {policy!r}")


def to_uint8_array(value: Any, config: DataConfig) -> np.ndarray:
    """Preprocess one image (anything :func:`to_pil_image` accepts) into a uint8 array ``[C, H, W]``.

    Order: ``crop_box`` crop, conversion to ``config.mode`` (``"L"`` / ``"RGB"``), then :func:`pad_or_resize`.
    """
    image = to_pil_image(value)
    if config.crop_box is not None:
        left, upper, right, lower = config.crop_box
        if right > image.width or lower > image.height:
            raise ValueError(
                f"crop_box {config.crop_box} does not fit inside an image of {image.width}x{image.height} (WxH)"
            )
        image = image.crop(config.crop_box)
    if image.mode != config.mode:
        image = image.convert(config.mode)
    image = pad_or_resize(image, config.image_size, config.resize)
    array = np.array(image, dtype=np.uint8)  # a writable copy (np.asarray of a PIL image is read-only)
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array)


def uint8_to_pixel_values(images: torch.Tensor) -> torch.Tensor:
    """Map uint8 images to float32 model space: ``v -> v / 127.5 - 1`` (0 -> -1, 255 -> 1)."""
    return images.to(torch.float32) / 127.5 - 1.0


def _maybe_flip(pixel_values: torch.Tensor, random_flip: bool) -> torch.Tensor:
    if random_flip and bool(torch.rand(()) < 0.5):
        return pixel_values.flip(-1)
    return pixel_values


# ----------------------------------------------------------------------------------------------------------------
# Torch datasets
# ----------------------------------------------------------------------------------------------------------------


class InMemoryImageDataset(torch.utils.data.Dataset):
    """Images decoded once, held as a uint8 tensor ``images`` ``[N, C, H, W]``.

    ``__getitem__`` returns a float32 ``[C, H, W]`` tensor in ``[-1, 1]``, horizontally flipped with probability 0.5
    (torch global RNG) when ``random_flip``.
    """

    def __init__(self, images: torch.Tensor, random_flip: bool = False):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            got = (
                f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images)
            )
            raise ValueError(f"images must be a uint8 tensor [N, C, H, W], got {got}")
        self.images = images
        self.random_flip = bool(random_flip)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return _maybe_flip(uint8_to_pixel_values(self.images[index]), self.random_flip)

    @property
    def num_channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]


class ImageTransform:
    """``datasets.Dataset.with_transform`` callable: a batch ``{column: [images]}`` -> ``{"pixel_values": [tensors]}``.

    A module-level class (not a closure) so that the transformed dataset pickles for DataLoader workers.
    """

    def __init__(self, image_column: str, config: DataConfig):
        self.image_column = image_column
        self.config = config

    def __call__(self, batch: dict[str, list]) -> dict[str, list[torch.Tensor]]:
        return {
            PIXEL_VALUES: [
                uint8_to_pixel_values(torch.from_numpy(to_uint8_array(value, self.config)))
                for value in batch[self.image_column]
            ]
        }


class LazyImageDataset(torch.utils.data.Dataset):
    """A ``datasets.Dataset`` decoded on the fly through ``with_transform``, with :class:`InMemoryImageDataset`'s
    interface: items are float32 ``[C, H, W]`` tensors in ``[-1, 1]`` (same values as the in-memory path), same
    ``len``, same ``random_flip``. The transformed ``datasets.Dataset`` is the attribute ``dataset``.
    """

    def __init__(self, dataset: datasets.Dataset, image_column: str, config: DataConfig):
        validate_image_column(dataset, image_column)
        self.image_column = image_column
        self.config = config
        self.random_flip = bool(config.random_flip)
        self.dataset = dataset.select_columns([image_column]).with_transform(
            ImageTransform(image_column, config)
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return _maybe_flip(self.dataset[int(index)][PIXEL_VALUES], self.random_flip)

    @property
    def num_channels(self) -> int:
        return self.config.num_channels

    @property
    def image_size(self) -> int:
        return self.config.image_size


# ----------------------------------------------------------------------------------------------------------------
# Columns
# ----------------------------------------------------------------------------------------------------------------


def _is_image_feature(feature: Any) -> bool:
    if isinstance(feature, datasets.Image):
        return True
    if isinstance(feature, datasets.Array2D):
        return feature.dtype == "uint8"
    if isinstance(feature, datasets.Array3D):
        return feature.dtype == "uint8" and feature.shape[-1] in (1, 3, 4)
    return False


def _describe_columns(features: datasets.Features) -> str:
    parts = []
    for name, feature in features.items():
        text = repr(feature)
        parts.append(f"{name!r} ({text[:57] + '...' if len(text) > 60 else text})")
    return ", ".join(parts) if parts else "(no columns)"


def _features_of(dataset: Any) -> datasets.Features:
    features = getattr(dataset, "features", None)
    if features is None:
        raise ValueError(f"cannot find an image column: {type(dataset).__name__} has no known features")
    return features


def find_image_column(dataset: Any) -> str:
    """Name of the image column of a ``datasets`` dataset, found by feature type.

    Image-like features are ``datasets.Image`` and uint8 ``Array2D`` ``(H, W)`` / ``Array3D`` ``(H, W, C)``.
    ``datasets.Image`` columns win over arrays; among several, ``"image"``, ``"img"``, ``"pixel_values"`` are
    preferred in that order, else the first. Raises ``ValueError`` listing the columns and their types if none is.
    """
    features = _features_of(dataset)
    images = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    candidates = images or [name for name, feature in features.items() if _is_image_feature(feature)]
    if not candidates:
        raise ValueError(
            "no image column found (expected a datasets.Image feature or a uint8 Array2D/Array3D); "
            f"columns: {_describe_columns(features)}"
        )
    for preferred in ("image", "img", "pixel_values"):
        if preferred in candidates:
            return preferred
    return candidates[0]


def validate_image_column(dataset: Any, image_column: str) -> str:
    """Check that ``image_column`` exists and is image-like; ``ValueError`` naming the columns and types if not."""
    features = _features_of(dataset)
    if image_column not in features:
        raise ValueError(f"image_column {image_column!r} not found; columns: {_describe_columns(features)}")
    if not _is_image_feature(features[image_column]):
        raise ValueError(
            f"image_column {image_column!r} is {features[image_column]!r}, not an image column "
            f"(datasets.Image or uint8 Array2D/Array3D); columns: {_describe_columns(features)}"
        )
    return image_column


# ----------------------------------------------------------------------------------------------------------------
# Array sources: IDX (MNIST) and scikit-learn digits
# ----------------------------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw): magic ``0x0000TTDD`` (type ``TT``, ``DD`` dims), big-endian int32 dims, data.

    Raises ``ValueError`` on a bad magic number (or one different from ``expected_magic``, e.g. 2051 for MNIST
    images, 2049 for labels) or a size that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {magic})")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: IDX magic number {magic}, expected {expected_magic}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes), file has {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def default_shared_dir() -> Path:
    """The project's shared data folder: ``$HF_DUALMCMC_SHARED``, else ``../shared`` next to the project checkout
    (for a source checkout), else ``../shared`` from the working directory."""
    env = os.environ.get("HF_DUALMCMC_SHARED")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2].parent / "shared"
    return checkout if checkout.is_dir() else Path.cwd().resolve().parent / "shared"


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def load_mnist_images(
    directory: str | os.PathLike | None = None, split: str = "train", return_labels: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """MNIST images as a uint8 array ``[N, 28, 28]`` from IDX files (gzipped or not) in ``directory``.

    ``directory`` defaults to ``default_shared_dir() / "data" / "mnist"``. Partition: with only
    ``t10k-images-idx3-ubyte`` present, ``"train"`` = its first 9,000 images, ``"test"`` = its last 1,000, ``"all"``
    = all 10,000; with ``train-images-idx3-ubyte`` present too, ``"train"`` = the 60,000 training images, ``"test"``
    = the 10,000 test images, ``"all"`` = both. ``return_labels``: also the int64 labels of the same images.
    """
    if split not in ARRAY_SPLITS:
        raise ValueError(f"MNIST split must be one of {ARRAY_SPLITS}, got {split!r}")
    directory = Path(directory) if directory is not None else default_shared_dir() / "data" / "mnist"
    test_file = _find_idx(directory, "t10k-images-idx3-ubyte")
    train_file = _find_idx(directory, "train-images-idx3-ubyte")
    if test_file is None and train_file is None:
        raise FileNotFoundError(
            f"no MNIST IDX images in {directory} (expected t10k-images-idx3-ubyte.gz and/or "
            "train-images-idx3-ubyte.gz); pass source='mnist:<dir>' or set HF_DUALMCMC_SHARED"
        )

    def read(image_file: Path | None, stem: str) -> tuple[np.ndarray, np.ndarray | None]:
        if image_file is None:
            raise FileNotFoundError(f"no {stem}-images-idx3-ubyte[.gz] in {directory} for MNIST split {split!r}")
        images = read_idx(image_file, MNIST_IMAGES_MAGIC)
        if images.ndim != 3:
            raise ValueError(f"{image_file}: expected images [N, H, W], got shape {images.shape}")
        if not return_labels:
            return images, None
        label_file = _find_idx(directory, f"{stem}-labels-idx1-ubyte")
        if label_file is None:
            raise FileNotFoundError(f"no {stem}-labels-idx1-ubyte[.gz] in {directory}")
        return images, read_idx(label_file, MNIST_LABELS_MAGIC).astype(np.int64)

    if train_file is not None:
        parts = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]
        files = {"train": train_file, "t10k": test_file}
        loaded = [read(files[stem], stem) for stem in parts]
        images = np.concatenate([im for im, _ in loaded])
        labels = np.concatenate([lb for _, lb in loaded]) if return_labels else None
    else:
        images, labels = read(test_file, "t10k")
        index = {"train": slice(0, MNIST_T10K_TRAIN_SIZE), "test": slice(MNIST_T10K_TRAIN_SIZE, None),
                 "all": slice(None)}[split]
        images = images[index]
        labels = labels[index] if return_labels else None
    return (images, labels) if return_labels else images


def load_digits_images(split: str = "train", return_labels: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as uint8 ``[N, 8, 8]`` (values 0..16 scaled to 0..255, rounded).

    Digits have no official split. This uses a fixed, deterministic 90/10 partition: ``perm =
    numpy.random.default_rng(0).permutation(1797)``; ``"test"`` = ``perm[:180]``, ``"train"`` = ``perm[180:]`` (both
    in original order), ``"all"`` = all 1,797. ``return_labels``: also the int64 labels of the same images.
    """
    if split not in ARRAY_SPLITS:
        raise ValueError(f"sklearn:digits split must be one of {ARRAY_SPLITS}, got {split!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    if split != "all":
        perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
        num_test = int(round(DIGITS_TEST_FRACTION * len(images)))
        index = np.sort(perm[:num_test] if split == "test" else perm[num_test:])
        images, labels = images[index], labels[index]
    return (images, labels) if return_labels else images


def _array_source(config: DataConfig) -> np.ndarray | None:
    source = config.source
    if source == "sklearn:digits":
        return load_digits_images(config.split)
    if source == "mnist":
        return load_mnist_images(None, config.split)
    if source.startswith("mnist:"):
        return load_mnist_images(Path(source[len("mnist:") :]).expanduser(), config.split)
    if source.startswith("sklearn:"):
        raise ValueError(f"unknown scikit-learn source {source!r}; only 'sklearn:digits' is supported")
    return None


def _array_features(images: np.ndarray) -> datasets.Features:
    shape = tuple(int(s) for s in images.shape[1:])
    array = datasets.Array2D(shape, "uint8") if len(shape) == 2 else datasets.Array3D(shape, "uint8")
    return datasets.Features({"image": array})


# ----------------------------------------------------------------------------------------------------------------
# `datasets` sources
# ----------------------------------------------------------------------------------------------------------------


def _looks_like_hub_name(source: str) -> bool:
    if source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") > 1:
        return False
    return not source.endswith(".parquet")


def _select_split(loaded: Any, split: str, source: str) -> datasets.Dataset:
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"split {split!r} not in {source}; available splits: {sorted(loaded)}")
        loaded = loaded[split]
    if not isinstance(loaded, datasets.Dataset):
        raise ValueError(f"{source} loaded as {type(loaded).__name__}, expected a datasets.Dataset")
    return loaded


def load_hf_dataset(config: DataConfig) -> datasets.Dataset:
    """Load ``config.source`` (anything but ``sklearn:`` / ``mnist`` sources) as a ``datasets.Dataset`` split.

    Local ``save_to_disk`` directory -> ``load_from_disk``; directory with ``*.parquet`` files ->
    ``load_dataset("parquet", data_dir=...)``; other directory -> ``load_dataset("imagefolder", data_dir=...)``;
    ``.parquet`` file or glob -> ``load_dataset("parquet", data_files={split: ...})``; otherwise a Hub dataset name
    -> ``load_dataset(name, split=...)``.
    """
    source, split, cache_dir = config.source, config.split, config.cache_dir
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return _select_split(datasets.load_from_disk(str(path)), split, source)
        if any(path.rglob("*.parquet")):
            loaded = datasets.load_dataset("parquet", data_dir=str(path), split=split, cache_dir=cache_dir)
        else:
            loaded = datasets.load_dataset(
                "imagefolder", data_dir=str(path), split=split, cache_dir=cache_dir
            )
        return _select_split(loaded, split, source)
    if path.is_file():
        if path.suffix != ".parquet":
            raise ValueError(
                f"unsupported data file {source!r}: expected a .parquet file, a directory or a Hub name"
            )
        loaded = datasets.load_dataset(
            "parquet", data_files={split: str(path)}, split=split, cache_dir=cache_dir
        )
        return _select_split(loaded, split, source)
    if any(char in source for char in _GLOB_CHARS):
        matches = sorted(glob.glob(os.path.expanduser(source), recursive=True))
        if not matches:
            raise FileNotFoundError(f"no files match {source!r}")
        if not all(match.endswith(".parquet") for match in matches):
            raise ValueError(
                f"a glob source must match only .parquet files; {source!r} matches {matches[:5]}"
            )
        loaded = datasets.load_dataset(
            "parquet", data_files={split: matches}, split=split, cache_dir=cache_dir
        )
        return _select_split(loaded, split, source)
    if not _looks_like_hub_name(source):
        raise FileNotFoundError(f"data source {source!r} does not exist (and is not a Hub dataset name)")
    return _select_split(datasets.load_dataset(source, split=split, cache_dir=cache_dir), split, source)


# ----------------------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------------------


def _decode_all(values, num_images: int, config: DataConfig) -> torch.Tensor:
    images = torch.empty(
        (num_images, config.num_channels, config.image_size, config.image_size), dtype=torch.uint8
    )
    position = 0
    with tqdm(total=num_images, desc="Decoding images", unit="img") as bar:
        for chunk in values:
            for value in chunk:
                images[position] = torch.from_numpy(to_uint8_array(value, config))
                position += 1
            bar.update(len(chunk))
    if position != num_images:
        raise ValueError(f"expected {num_images} images, decoded {position}")
    return images


def load_image_dataset(config: DataConfig) -> torch.utils.data.Dataset:
    """Load ``config.source`` as a torch dataset of float32 ``[C, H, W]`` tensors in ``[-1, 1]``.

    In-memory path (``N * C * H * W <= max_in_memory_bytes``): an :class:`InMemoryImageDataset` holding a uint8
    ``[N, C, H, W]`` tensor (``.images``), decoded once with a progress bar. Fallback: a :class:`LazyImageDataset`
    wrapping ``datasets.Dataset.with_transform``, same items and ``len``.
    """
    arrays = _array_source(config)
    if arrays is not None:
        if config.image_column not in (None, "image"):
            raise ValueError(
                f"image_column {config.image_column!r} not found; columns of {config.source!r}: "
                f"'image' (uint8 array {list(arrays.shape[1:])})"
            )
        if config.max_images is not None:
            arrays = arrays[: config.max_images]
        if len(arrays) == 0:
            raise ValueError(f"{config.source!r} split {config.split!r} has no images")
        if config.image_nbytes(len(arrays)) <= config.max_in_memory_bytes:
            chunks = (arrays[i : i + _DECODE_BATCH_SIZE] for i in range(0, len(arrays), _DECODE_BATCH_SIZE))
            return InMemoryImageDataset(_decode_all(chunks, len(arrays), config), config.random_flip)
        dataset = datasets.Dataset.from_dict({"image": arrays}, features=_array_features(arrays))
        return LazyImageDataset(dataset, "image", config)

    dataset = load_hf_dataset(config)
    if config.image_column is None:
        column = find_image_column(dataset)
    else:
        column = validate_image_column(dataset, config.image_column)
    if config.max_images is not None and config.max_images < len(dataset):
        dataset = dataset.select(range(config.max_images))
    if len(dataset) == 0:
        raise ValueError(f"{config.source!r} split {config.split!r} has no images")
    dataset = dataset.select_columns([column])
    if config.image_nbytes(len(dataset)) <= config.max_in_memory_bytes:
        if not isinstance(dataset.features[column], datasets.Image):
            dataset = dataset.with_format("numpy")
        chunks = (batch[column] for batch in dataset.iter(batch_size=_DECODE_BATCH_SIZE))
        return InMemoryImageDataset(_decode_all(chunks, len(dataset), config), config.random_flip)
    return LazyImageDataset(dataset, column, config)


def check_dataset_size(dataset: Any, batch_size: int) -> None:
    """Raise ``ValueError`` if ``dataset`` holds fewer images than one batch of ``batch_size``."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    num_images = len(dataset)
    if num_images < batch_size:
        raise ValueError(
            f"dataset has {num_images} images, fewer than one batch of {batch_size}; "
            "lower the batch size or use more images"
        )


def describe(dataset: Any) -> str:
    """One line for logs: class, number of images, image shape, storage."""
    if isinstance(dataset, InMemoryImageDataset):
        _, c, h, w = dataset.images.shape
        mib = dataset.images.numel() / 2**20
        return (
            f"InMemoryImageDataset: {len(dataset)} images, {c}x{h}x{w} uint8 in memory ({mib:.1f} MiB), "
            f"random_flip={dataset.random_flip}"
        )
    if isinstance(dataset, LazyImageDataset):
        c, s = dataset.num_channels, dataset.image_size
        return (
            f"LazyImageDataset: {len(dataset)} images, {c}x{s}x{s} decoded on the fly from column "
            f"{dataset.image_column!r} of {dataset.config.source!r} (split {dataset.config.split!r}), "
            f"random_flip={dataset.random_flip}"
        )
    return f"{type(dataset).__name__}: {len(dataset)} items"


__all__ = [
    "DataConfig",
    "ImageTransform",
    "InMemoryImageDataset",
    "LazyImageDataset",
    "check_dataset_size",
    "default_shared_dir",
    "describe",
    "find_image_column",
    "load_digits_images",
    "load_hf_dataset",
    "load_image_dataset",
    "load_mnist_images",
    "pad_or_resize",
    "read_idx",
    "to_pil_image",
    "to_uint8_array",
    "uint8_to_pixel_values",
    "validate_image_column",
]

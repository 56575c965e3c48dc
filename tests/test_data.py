"""Tests for ``hf_dualmcmc.data``: sources, preprocessing policies, in-memory vs lazy paths, errors."""

import dataclasses
import gzip
import os
import pickle
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hf_dualmcmc.data import (  # noqa: E402
    DataConfig,
    InMemoryImageDataset,
    LazyImageDataset,
    check_dataset_size,
    describe,
    find_image_column,
    image_transform,
    load_digits_images,
    load_image_dataset,
    load_mnist_images,
    load_source,
    read_idx,
)


def px(value):
    """Expected model-space value of a uint8 pixel."""
    return value / 127.5 - 1.0


def rgb(width, height, color):
    return PIL.Image.fromarray(np.full((height, width, 3), color, dtype=np.uint8), "RGB")


def write_imagefolder(root: Path, values, labels=None, size=(8, 8)):
    """PNG files with uniform RGB colour (v, v // 2, 255 - v); optionally in label subfolders."""
    for i, v in enumerate(values):
        folder = root / labels[i] if labels else root
        folder.mkdir(parents=True, exist_ok=True)
        rgb(*size, (v, v // 2, 255 - v)).save(folder / f"img_{i}.png")
    return root


def image_dataset(images, extra=True):
    """A ``datasets.Dataset`` with an ``Image()`` column ``img`` (and a ``label`` column)."""
    data = {"img": images}
    features = {"img": datasets.Image()}
    if extra:
        data["label"] = list(range(len(images)))
        features["label"] = datasets.Value("int64")
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def preprocess(image, config):
    """One image through ``config``'s transforms.v2 pipeline, as a uint8 numpy array [C, H, W]."""
    out = image_transform(config)(image)
    assert out.dtype == torch.uint8
    return out.numpy()


def in_memory(dataset):
    assert isinstance(dataset, InMemoryImageDataset)
    return dataset


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "hf_cache")


@pytest.fixture
def parquet_file(tmp_path):
    """Five 8x8 RGB images (uniform colours 10, 60, 110, 160, 210) in a parquet file with PNG bytes."""
    images = [rgb(8, 8, (v, v // 2, 255 - v)) for v in (10, 60, 110, 160, 210)]
    path = tmp_path / "pq" / "train-00000.parquet"
    path.parent.mkdir()
    image_dataset(images).to_parquet(str(path))
    return path


# ----------------------------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------------------------


def test_imagefolder_without_labels(tmp_path, cache):
    values = [0, 51, 102, 255]
    root = write_imagefolder(tmp_path / "flat", values)
    ds = in_memory(load_image_dataset(DataConfig(str(root), image_size=8, num_channels=3, cache_dir=cache)))
    assert len(ds) == 4
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (4, 3, 8, 8)
    item = ds[0]
    assert item.dtype == torch.float32 and item.shape == (3, 8, 8)
    stacked = torch.stack([ds[i] for i in range(len(ds))])
    assert stacked.min() >= -1 and stacked.max() <= 1
    got = sorted(tuple(round(float(c), 5) for c in stacked[i, :, 3, 5]) for i in range(4))
    expected = sorted(tuple(round(px(c), 5) for c in (v, v // 2, 255 - v)) for v in values)
    assert got == expected
    assert -1.0 in stacked and 1.0 in stacked  # 0 -> -1 and 255 -> 1 exactly


def test_imagefolder_with_label_subfolders(tmp_path, cache):
    root = write_imagefolder(tmp_path / "labelled", [20, 40, 200], labels=["cat", "cat", "dog"])
    loaded = datasets.load_dataset("imagefolder", data_dir=str(root), split="train", cache_dir=cache)
    assert "label" in loaded.column_names and find_image_column(loaded) == "image"
    ds = in_memory(load_image_dataset(DataConfig(str(root), image_size=8, cache_dir=cache)))
    assert ds.images.shape == (3, 3, 8, 8)
    assert sorted(int(v) for v in ds.images[:, 0, 0, 0]) == [20, 40, 200]


def test_parquet_file_glob_and_directory(parquet_file, cache):
    values = [10, 60, 110, 160, 210]
    for source in (str(parquet_file), str(parquet_file.parent / "*.parquet"), str(parquet_file.parent)):
        ds = in_memory(load_image_dataset(DataConfig(source, image_size=8, cache_dir=cache)))
        assert ds.images.shape == (5, 3, 8, 8), source
        # parquet keeps row order: pixel (2, 2) of item i is (v, v // 2, 255 - v)
        for i, v in enumerate(values):
            torch.testing.assert_close(ds[i][:, 2, 2], torch.tensor([px(v), px(v // 2), px(255 - v)]))


def test_parquet_any_split_name_and_max_images(parquet_file, cache):
    ds = load_image_dataset(
        DataConfig(str(parquet_file), split="validation", max_images=2, image_size=4, cache_dir=cache)
    )
    assert len(ds) == 2 and ds[0].shape == (3, 4, 4)
    torch.testing.assert_close(ds[1][:, 0, 0], torch.tensor([px(60), px(30), px(195)]))


def test_save_to_disk_directory(tmp_path):
    image_dataset([rgb(8, 8, (7, 7, 7))] * 3).save_to_disk(str(tmp_path / "saved"))
    ds = in_memory(load_image_dataset(DataConfig(str(tmp_path / "saved"), image_size=8, num_channels=1)))
    assert ds.images.shape == (3, 1, 8, 8) and int(ds.images.max()) == 7 == int(ds.images.min())


def test_hub_name_goes_through_load_dataset(monkeypatch, cache):
    calls = []

    def fake_load_dataset(path, *args, **kwargs):
        calls.append((path, args, kwargs))
        return image_dataset([rgb(8, 8, (0, 0, 0)), rgb(8, 8, (255, 255, 255))])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_image_dataset(DataConfig("uoft-cs/cifar10", split="test", image_size=8, cache_dir=cache))
    assert calls == [("uoft-cs/cifar10", (), {"split": "test", "cache_dir": cache})]
    assert len(ds) == 2 and float(ds[0].max()) == -1.0 and float(ds[1].min()) == 1.0


def test_missing_local_sources_raise(tmp_path):
    for source in (str(tmp_path / "nope"), str(tmp_path / "nope.parquet"), "./nope", str(tmp_path / "*.parquet")):
        with pytest.raises(FileNotFoundError):
            load_image_dataset(DataConfig(source))
    (tmp_path / "notes.txt").write_text("x")  # a text file is a datasets source too, but has no image column
    with pytest.raises(ValueError, match=r"no image column in '.*notes.txt'.*columns: 'text'"):
        load_image_dataset(DataConfig(str(tmp_path / "notes.txt")))


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------------------------


def test_channel_conversion_3_to_1_and_1_to_3():
    gray3 = rgb(4, 4, (90, 90, 90))
    red = rgb(4, 4, (255, 0, 0))
    one = DataConfig("unused", image_size=4, num_channels=1)
    assert preprocess(gray3, one).shape == (1, 4, 4)
    assert (preprocess(gray3, one) == 90).all()
    assert abs(int(preprocess(red, one)[0, 0, 0]) - 76) <= 1  # ITU-R 601 luma 0.299 * 255
    gray1 = PIL.Image.fromarray(np.full((4, 4), 200, np.uint8), "L")
    three = preprocess(gray1, DataConfig("unused", image_size=4, num_channels=3))
    assert three.shape == (3, 4, 4) and (three == 200).all()


def test_pad_28_to_32(tmp_path, cache):
    rng = np.random.default_rng(0)
    digits = rng.integers(1, 256, size=(3, 28, 28), dtype=np.uint8)
    path = tmp_path / "mnistlike.parquet"
    image_dataset([PIL.Image.fromarray(d, "L") for d in digits], extra=False).to_parquet(str(path))
    ds = in_memory(
        load_image_dataset(DataConfig(str(path), image_size=32, num_channels=1, resize="pad", cache_dir=cache))
    )
    assert ds.images.shape == (3, 1, 32, 32)
    assert torch.equal(ds.images[:, 0, 2:30, 2:30], torch.from_numpy(digits))
    border = ds.images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.max()) == 0
    assert float(ds[0][0, 0, 0]) == -1.0 and float(ds[0][0, 2, 2]) == pytest.approx(px(int(digits[0, 0, 0])))
    with pytest.raises(ValueError, match=r"resize='pad' needs images no larger than image_size=32, got 33x20"):
        preprocess(PIL.Image.new("L", (33, 20)), DataConfig("unused", image_size=32, num_channels=1, resize="pad"))


def test_crop_box_is_applied_first():
    array = np.zeros((16, 20, 3), np.uint8)  # H=16, W=20
    array[2:10, 4:12] = np.arange(64, dtype=np.uint8).reshape(8, 8, 1) + 100
    config = DataConfig("unused", image_size=8, crop_box=(4, 2, 12, 10))
    out = preprocess(PIL.Image.fromarray(array), config)
    assert out.shape == (3, 8, 8)
    assert np.array_equal(out[0], array[2:10, 4:12, 0])
    with pytest.raises(ValueError, match="crop_box"):
        preprocess(PIL.Image.fromarray(array), DataConfig("unused", image_size=8, crop_box=(0, 0, 21, 8)))


def test_resize_and_center_crop_policies():
    assert preprocess(rgb(16, 16, (30, 30, 30)), DataConfig("unused", image_size=8)).shape == (3, 8, 8)
    uniform = preprocess(rgb(16, 16, (30, 60, 90)), DataConfig("unused", image_size=8))
    assert (uniform[:, 3, 3] == [30, 60, 90]).all() and (uniform == uniform[:, :1, :1]).all()
    wide = np.zeros((8, 16), np.uint8)  # W=16, H=8: columns 0..15 get distinct values
    wide[:] = np.arange(16, dtype=np.uint8) * 10
    out = preprocess(
        PIL.Image.fromarray(wide), DataConfig("unused", image_size=8, num_channels=1, resize="center_crop")
    )
    assert np.array_equal(out[0], wide[:, 4:12])
    squashed = preprocess(PIL.Image.fromarray(wide), DataConfig("unused", image_size=8, num_channels=1))
    assert squashed.shape == (1, 8, 8) and squashed[0, 0, 0] < 30 and squashed[0, 0, -1] > 120


def test_random_flip_probability_and_determinism():
    images = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    images[..., 2:] = 255  # right half white
    ds = InMemoryImageDataset(images, random_flip=True)
    torch.manual_seed(0)
    draws = [ds[0] for _ in range(2000)]
    flipped = [bool(d[0, 0, 0] == 1.0) for d in draws]
    upright = InMemoryImageDataset(images)[0]
    for draw, was_flipped in zip(draws, flipped):
        assert torch.equal(draw, upright.flip(-1) if was_flipped else upright)
    assert 0.45 < sum(flipped) / len(flipped) < 0.55
    torch.manual_seed(0)
    assert [bool(ds[0][0, 0, 0] == 1.0) for _ in range(50)] == flipped[:50]
    no_flip = InMemoryImageDataset(images)
    assert all(float(no_flip[0][0, 0, 0]) == -1.0 for _ in range(50))


def test_lazy_fallback_matches_in_memory(tmp_path, cache):
    root = write_imagefolder(tmp_path / "imgs", [3, 77, 140, 250, 128], size=(12, 10))
    kwargs = dict(image_size=8, num_channels=1, resize="center_crop", random_flip=True, cache_dir=cache)
    eager = in_memory(load_image_dataset(DataConfig(str(root), **kwargs)))
    lazy = load_image_dataset(DataConfig(str(root), max_in_memory_bytes=0, **kwargs))
    assert isinstance(lazy, LazyImageDataset) and isinstance(lazy.dataset, datasets.Dataset)
    assert len(lazy) == len(eager) == 5
    assert (lazy.num_channels, lazy.image_size) == (eager.num_channels, eager.image_size) == (1, 8)
    torch.manual_seed(3)
    eager_items = [eager[i] for i in range(5)]
    torch.manual_seed(3)
    lazy_items = [lazy[i] for i in range(5)]
    for a, b in zip(eager_items, lazy_items):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    batch = next(iter(torch.utils.data.DataLoader(lazy, batch_size=4)))
    assert batch.shape == (4, 1, 8, 8) and batch.dtype == torch.float32
    assert "LazyImageDataset: 5 images, 1x8x8" in describe(lazy)
    assert describe(eager).startswith("InMemoryImageDataset: 5 images, 1x8x8 uint8")


def test_memory_budget_threshold(parquet_file, cache):
    exact = 5 * 3 * 8 * 8
    kwargs = dict(image_size=8, cache_dir=cache)
    assert isinstance(
        load_image_dataset(DataConfig(str(parquet_file), max_in_memory_bytes=exact, **kwargs)), InMemoryImageDataset
    )
    assert isinstance(
        load_image_dataset(DataConfig(str(parquet_file), max_in_memory_bytes=exact - 1, **kwargs)), LazyImageDataset
    )


# ----------------------------------------------------------------------------------------------------------------
# Columns and errors
# ----------------------------------------------------------------------------------------------------------------


def test_image_column_by_type_and_errors(parquet_file, cache):
    assert find_image_column(image_dataset([rgb(2, 2, (0, 0, 0))])) == "img"
    text = datasets.Dataset.from_dict({"caption": ["a"], "label": [1]})
    with pytest.raises(ValueError, match=r"no image column.*'caption' \(Value\('string'\)\).*'label'"):
        find_image_column(text)
    with pytest.raises(
        ValueError, match=r"'pixels' not found in '.*train-00000.parquet'.*columns: 'img' \(Image.*'label' \(Value"
    ):
        load_image_dataset(DataConfig(str(parquet_file), image_column="pixels", cache_dir=cache))
    with pytest.raises(ValueError, match=r"'label' is Value\('int64'\) in .*expected a datasets.Image.*'img' \(Image"):
        load_image_dataset(DataConfig(str(parquet_file), image_column="label", cache_dir=cache))
    ds = load_image_dataset(DataConfig(str(parquet_file), image_column="img", image_size=8, cache_dir=cache))
    assert len(ds) == 5


def test_config_validation():
    for kwargs, match in (
        (dict(num_channels=2), "num_channels"),
        (dict(resize="stretch"), "resize"),
        (dict(image_size=0), "image_size"),
        (dict(crop_box=(10, 0, 5, 8)), "crop_box"),
        (dict(crop_box=(0, 0, 8)), "crop_box"),
        (dict(max_images=0), "max_images"),
        (dict(max_in_memory_bytes=-1), "max_in_memory_bytes"),
    ):
        with pytest.raises(ValueError, match=match):
            DataConfig("sklearn:digits", **kwargs)


def test_check_dataset_size():
    ds = InMemoryImageDataset(torch.zeros(5, 1, 2, 2, dtype=torch.uint8))
    check_dataset_size(ds, 5)
    with pytest.raises(ValueError, match="dataset has 5 images, fewer than one batch of 6"):
        check_dataset_size(ds, 6)
    with pytest.raises(ValueError, match="uint8"):
        InMemoryImageDataset(torch.zeros(5, 1, 2, 2))


# ----------------------------------------------------------------------------------------------------------------
# Array sources: scikit-learn digits, MNIST IDX
# ----------------------------------------------------------------------------------------------------------------


def test_sklearn_digits():
    from sklearn.datasets import load_digits

    raw = load_digits().images
    train, test, full = (load_digits_images(s) for s in ("train", "test", "all"))
    assert full.shape == (1797, 8, 8) and full.dtype == np.uint8 and full.max() == 255 and full.min() == 0
    assert np.array_equal(full, np.rint(raw * 255 / 16).astype(np.uint8))
    assert len(train) == 1617 and len(test) == 180
    flat = {r.tobytes() for r in full}
    assert {r.tobytes() for r in train} | {r.tobytes() for r in test} <= flat
    assert np.array_equal(load_digits_images("test"), test)  # deterministic
    ds = in_memory(load_image_dataset(DataConfig("sklearn:digits", image_size=8, num_channels=1)))
    assert torch.equal(ds.images[:, 0], torch.from_numpy(train))
    big = load_image_dataset(DataConfig("sklearn:digits", split="test", image_size=16, num_channels=3, max_images=7))
    assert len(big) == 7 and big[0].shape == (3, 16, 16)
    lazy = load_image_dataset(
        DataConfig("sklearn:digits", split="test", image_size=16, num_channels=3, max_images=7, max_in_memory_bytes=0)
    )
    assert isinstance(lazy, LazyImageDataset)
    assert all(torch.equal(big[i], lazy[i]) for i in range(7))
    with pytest.raises(ValueError, match="split"):
        load_digits_images("validation")
    with pytest.raises(ValueError, match="'img' not found"):
        load_image_dataset(DataConfig("sklearn:digits", image_column="img"))


def write_idx(path: Path, array: np.ndarray, magic: int, compress=True):
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    data = header + array.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_idx_reader_and_mnist_partitions(tmp_path):
    rng = np.random.default_rng(1)
    t10k = rng.integers(0, 256, size=(10000, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", t10k, 2051)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", rng.integers(0, 10, size=10000, dtype=np.uint8), 2049, False)
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051), t10k)
    assert read_idx(tmp_path / "t10k-labels-idx1-ubyte", 2049).shape == (10000,)
    assert np.array_equal(load_mnist_images(tmp_path, "train"), t10k[:9000])
    assert np.array_equal(load_mnist_images(tmp_path, "test"), t10k[9000:])
    ds = load_image_dataset(DataConfig(f"mnist:{tmp_path}", split="test", image_size=32, num_channels=1, resize="pad"))
    assert len(ds) == 1000 and torch.equal(in_memory(ds).images[:, 0, 2:30, 2:30], torch.from_numpy(t10k[9000:]))
    with pytest.raises(ValueError, match="magic number 2051, expected 2049"):
        read_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2049)
    truncated = tmp_path / "bad" / "t10k-images-idx3-ubyte"
    truncated.parent.mkdir()
    truncated.write_bytes((2051).to_bytes(4, "big") + b"".join(s.to_bytes(4, "big") for s in (2, 28, 28)) + b"\0" * 100)
    with pytest.raises(ValueError, match="header says shape"):
        load_mnist_images(truncated.parent)
    with pytest.raises(FileNotFoundError, match="no MNIST IDX images"):
        load_image_dataset(DataConfig(f"mnist:{tmp_path / 'empty'}"))
    full = tmp_path / "full"
    full.mkdir()
    train = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    write_idx(full / "train-images-idx3-ubyte.gz", train, 2051)
    write_idx(full / "t10k-images-idx3-ubyte.gz", t10k[:5], 2051)
    assert np.array_equal(load_mnist_images(full, "train"), train)
    assert np.array_equal(load_mnist_images(full, "test"), t10k[:5])
    assert len(load_mnist_images(full, "all")) == 17


def test_mnist_without_a_directory_reads_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_DUALMCMC_MNIST_DIR", raising=False)
    unset = (
        r"no MNIST IDX images in \$HF_DUALMCMC_MNIST_DIR \(not set\).*source='mnist:<dir>' or set HF_DUALMCMC_MNIST_DIR"
    )
    with pytest.raises(FileNotFoundError, match=unset):
        load_source("mnist")
    monkeypatch.setenv("HF_DUALMCMC_MNIST_DIR", "")
    with pytest.raises(FileNotFoundError, match=unset):
        load_mnist_images()
    monkeypatch.setenv("HF_DUALMCMC_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"no MNIST IDX images in {tmp_path} .*set HF_DUALMCMC_MNIST_DIR"):
        load_mnist_images()
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, 2051)
    assert np.array_equal(load_source("mnist")["image"], images)


@pytest.fixture
def mnist_dir():
    directory = os.environ.get("HF_DUALMCMC_MNIST_DIR")
    if not directory or not (Path(directory) / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST is absent: set HF_DUALMCMC_MNIST_DIR to the folder of its IDX files (now {directory!r})")
    return Path(directory)


def test_mnist_from_the_environment_variable(mnist_dir):
    raw = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", 2051)
    assert raw.shape == (10000, 28, 28) and raw.dtype == np.uint8
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", 2049)
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    train = in_memory(load_image_dataset(DataConfig("mnist", image_size=32, num_channels=1, resize="pad")))
    assert train.images.shape == (9000, 1, 32, 32)
    assert torch.equal(train.images[:, 0, 2:30, 2:30], torch.from_numpy(raw[:9000]))
    test = load_image_dataset(DataConfig(f"mnist:{mnist_dir}", split="test", image_size=28, num_channels=1))
    assert len(test) == 1000
    torch.testing.assert_close(test[0][0], torch.from_numpy(raw[9000]).float() / 127.5 - 1, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Bad inputs (issue #11): each a ValueError / FileNotFoundError naming the file, source or column
# ----------------------------------------------------------------------------------------------------------------


def test_corrupt_and_truncated_image_files_are_named(tmp_path, cache):
    root = write_imagefolder(tmp_path / "corrupt", [10, 20, 30])
    (root / "fake.png").write_text("this is not a PNG")
    for lazy in (False, True):
        config = DataConfig(str(root), image_size=8, cache_dir=cache, max_in_memory_bytes=0 if lazy else 2**30)
        with pytest.raises(ValueError, match=r"cannot use image file .*corrupt/fake\.png \(source '.*corrupt'"):
            ds = load_image_dataset(config)
            [ds[i] for i in range(len(ds))]
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    truncated = write_imagefolder(tmp_path / "truncated", [10, 20])
    PIL.Image.fromarray(noise).save(truncated / "big.png")
    data = (truncated / "big.png").read_bytes()
    (truncated / "big.png").write_bytes(data[: len(data) * 2 // 3])  # header intact, pixel data cut
    with pytest.raises(ValueError, match=r"cannot use image file .*truncated/big\.png.*truncated"):
        load_image_dataset(DataConfig(str(truncated), image_size=8, cache_dir=cache))


def test_imagefolder_ignores_files_without_an_image_extension(tmp_path, cache):
    root = write_imagefolder(tmp_path / "mixed", [10, 20, 30])
    (root / "notes.txt").write_text("not an image, and not picked up by imagefolder")
    assert len(load_image_dataset(DataConfig(str(root), image_size=8, cache_dir=cache))) == 3


def test_missing_directory_and_parquet_without_image_column(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match=r"data source '.*missing_dir' does not exist"):
        load_image_dataset(DataConfig(str(tmp_path / "missing_dir"), cache_dir=cache))
    with pytest.raises(FileNotFoundError, match="no MNIST IDX images in"):
        load_image_dataset(DataConfig(f"mnist:{tmp_path / 'missing_dir'}"))
    path = tmp_path / "captions.parquet"
    datasets.Dataset.from_dict({"caption": ["a", "b"], "label": [0, 1]}).to_parquet(str(path))
    with pytest.raises(ValueError, match=r"no image column in '.*captions\.parquet'.*columns: 'caption'"):
        load_image_dataset(DataConfig(str(path), cache_dir=cache))


def test_pad_with_an_image_larger_than_image_size_names_the_file(tmp_path, cache):
    root = write_imagefolder(tmp_path / "large", [10, 20], size=(40, 30))
    with pytest.raises(
        ValueError,
        match=r"image file .*large/img_0\.png.*resize='pad' needs images no larger than "
        r"image_size=32, got 40x30",
    ):
        load_image_dataset(DataConfig(str(root), image_size=32, resize="pad", cache_dir=cache))


def test_empty_split_and_wrong_split_name(tmp_path, parquet_file, cache):
    empty = tmp_path / "empty.parquet"
    image_dataset([], extra=False).to_parquet(str(empty))
    with pytest.raises(ValueError, match=r"'.*empty\.parquet' split 'train' has no images \(expected at least one\)"):
        load_image_dataset(DataConfig(str(empty), cache_dir=cache))
    np.savez(tmp_path / "none.npz", images=np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"'.*none\.npz' split 'train' has no images"):
        load_image_dataset(DataConfig(str(tmp_path / "none.npz")))
    with pytest.raises(FileNotFoundError, match="doesn't contain any data files"):
        (tmp_path / "empty_dir").mkdir()
        load_image_dataset(DataConfig(str(tmp_path / "empty_dir"), cache_dir=cache))
    with pytest.raises(ValueError, match=r"'.*pq' split 'validation' fails: .*Unknown split.*'train'"):
        load_image_dataset(DataConfig(str(parquet_file.parent), split="validation", cache_dir=cache))
    datasets.DatasetDict({"train": image_dataset([rgb(2, 2, (0, 0, 0))])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"split 'test' not in '.*dd'; available splits: \['train'\]"):
        load_image_dataset(DataConfig(str(tmp_path / "dd"), split="test"))
    for source in ("sklearn:digits", "mnist"):
        with pytest.raises(ValueError, match=r"split must be one of \('train', 'test', 'all'\), got 'validation'"):
            load_image_dataset(DataConfig(source, split="validation"))
    with pytest.raises(ValueError, match="only 'sklearn:digits'"):
        load_image_dataset(DataConfig("sklearn:iris"))


# ----------------------------------------------------------------------------------------------------------------
# Array sources through the same transforms; the lazy dataset pickles (DataLoader workers)
# ----------------------------------------------------------------------------------------------------------------


def test_npz_arrays_match_the_pil_path(tmp_path):
    rng = np.random.default_rng(4)
    arrays = rng.integers(0, 256, size=(6, 12, 10, 3), dtype=np.uint8)
    arrays[0] = 255  # white stays 255 in L (Pillow's rounded luma, not a truncated float one)
    np.savez(tmp_path / "images.npz", images=arrays)
    assert load_source(str(tmp_path / "images.npz")).num_rows == 6
    for kwargs in (dict(num_channels=1, resize="pad", image_size=12), dict(num_channels=3, crop_box=(1, 2, 9, 10))):
        config = DataConfig(str(tmp_path / "images.npz"), image_size=kwargs.pop("image_size", 8), **kwargs)
        expected = np.stack([preprocess(PIL.Image.fromarray(a), config) for a in arrays])
        eager = in_memory(load_image_dataset(config))
        assert np.array_equal(eager.images.numpy(), expected), kwargs
        lazy = load_image_dataset(dataclasses.replace(config, max_in_memory_bytes=0))
        assert all(torch.equal(lazy[i], eager[i]) for i in range(6))
    gray = in_memory(
        load_image_dataset(DataConfig(str(tmp_path / "images.npz"), image_size=12, num_channels=1, resize="pad"))
    )
    assert int(gray.images[0, 0, 2:10, 1:11].min()) == 255
    np.savez(tmp_path / "stats.npz", mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(ValueError, match=r"stats\.npz: expected uint8 images .* got FID statistics"):
        load_image_dataset(DataConfig(str(tmp_path / "stats.npz")))
    np.savez(tmp_path / "floats.npz", images=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"floats\.npz: expected uint8 images .* got float64 \(2, 4, 4\)"):
        load_image_dataset(DataConfig(str(tmp_path / "floats.npz")))


def test_lazy_dataset_pickles_for_workers(tmp_path, cache):
    root = write_imagefolder(tmp_path / "imgs", [5, 50, 150])
    lazy = load_image_dataset(DataConfig(str(root), image_size=4, max_in_memory_bytes=0, cache_dir=cache))
    clone = pickle.loads(pickle.dumps(lazy))
    assert all(torch.equal(clone[i], lazy[i]) for i in range(3))


# ----------------------------------------------------------------------------------------------------------------
# Image modes (issue #22): high-depth and float grayscale by their real range, alpha on white, palette, CMYK, "1"
# ----------------------------------------------------------------------------------------------------------------


def test_16_bit_png_decodes_by_its_range(tmp_path, cache):
    values = np.array([[0, 257 * 64], [257 * 128, 65535]], np.uint16)  # 8-bit 0, 64, 128, 255
    (tmp_path / "png16").mkdir()
    PIL.Image.fromarray(values).save(tmp_path / "png16" / "a.png")
    assert PIL.Image.open(tmp_path / "png16" / "a.png").mode in ("I;16", "I")
    ds = in_memory(
        load_image_dataset(
            DataConfig(str(tmp_path / "png16"), image_size=2, num_channels=1, resize="pad", cache_dir=cache)
        )
    )
    assert ds.images[0, 0].tolist() == [[0, 64], [128, 255]]
    big_endian = PIL.Image.fromarray(values.astype(">u2"), "I;16B")
    assert preprocess(big_endian, DataConfig("unused", image_size=2, num_channels=1, resize="pad"))[0].tolist() == [
        [0, 64],
        [128, 255],
    ]


def test_float_and_32_bit_images():
    config = DataConfig("unused", image_size=2, num_channels=1, resize="pad")
    floats = PIL.Image.fromarray(np.array([[0.0, 0.25], [0.5, 1.0]], np.float32), "F")  # [0, 1]
    assert preprocess(floats, config)[0].tolist() == [[0, 64], [128, 255]]
    ints = PIL.Image.fromarray(np.array([[0, 65535], [257, 0]], np.int32), "I")  # 16-bit range
    assert preprocess(ints, config)[0].tolist() == [[0, 255], [1, 0]]
    for bad, message in (
        (200.0, r"'F' pixel values must be in \[0, 1\]"),
        (np.nan, "non-finite"),
        (-np.inf, "non-finite"),
    ):
        with pytest.raises(ValueError, match=message):
            preprocess(PIL.Image.fromarray(np.full((2, 2), bad, np.float32), "F"), config)


def test_alpha_palette_cmyk_and_bilevel_modes():
    rgb_config, gray = (
        DataConfig("unused", image_size=2, resize="pad"),
        DataConfig("unused", image_size=2, num_channels=1, resize="pad"),
    )
    transparent = PIL.Image.new("RGBA", (2, 2), (0, 0, 0, 0))  # composited on white
    assert (preprocess(transparent, rgb_config) == 255).all() and (preprocess(transparent, gray) == 255).all()
    half = PIL.Image.new("RGBA", (2, 2), (100, 50, 0, 128))
    assert preprocess(half, rgb_config)[:, 0, 0].tolist() == [177, 152, 127]
    assert (preprocess(PIL.Image.new("LA", (2, 2), (0, 0)), gray) == 255).all()
    assert (preprocess(PIL.Image.new("LA", (2, 2), (30, 255)), gray) == 30).all()
    palette = PIL.Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    assert preprocess(palette, rgb_config)[:, 0, 0].tolist() == [255, 0, 0]
    palette.info["transparency"] = 1  # the palette's transparent index: white
    assert preprocess(palette, rgb_config)[:, 0, 0].tolist() == [255, 255, 255]
    assert preprocess(palette.convert("PA"), rgb_config)[:, 0, 0].tolist() == [255, 255, 255]
    assert preprocess(PIL.Image.new("CMYK", (2, 2), (0, 255, 255, 0)), rgb_config)[:, 0, 0].tolist() == [255, 0, 0]
    assert (preprocess(PIL.Image.new("1", (2, 2), 1), gray) == 255).all()
    with pytest.raises(ValueError, match="LAB images are not supported"):
        preprocess(PIL.Image.new("LAB", (2, 2)), rgb_config)


def test_rgba_arrays_match_the_pil_path(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "rgba.npz", images=rgba)
    ds = in_memory(load_image_dataset(DataConfig(str(tmp_path / "rgba.npz"), image_size=4)))
    pil = np.stack([preprocess(PIL.Image.fromarray(a, "RGBA"), DataConfig("unused", image_size=4)) for a in rgba])
    assert np.abs(ds.images.numpy().astype(int) - pil).max() <= 1


def test_npz_with_non_finite_values_names_the_image(tmp_path):
    images = np.zeros((3, 4, 4), np.float32)
    images[2, 1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", images=images)
    with pytest.raises(ValueError, match=r"nan\.npz: image 2 under 'images' has non-finite values"):
        load_image_dataset(DataConfig(str(tmp_path / "nan.npz"), image_size=4))

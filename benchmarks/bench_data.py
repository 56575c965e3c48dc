#!/usr/bin/env python
"""Images/s of the data loader: decode-once into memory, then per-item access, in memory and lazily.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_data.py                 # this checkout's data.py
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_data.py --rev 7f5d225   # data.py of another commit
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_data.py --module /tmp/old_data.py

Sources: ``sklearn:digits`` (all 1,797, 8x8 gray), ``mnist`` (the 9,000 "train" images padded to 32 px; skipped
without ``$HF_DUALMCMC_MNIST_DIR`` or ``../shared/data/mnist``), and a synthetic imagefolder and parquet file of
``--num_images`` 32x32 RGB PNGs written to a temporary directory. Columns (images/s): ``decode`` =
``load_image_dataset`` (datasets cache warm: each source is loaded once before timing) decoding everything into a
uint8 tensor; ``item`` = ``ds[i]`` over the in-memory dataset;
``loader`` = one ``DataLoader(batch_size=64)`` epoch over it; ``lazy item`` / ``lazy loader`` = the same with
``max_in_memory_bytes=0`` (per-item decoding), over at most ``--lazy_items`` images. The module under test only needs
``DataConfig`` and ``load_image_dataset`` (the API of both the old and the new data.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_module(args: argparse.Namespace):
    """``hf_dualmcmc.data``, or the data.py given by ``--module`` / ``--rev``, imported inside the package."""
    path = args.module
    if args.rev:
        source = subprocess.run(
            ["git", "show", f"{args.rev}:src/hf_dualmcmc/data.py"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout
        path = Path(tempfile.mkdtemp()) / "data_at_rev.py"
        path.write_text(source)
    if path is None:
        import hf_dualmcmc.data

        return hf_dualmcmc.data
    import hf_dualmcmc  # noqa: F401  (the parent package of the module under test, for its relative imports)

    spec = importlib.util.spec_from_file_location("hf_dualmcmc._bench_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_synthetic(root: Path, num_images: int, size: int) -> tuple[str, str]:
    """``num_images`` smooth random RGB PNGs in ``root/folder`` and the same images in ``root/images.parquet``."""
    import datasets
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(0)
    folder = root / "folder"
    folder.mkdir(parents=True)
    images = []
    for i in range(num_images):
        coarse = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        image = PIL.Image.fromarray(coarse).resize((size, size), PIL.Image.BILINEAR)
        image.save(folder / f"{i:06d}.png")
        images.append(image)
    table = datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))
    table.to_parquet(str(root / "images.parquet"))
    return str(folder), str(root / "images.parquet")


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "inf"


def bench(data, name: str, kwargs: dict, lazy_items: int) -> str:
    import torch

    data.load_image_dataset(data.DataConfig(**kwargs))  # warm the datasets cache (imagefolder / parquet)
    start = time.perf_counter()
    ds = data.load_image_dataset(data.DataConfig(**kwargs))
    decode = time.perf_counter() - start
    columns = [rate(len(ds), decode)]
    for dataset in (ds, data.load_image_dataset(data.DataConfig(**kwargs, max_in_memory_bytes=0))):
        subset = dataset if dataset is ds else torch.utils.data.Subset(dataset, range(min(lazy_items, len(dataset))))
        start = time.perf_counter()
        for i in range(len(subset)):
            subset[i]
        item = time.perf_counter() - start
        start = time.perf_counter()
        for _ in torch.utils.data.DataLoader(subset, batch_size=64):
            pass
        columns += [rate(len(subset), item), rate(len(subset), time.perf_counter() - start)]
    return f"| {name} | {len(ds)} | " + " | ".join(columns) + " |"


def main(argv=None) -> int:
    from hf_dualmcmc.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", type=Path, default=None, help="a data.py file to benchmark instead of hf_dualmcmc.data")
    p.add_argument("--rev", default=None, help="benchmark src/hf_dualmcmc/data.py of this git revision")
    p.add_argument("--num_images", type=int, default=3000, help="synthetic PNGs (default %(default)s)")
    p.add_argument(
        "--lazy_items", type=int, default=1000, help="items read from the lazy datasets (default %(default)s)"
    )
    args = p.parse_args(argv)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = load_module(args)
    print(f"module: {data.__file__}; torch threads: {__import__('torch').get_num_threads()}")
    print("| source | images | decode img/s | item img/s | loader img/s | lazy item img/s | lazy loader img/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        bench(
            data,
            "sklearn:digits",
            dict(source="sklearn:digits", split="all", image_size=8, num_channels=1),
            args.lazy_items,
        ),
        flush=True,
    )
    mnist = Path(os.environ.get("HF_DUALMCMC_MNIST_DIR") or REPO.parent / "shared" / "data" / "mnist")
    if (mnist / "t10k-images-idx3-ubyte.gz").is_file():
        print(
            bench(
                data,
                "mnist (pad 28 -> 32)",
                dict(source=f"mnist:{mnist}", image_size=32, num_channels=1, resize="pad"),
                args.lazy_items,
            ),
            flush=True,
        )
    else:
        print(f"| mnist | skipped: no {mnist} | | | | | |")
    with tempfile.TemporaryDirectory() as tmp:
        folder, parquet = write_synthetic(Path(tmp), args.num_images, 32)
        for name, source in (("imagefolder 32x32 PNG", folder), ("parquet 32x32 PNG", parquet)):
            kwargs = dict(source=source, image_size=32, num_channels=3, cache_dir=str(Path(tmp) / "cache"))
            print(bench(data, name, kwargs, args.lazy_items), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

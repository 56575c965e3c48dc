"""Image sources and sampling helpers shared by the evaluation suite.

Every function here speaks one currency: ``uint8`` arrays ``[N, H, W, C]`` (``C`` = 1 or 3), the format FID/IS
libraries quantise to and image files store. :func:`load_images` reads any source of the training data's grammar
(:mod:`hf_dualmcmc.data`: ``"sklearn:digits"`` / ``"digits"``, ``"mnist"``, an images ``.npz``, a directory, a
parquet file or glob, a ``save_to_disk`` directory, a Hub name) through the same loader and ``transforms.v2``
preprocessing as training, so the held-out ``"test"`` partitions of digits and MNIST are the ones training never saw.
"""

from __future__ import annotations

import os

import datasets
import numpy as np
import PIL.Image
import torch

from ..data import DataConfig, decode_images, find_image_column, load_source

BUILTIN_SOURCES = ("mnist", "digits")  # the domain-classifier datasets (hf_dualmcmc.evaluation.domain)
BUILTIN_IMAGE_SIZE = {"mnist": 32, "digits": 8}  # MNIST padded 28 -> 32 px, as configs/mnist.yaml trains
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _load(source, split, image_size, num_channels, max_images, resize):
    source = os.fspath(source)
    dataset = load_source(source, split)
    column = find_image_column(dataset, source=repr(source))
    if max_images:
        dataset = dataset.select(range(min(max_images, len(dataset))))
    if len(dataset) == 0:
        raise ValueError(f"{source!r} split {split!r} has no images (expected at least one)")
    try:
        first = dataset[0][column]
    except (OSError, SyntaxError) as err:  # an unreadable first image file: name it
        cell = dataset.cast_column(column, datasets.Image(decode=False))[0][column]
        where = f"image file {cell['path']}" if cell.get("path") else f"the first image of {source!r}"
        raise ValueError(f"cannot read {where}: {err}") from err
    if isinstance(first, PIL.Image.Image):
        (width, height), gray = first.size, first.mode in _GRAY_MODES
    else:
        array = np.asarray(first)
        (height, width), gray = array.shape[:2], array.ndim == 2 or array.shape[-1] == 1
    image_size = image_size or max(width, height)
    resize = resize or ("pad" if max(width, height) <= image_size else "resize")
    config = DataConfig(
        source, split=split, image_size=image_size, num_channels=num_channels or (1 if gray else 3), resize=resize
    )
    return np.ascontiguousarray(decode_images(dataset, column, config).permute(0, 2, 3, 1).numpy()), dataset


def load_images(
    source: str | os.PathLike,
    *,
    image_size: int | None = None,
    num_channels: int | None = None,
    max_images: int | None = None,
    split: str = "test",
    resize: str | None = None,
) -> np.ndarray:
    """The first ``max_images`` images of ``split`` of ``source`` (see the module docstring) as ``uint8 [N, S, S, C]``.

    Preprocessed as for training (:func:`hf_dualmcmc.data.image_transform`) to ``image_size`` (default: the first
    image's larger side) and ``num_channels`` (default: 1 for grayscale images, else 3) with the ``resize`` policy,
    by default ``"pad"`` when the images are no larger than ``image_size`` (MNIST 28 -> 32, as trained), else
    ``"resize"`` (bilinear, antialiased). ``split``: ``"test"``, the held-out partition, by default.
    """
    return _load(source, split, image_size, num_channels, max_images, resize)[0]


def builtin_split(name: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 [N, S, S, 1], int64 labels [N])`` of ``"mnist"`` (padded to 32 px) or ``"digits"`` (8 px) for
    ``split`` ``"train"``/``"test"``/``"all"``: the training data's partitions, so a model trained on ``"train"``
    (the default of ``configs/mnist.yaml`` / ``configs/digits.yaml``) never saw ``"test"``."""
    if name not in BUILTIN_SOURCES:
        raise ValueError(f"unknown built-in source {name!r}; expected one of {BUILTIN_SOURCES}")
    images, dataset = _load(name, split, BUILTIN_IMAGE_SIZE[name], 1, None, "pad")
    if "label" not in dataset.column_names:
        raise ValueError(f"{name!r} has no labels: expected the IDX label files next to the images")
    return images, np.asarray(dataset["label"], dtype=np.int64)


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
                    batch_size=n,
                    num_inference_steps=sampler["num_inference_steps"],
                    step_size=sampler["step_size"],
                    noise_scale=sampler["noise_scale"],
                    bn_stats=sampler["bn_stats"],
                    generator=generator,
                    output_type="pt",
                    return_proposals=True,
                )
                proposals.append(to_uint8(out.proposals))
                revised.append(to_uint8(out.images))
                done += n
                bar.update(n)
    finally:
        pipe.set_progress_bar_config(disable=was_disabled)
    return np.concatenate(proposals), np.concatenate(revised), sampler


__all__ = ["BUILTIN_SOURCES", "as_rgb", "builtin_split", "load_images", "sample_images", "to_uint8"]

"""Image sources and sampling for the evaluation suite, in one currency: ``uint8`` arrays ``[N, H, W, C]`` (``C`` = 1
or 3). :func:`load_images` reads any source of the training data's grammar (:mod:`hf_dualmcmc.data`) through the same
loader and preprocessing as training, so the held-out ``"test"`` partitions are the ones training never saw.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

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
    """The first ``max_images`` images of ``split`` of ``source`` as ``uint8 [N, S, S, C]``, preprocessed as for
    training to ``image_size`` (default: the first image's larger side) and ``num_channels`` (default: 1 for gray
    images, else 3); ``resize``: ``"pad"`` when the images are no larger (MNIST 28 -> 32), else ``"resize"``."""
    return _load(source, split, image_size, num_channels, max_images, resize)[0]


def builtin_split(name: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 [N, S, S, 1], int64 labels [N])`` of ``"mnist"`` (padded to 32 px) or ``"digits"`` (8 px) for the
    training data's partition ``split`` (``"train"``, ``"test"``, ``"all"``)."""
    if name not in BUILTIN_SOURCES:
        raise ValueError(f"unknown built-in source {name!r}; expected one of {BUILTIN_SOURCES}")
    images, dataset = _load(name, split, BUILTIN_IMAGE_SIZE[name], 1, None, "pad")
    if "label" not in dataset.column_names:
        raise ValueError(f"{name!r} has no labels: expected the IDX label files next to the images")
    return images, np.asarray(dataset["label"], dtype=np.int64)


def to_uint8(images) -> np.ndarray:
    """Quantise PIL images, numpy arrays (uint8, or float in ``[0, 1]``; ``[N, H, W(, C)]``) or torch tensors
    ``[N, C, H, W]`` in ``[0, 1]`` to ``uint8 [N, H, W, C]`` (``round(255 * x)``, as image files store them)."""
    if isinstance(images, PIL.Image.Image):
        images = [images]
    if isinstance(images, list) and images and isinstance(images[0], PIL.Image.Image):
        images = np.stack([np.atleast_3d(np.asarray(im)) for im in images])
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ValueError(f"torch images must be [N, C, H, W] in [0, 1], got shape {tuple(images.shape)}")
        images = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    images = np.asarray(images)
    images = images[..., None] if images.ndim == 3 else images
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or not images.size:
        raise ValueError(f"images must be [N, H, W, C] with C in (1, 3), got shape {images.shape}")
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


def pixel_values(images) -> torch.Tensor:
    """Images (anything :func:`to_uint8` accepts) -> model space ``[N, C, H, W]`` in ``[-1, 1]`` (float32, CPU)."""
    return torch.from_numpy(np.ascontiguousarray(to_uint8(images))).permute(0, 3, 1, 2).float() / 127.5 - 1.0


SAMPLER_SETTINGS = ("num_inference_steps", "step_size", "noise_scale", "bn_stats")


def sampler_settings(pipe, **overrides) -> dict:
    """The x-chain sampler settings: the pipeline config's, replaced by the ``overrides`` that are not ``None``."""
    if set(overrides) - set(SAMPLER_SETTINGS):
        raise TypeError(f"unknown sampler settings {sorted(set(overrides) - set(SAMPLER_SETTINGS))}")
    return {k: pipe.config[k] if overrides.get(k) is None else overrides[k] for k in SAMPLER_SETTINGS}


@contextmanager
def quiet(pipe):
    """The pipeline's progress bars off inside the block."""
    previous = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(disable=True)
    try:
        yield pipe
    finally:
        pipe.set_progress_bar_config(**previous)


def sample_images(
    pipe, num_samples: int, *, batch_size: int = 100, seed: int = 0, progress: bool = True, **sampler
) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(proposals, revised, settings)``: ``num_samples`` generator proposals and Langevin-revised samples (``uint8
    [N, H, W, C]``) drawn in batches (they matter with ``bn_stats="batch"``: the authors sample 100 at a time), and the
    resolved settings. ``sampler``: ``num_inference_steps``, ``step_size``, ``noise_scale``, ``bn_stats`` overrides."""
    from tqdm.auto import tqdm

    settings = sampler_settings(pipe, **sampler)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    proposals, revised = [], []
    with quiet(pipe):
        for i in tqdm(range(0, num_samples, batch_size), desc="sampling", unit="batch", disable=not progress):
            n = min(batch_size, num_samples - i)
            out = pipe(batch_size=n, generator=generator, output_type="pt", return_proposals=True, **settings)
            proposals.append(to_uint8(out.proposals))
            revised.append(to_uint8(out.images))
    return np.concatenate(proposals), np.concatenate(revised), {**settings, "batch_size": batch_size, "seed": seed}


__all__ = ["BUILTIN_SOURCES", "as_rgb", "builtin_split", "load_images", "pixel_values", "quiet", "sample_images"]
__all__ += ["sampler_settings", "to_uint8"]

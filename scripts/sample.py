#!/usr/bin/env python
"""Sample a saved DualMCMCPipeline and write a grid: proposals (left) and Langevin-revised samples (right).

    python scripts/sample.py --pipeline outputs/digits/pipeline --out outputs/digits/samples.png --num 64

``--out`` is a new image file (an existing one is replaced only with ``--overwrite``, and only when it is an image),
never inside the pipeline folder. Bad inputs print one line ``error: ...`` and exit 2 before anything is written.
"""

import argparse
import io
import math
import sys
from pathlib import Path

import torch
from PIL import Image

from hf_dualmcmc import DualMCMCPipeline
from hf_dualmcmc.atomic import atomic_write
from hf_dualmcmc.cli import ArgumentParser
from hf_dualmcmc.hub import check_apart
from hf_dualmcmc.trainer import side_by_side


def grid(images, rows: int, cols: int, scale: int = 1, gap: int = 2) -> Image.Image:
    """Images in a rows x cols grid with white gaps (nearest-neighbour upscaled by ``scale``)."""
    w, h = images[0].width * scale, images[0].height * scale
    canvas = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), "white")
    for i, im in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        canvas.paste(im.convert("RGB").resize((w, h), Image.NEAREST), (c * (w + gap), r * (h + gap)))
    return canvas


def check_out(out: Path, pipeline: str, overwrite: bool) -> str:
    """The image format to write ``out`` in; refuses what would replace a file this script did not write."""
    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt not in Image.SAVE:
        raise ValueError(
            f"--out {str(out)!r}: expected an image file name (.png, .jpg, ...), got suffix {out.suffix!r}"
        )
    if Path(pipeline).exists():
        check_apart(out, [pipeline], "--out")
    if not out.parent.is_dir():
        raise ValueError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise ValueError(f"--out {str(out)!r} exists and is not a regular file")
    if out.exists():
        if not overwrite:
            raise ValueError(f"--out {str(out)!r} exists; pass --overwrite to replace it")
        try:
            with Image.open(out) as image:
                image.verify()
        except Exception:
            raise ValueError(
                f"--out {str(out)!r} exists and is not an image; --overwrite replaces only an image, "
                "this file was not changed"
            ) from None
    return fmt


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", required=True, help="a save_pretrained directory or a Hub id")
    p.add_argument("--out", required=True, help="image path (PNG; another format by its suffix)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out image")
    p.add_argument("--num", type=int, default=64, help="number of samples (a square grid is best)")
    p.add_argument("--steps", type=int, help="x-chain steps (default: the pipeline config)")
    p.add_argument("--step_size", type=float)
    p.add_argument("--noise_scale", type=float)
    p.add_argument("--bn_stats", choices=["batch", "running"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--scale", type=int, default=0, help="upscale factor per image (0: auto, to >= 32 px)")
    args = p.parse_args(argv)
    for name, low in (("num", 1), ("steps", 0), ("scale", 0)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            p.error(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available")
    try:
        return sample(args)
    except (OSError, ValueError) as err:  # a missing or damaged pipeline, a bad setting, an unwritable --out
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2


def sample(args) -> int:
    fmt = check_out(Path(args.out), args.pipeline, args.overwrite)
    pipe = DualMCMCPipeline.from_pretrained(args.pipeline).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    energies = pipe.energy_model is not None  # an inference-only baseline has none (and samples with 0 steps)
    out = pipe(
        batch_size=args.num,
        num_inference_steps=args.steps,
        step_size=args.step_size,
        noise_scale=args.noise_scale,
        bn_stats=args.bn_stats,
        generator=torch.Generator().manual_seed(args.seed),
        return_proposals=True,
        return_energies=energies,
    )
    rows = max(1, int(math.sqrt(args.num)))
    cols = math.ceil(args.num / rows)
    size = out.images[0].width
    scale = args.scale or max(1, 32 // size)  # tiny images (8x8 digits) are upscaled, pixels kept sharp
    left, right = grid(out.proposals, rows, cols, scale), grid(out.images, rows, cols, scale)
    image = io.BytesIO()
    side_by_side(left, right, gap=12).save(image, format=fmt)
    atomic_write(args.out, image.getvalue())
    e = out.energies.mean(1) if energies else None
    print(
        f"wrote {args.out}: {args.num} samples, proposals (left) vs revised (right); "
        + (
            f"mean energy {e[0].item():.4g} -> {e[-1].item():.4g} over {len(e) - 1} steps"
            if energies
            else "no energy model"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

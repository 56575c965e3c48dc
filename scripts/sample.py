#!/usr/bin/env python
"""Sample a saved DualMCMCPipeline and write a grid: proposals (left) and Langevin-revised samples (right).

    python scripts/sample.py --pipeline outputs/digits/pipeline --out outputs/digits/samples.png --num 64
"""

import argparse
import math

import torch
from PIL import Image

from hf_dualmcmc import DualMCMCPipeline
from hf_dualmcmc.trainer import side_by_side


def grid(images, rows: int, cols: int, scale: int = 1, gap: int = 2) -> Image.Image:
    """Images in a rows x cols grid with white gaps (nearest-neighbour upscaled by ``scale``)."""
    w, h = images[0].width * scale, images[0].height * scale
    canvas = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), "white")
    for i, im in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        canvas.paste(im.convert("RGB").resize((w, h), Image.NEAREST), (c * (w + gap), r * (h + gap)))
    return canvas


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", required=True, help="a save_pretrained directory or a Hub id")
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--num", type=int, default=64, help="number of samples (a square grid is best)")
    p.add_argument("--steps", type=int, help="x-chain steps (default: the pipeline config)")
    p.add_argument("--step_size", type=float)
    p.add_argument("--noise_scale", type=float)
    p.add_argument("--bn_stats", choices=["batch", "running"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--scale", type=int, default=0, help="upscale factor per image (0: auto, to >= 32 px)")
    args = p.parse_args(argv)
    if args.num < 1:
        p.error("--num must be >= 1")

    pipe = DualMCMCPipeline.from_pretrained(args.pipeline).to(args.device)
    out = pipe(batch_size=args.num, num_inference_steps=args.steps, step_size=args.step_size,
               noise_scale=args.noise_scale, bn_stats=args.bn_stats, generator=torch.Generator().manual_seed(args.seed),
               return_proposals=True, return_energies=True)
    rows = max(1, int(math.sqrt(args.num)))
    cols = math.ceil(args.num / rows)
    size = out.images[0].width
    scale = args.scale or max(1, 32 // size)  # tiny images (8x8 digits) are upscaled, pixels kept sharp
    left, right = grid(out.proposals, rows, cols, scale), grid(out.images, rows, cols, scale)
    side_by_side(left, right, gap=12).save(args.out)
    e = out.energies.mean(1)
    print(f"wrote {args.out}: {args.num} samples, proposals (left) vs revised (right); "
          f"mean energy {e[0].item():.4g} -> {e[-1].item():.4g} over {len(e) - 1} steps")


if __name__ == "__main__":
    main()

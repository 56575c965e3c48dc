#!/usr/bin/env python
"""Convert an official Dual-MCMC checkpoint (github jcui1224/dual-MCMC) into a DualMCMCPipeline directory.

    python scripts/convert_official_checkpoint.py ckpt.pth out/dualmcmc-cifar10 [--dataset cifar10]

The logic lives in :mod:`hf_dualmcmc.convert`; this is its command-line interface (flags with underscores,
``--no_model_card``; the hyphenated spellings work too).
"""

from __future__ import annotations

import sys

from hf_dualmcmc.cli import ArgumentParser
from hf_dualmcmc.configuration_dualmcmc import OFFICIAL_TRAINING, configs_for_image_size
from hf_dualmcmc.convert import convert_official_checkpoint


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint",
        help="the official .pth checkpoint (keys epoch, netG, netE, netI, optG, optE, "
        "optI); read with torch.load(weights_only=True), so a file that would run code is refused",
    )
    parser.add_argument("output_dir", help="where to write the pipeline (save_pretrained layout + README.md)")
    parser.add_argument(
        "--dataset",
        choices=sorted(OFFICIAL_TRAINING),
        default=None,
        help="official architecture; inferred from the tensor shapes when omitted",
    )
    parser.add_argument("--ngf", type=int, default=None, help="generator width, for official-code runs at other widths")
    parser.add_argument("--ndf", type=int, default=None, help="energy width (with --ngf/--nif/--nz; needs --dataset)")
    parser.add_argument("--nif", type=int, default=None, help="encoder width")
    parser.add_argument("--nz", type=int, default=None, help="latent size")
    parser.add_argument("--hub_model_id", default=None, help="repository id for the model card's usage snippet")
    parser.add_argument(
        "--base_model",
        default=None,
        help="Hub id of the original weights, when they are on the Hub (the card's base_model)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output directory, if it is a "
        "pipeline folder this project wrote (anything else in it is named and refused)",
    )
    parser.add_argument("--no_model_card", action="store_true", help="do not write README.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configs = None
    widths = {k: getattr(args, k) for k in ("ngf", "ndf", "nif", "nz")}
    if any(v is not None for v in widths.values()):
        if args.dataset is None:
            parser.error("--ngf/--ndf/--nif/--nz need --dataset (the training data and image size)")
        official = OFFICIAL_TRAINING[args.dataset]
        widths["latent_dim"] = widths.pop("nz")
        model = {**official["model"], **{k: v for k, v in widths.items() if v is not None}}
        configs = configs_for_image_size(official["data"]["image_size"], 3, **model)
    try:
        out = convert_official_checkpoint(
            args.checkpoint,
            args.output_dir,
            dataset=args.dataset,
            configs=configs,
            hub_model_id=args.hub_model_id,
            overwrite=args.overwrite,
            model_card=not args.no_model_card,
            base_model=args.base_model,
        )
    except (OSError, ValueError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

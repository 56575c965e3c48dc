#!/usr/bin/env python
"""Train an EBM with Dual-MCMC teaching.

    accelerate launch scripts/train.py --config configs/digits.yaml [section.key=value ...]

Examples:
    accelerate launch scripts/train.py --config configs/cifar10.yaml --output_dir outputs/cifar10
    accelerate launch --mixed_precision bf16 scripts/train.py --config configs/celeba64.yaml
    python scripts/train.py --config configs/digits.yaml run.max_steps=50 teaching.num_steps=10
    accelerate launch scripts/train.py --config configs/mnist.yaml --resume_from_checkpoint latest
    accelerate launch scripts/train.py --config configs/digits.yaml --push_to_hub --hub_model_id org/dualmcmc-digits

Overrides use ``section.key=value`` with sections data / model / teaching / sampler / run (values parsed as YAML).
"""

import argparse
import sys

from hf_dualmcmc.trainer import DivergenceError, train
from hf_dualmcmc.training_config import load_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML file (see configs/)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. run.max_steps=100")
    p.add_argument("--output_dir", help="= run.output_dir")
    p.add_argument("--max_steps", type=int, help="= run.max_steps")
    p.add_argument("--epochs", type=int, help="= run.epochs")
    p.add_argument("--batch_size", type=int, help="= run.batch_size (per process)")
    p.add_argument("--seed", type=int, help="= run.seed")
    p.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], help="= run.mixed_precision")
    p.add_argument("--report_to", help="= run.report_to (tensorboard, wandb, none, ...)")
    p.add_argument("--resume_from_checkpoint", help="'latest' or a checkpoint directory")
    p.add_argument("--push_to_hub", action="store_true", help="push the exported pipeline to --hub_model_id")
    p.add_argument("--hub_model_id", help="= run.hub_model_id, e.g. org/dualmcmc-celeba64")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    for flag in ("output_dir", "max_steps", "epochs", "batch_size", "seed", "mixed_precision", "report_to", "hub_model_id"):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"run.{flag}={value}")
    if args.push_to_hub:
        overrides.append("run.push_to_hub=true")
    config = load_config(args.config, overrides)
    try:
        result = train(config, resume_from_checkpoint=args.resume_from_checkpoint)
    except DivergenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    if result.pipeline_dir is not None:
        print(f"pipeline: {result.pipeline_dir}  (DualMCMCPipeline.from_pretrained({str(result.pipeline_dir)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Train an EBM with Dual-MCMC teaching.

    accelerate launch scripts/train.py --config configs/digits.yaml [section.key=value ...]
    python scripts/train.py --help_config    # every config key with its default and meaning

Examples:
    accelerate launch scripts/train.py --config configs/cifar10.yaml --output_dir outputs/cifar10
    accelerate launch --mixed_precision bf16 scripts/train.py --config configs/celeba64.yaml
    python scripts/train.py --config configs/digits.yaml run.max_steps=50 teaching.num_steps=10
    accelerate launch scripts/train.py --config configs/mnist.yaml --resume_from_checkpoint latest run.max_steps=900
    accelerate launch scripts/train.py --config configs/digits.yaml run.use_ema=false run.gradient_accumulation_steps=2
    accelerate launch scripts/train.py --config configs/digits.yaml --push_to_hub --hub_model_id org/dualmcmc-digits

Overrides use ``section.key=value`` with sections data / model / teaching / sampler / run (values parsed as YAML) and
may stand anywhere on the command line. Flags are spelt with underscores (``--max_steps``; ``--max-steps`` works too). A bad config, a missing config file, an output_dir holding another run (or
files of the user under the names a run writes, or in use by another training run), a checkpoint that cannot be
resumed or too little data print one line ``error: ...`` and exit with code 2; a diverged run exits with code 3.
"""

import argparse
import dataclasses
import logging
import os
import sys

import torch
import yaml

from hf_dualmcmc.cli import ArgumentParser
from hf_dualmcmc.trainer import USER_ERRORS, DivergenceError, train
from hf_dualmcmc.training_config import SECTIONS, load_config

FLAGS = (
    "output_dir",
    "max_steps",
    "epochs",
    "batch_size",
    "seed",
    "mixed_precision",
    "report_to",
    "hub_model_id",
    "hub_license",
)


def help_config() -> str:
    """Every key of a training config with its default, meaning and rule (the schema's fields), as YAML."""
    lines = [
        "# The keys of a training config (hf_dualmcmc.training_config): default  # meaning (rule); [resumable]: a",
        "# resumed run may change it. Set them in the YAML file or on the command line as section.key=value.",
    ]
    for name, section in SECTIONS.items():
        lines.append(f"{name}:")
        for f in dataclasses.fields(section):
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            value = "<required>" if default is dataclasses.MISSING else yaml.safe_dump(default, default_flow_style=True)
            rule = f" ({f.metadata['check']})" if isinstance(f.metadata.get("check"), str) else ""
            note = rule + (" [resumable]" if f.metadata.get("resumable") else "")
            lines.append(f"  {f.name}: {value.splitlines()[0]}".ljust(38) + f"  # {f.metadata['help']}{note}")
    return "\n".join(lines)


class HelpConfig(argparse.Action):
    """``--help_config``: print every config key with its default and meaning, then exit 0."""

    def __call__(self, parser, *args):
        print(help_config())
        parser.exit()


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--help_config", nargs=0, action=HelpConfig, help="list every config key, its default and meaning")
    p.add_argument("--config", required=True, help="YAML file (see configs/)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. run.max_steps=100")
    p.add_argument("--output_dir", help="= run.output_dir")
    p.add_argument("--max_steps", type=int, help="= run.max_steps")
    p.add_argument("--epochs", type=int, help="= run.epochs")
    p.add_argument("--batch_size", type=int, help="= run.batch_size (per process and micro-batch)")
    p.add_argument("--seed", type=int, help="= run.seed")
    p.add_argument("--mixed_precision", choices=["auto", "no", "bf16", "fp16"], help="= run.mixed_precision")
    p.add_argument("--report_to", help="= run.report_to (tensorboard, wandb, none, ...)")
    p.add_argument("--resume_from_checkpoint", help="'latest' or a checkpoint directory")
    p.add_argument("--overwrite_output_dir", action="store_true", help="= run.overwrite_output_dir=true")
    p.add_argument("--push_to_hub", action="store_true", help="push the exported pipeline to --hub_model_id")
    p.add_argument("--hub_model_id", help="= run.hub_model_id, e.g. org/dualmcmc-celeba64")
    p.add_argument("--hub_license", help="= run.hub_license, the model card's license (default apache-2.0)")
    return p.parse_intermixed_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.INFO
    )
    overrides = list(args.overrides)
    overrides += [f"run.{flag}={getattr(args, flag)}" for flag in FLAGS if getattr(args, flag) is not None]
    overrides += [f"run.{flag}=true" for flag in ("overwrite_output_dir", "push_to_hub") if getattr(args, flag)]
    try:
        config = load_config(args.config, overrides)
        result = train(config, resume_from_checkpoint=args.resume_from_checkpoint)
    except USER_ERRORS as err:
        return fail(err, 2)
    except DivergenceError as err:
        return fail(err, 3)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if result.pipeline_dir is not None:
        print(f"pipeline: {result.pipeline_dir}  (DualMCMCPipeline.from_pretrained({str(result.pipeline_dir)!r}))")
    return 0


def fail(err: Exception, code: int) -> int:
    """One line ``error: ...`` on stderr (once: from the first process under ``accelerate launch``)."""
    if os.environ.get("RANK", "0") == "0":
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

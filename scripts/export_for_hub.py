#!/usr/bin/env python
"""Export a saved DualMCMCPipeline so that it loads with trust_remote_code=True, without hf-dualmcmc installed.

    python scripts/export_for_hub.py saved_pipeline/ exported/ [--overwrite] [--push user/name]

Then: ``DiffusionPipeline.from_pretrained("exported", trust_remote_code=True)``. The logic lives in
:mod:`hf_dualmcmc.hub`; this is its command-line interface.
"""

from __future__ import annotations

import sys

from hf_dualmcmc.cli import ArgumentParser
from hf_dualmcmc.hub import export_for_hub, push_pipeline_to_hub


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline_dir", help="a DualMCMCPipeline.save_pretrained directory")
    parser.add_argument("output_dir", help="where to write the remote-code layout")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output directory, if it is a "
        "pipeline folder this project wrote (anything else in it is named and refused)",
    )
    parser.add_argument("--push", metavar="REPO_ID", default=None, help="also upload the result to this Hub repository")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = export_for_hub(args.pipeline_dir, args.output_dir, overwrite=args.overwrite)
        print(f"wrote {out}")
        if args.push:
            commit = push_pipeline_to_hub(out, args.push, private=args.private)
            print(f"pushed to {getattr(commit, 'commit_url', args.push)}")
    except (OSError, ValueError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

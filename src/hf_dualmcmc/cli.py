"""The command-line style of the scripts: diffusers' underscores (``--batch_size``), older spellings accepted."""

from __future__ import annotations

import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose long flags are declared with underscores (``--batch_size``) and also
    accept the hyphenated spelling of earlier releases (``--batch-size``, ``--batch_size=4``, ``--batch-size=4``)."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if "--" in args:  # everything after a bare "--" is positional
            cut = args.index("--")
            args = [underscored(a) for a in args[:cut]] + args[cut:]
        else:
            args = [underscored(a) for a in args]
        return super().parse_known_args(args, namespace)


def underscored(token: str) -> str:
    """``--batch-size=4`` -> ``--batch_size=4``; anything that is not a long flag is returned unchanged."""
    if not token.startswith("--") or token == "--":
        return token
    flag, sep, value = token.partition("=")
    return "--" + flag[2:].replace("-", "_") + sep + value

"""Reading torch files without running code: ``torch.load(weights_only=True)`` with errors that say what is wrong.

A ``torch.save`` file is a pickle, and plain unpickling calls whatever the file names. :func:`load_torch_file` reads
only tensors, numbers, strings and containers, and turns torch's errors into a ``ValueError`` naming the file, what
was expected and what is wrong (:class:`UnsafePickleError` names the code it would run). Torch's advice to retry
without the restriction is never passed on: that is what would run the code. Example:
``load_torch_file("ckpt.pth", what="checkpoint", expected="a dict of state dicts")``."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch


class UnsafePickleError(ValueError):
    """The file's unpickling would import or call Python objects beyond tensors and plain containers; refused."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_torch_file(source: str | os.PathLike | bytes, *, what: str, expected: str, name: str | None = None) -> Any:
    """``torch.load(source, map_location="cpu", weights_only=True)`` of a path or the file's bytes (``name`` names
    them), refusing anything that would run code. ``what`` (the file) and ``expected`` (what it should hold) are for
    messages. Raises :class:`UnsafePickleError` for a global outside torch's weights-only allow-list, ``ValueError``
    for an empty, truncated or corrupt file or one that is not a ``torch.save`` file (told by its first bytes)."""
    label = f"{what} {name or str(source)!r}"
    try:
        return torch.load(
            io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu", weights_only=True
        )
    except Exception as err:  # a damaged file raises many types: RuntimeError (zip), EOFError, OSError, IndexError
        calls = _foreign_globals(source) if isinstance(err, pickle.UnpicklingError) else []
        if calls:
            raise UnsafePickleError(
                f"{label} was refused: loading it would import and run Python code ({', '.join(calls)}); only tensors, "
                f"numbers, strings and containers are read. Expected {expected}"
            ) from None
        raise ValueError(f"{label} {_diagnose(source)}: {_first_line(err)}. Expected {expected}") from None


def _foreign_globals(source: str | os.PathLike | bytes) -> list[str]:
    """The objects outside torch's allow-list that a pickle (or a ``torch.save`` zip's ``data.pkl``) names, read with
    :mod:`pickletools` (nothing imported; a truncated pickle up to where it ends): torch names only the first."""
    found, strings = [], []
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        if data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("GLOBAL", "INST"):
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(".".join(strings[-2:]))
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: S110 - a damaged file: what was read so far
        pass
    try:  # torch's allow-list (a private helper: without it every named object counts; torch refused the file anyway)
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = _get_allowed_globals()
    except (ImportError, AttributeError):
        allowed = {}
    return [name for name in dict.fromkeys(found) if name not in allowed]


def _first_line(err: Exception) -> str:
    """The gist of torch's message, without its advice to retry with the restriction off."""
    text = str(err).strip()
    if opcode := re.search(r"Unsupported operand (\d+)", text):
        return f"unsupported pickle opcode {opcode.group(1)}"
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text:
        return "the weights-only unpickler refused it"
    return f"{type(err).__name__}: {text.splitlines()[0].split('. ')[0]}" if text else type(err).__name__


def _diagnose(source: str | os.PathLike | bytes) -> str:
    """What a file torch.load could not read looks like, from its first bytes."""
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as f:
            head = f.read(4)
    except OSError:
        return "could not be read"
    if not head:
        return "is empty"
    if head.startswith(b"PK"):
        return "is truncated or corrupt (a damaged zip archive, the torch.save format)"
    if head.startswith(b"\x80"):
        return "is truncated, corrupt or not a torch.save file (a damaged or foreign pickle)"
    return "is not a torch.save file (neither a zip archive nor a pickle)"


__all__ = ["UnsafePickleError", "file_sha256", "load_torch_file"]

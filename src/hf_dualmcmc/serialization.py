"""Reading torch files without running code: ``torch.load(weights_only=True)`` with errors that say what is wrong.

A ``torch.save`` file (``.pt``/``.pth``) is a pickle, and plain unpickling calls whatever the file names (``os.system``,
``open``, any class's ``__reduce__``). ``weights_only=True`` restricts it to tensors, numbers, strings, ``None`` and
containers, and refuses anything else before calling it. :func:`load_torch_file` is that call, with torch's errors
turned into a :class:`ValueError` naming the file, what was expected and what is wrong: code it would run
(:class:`UnsafePickleError`, naming what it would call), a truncated file, or no checkpoint. Torch's own advice (to
retry without the restriction) is never passed on: it is what would run the code.

```python
>>> from hf_dualmcmc.serialization import load_torch_file
>>> state = load_torch_file("ckpt.pth", what="checkpoint", expected="a dict of state dicts")
```
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import pickletools
import re
import zipfile
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
    """``torch.load(source, map_location="cpu", weights_only=True)``, refusing anything that would run code.

    Args:
        source: a path, or the file's bytes (then ``name`` names it in messages).
        what: what the file is, for messages (e.g. ``"official checkpoint"``).
        expected: what it should hold, for messages (e.g. ``"a dict with keys netG, netE, netI"``).

    Raises:
        UnsafePickleError: the file references a Python global outside torch's weights-only allow-list.
        ValueError: the file is empty, truncated/corrupt or not a ``torch.save`` file (told apart by its first
            bytes: a zip archive, a pickle, or neither).
    """
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
    """The Python objects outside torch's weights-only allow-list that a pickle (or the ``data.pkl`` of a
    ``torch.save`` zip) names, read with :mod:`pickletools` (nothing is imported); those of a truncated pickle up to
    where it ends. Torch's own message names only the first, and none when it stops earlier (protocol 4's frames)."""
    found, strings = [], []
    try:
        data = source if isinstance(source, bytes) else open(source, "rb").read()
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
    opcode = re.search(r"Unsupported operand (\d+)", text)
    if opcode:
        return f"unsupported pickle opcode {opcode.group(1)}"
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text:
        return "the weights-only unpickler refused it"
    return f"{type(err).__name__}: {text.splitlines()[0].split('. ')[0]}" if text else type(err).__name__


def _diagnose(source: str | os.PathLike | bytes) -> str:
    """What a file torch.load could not read looks like, from its first bytes."""
    try:
        if isinstance(source, bytes):
            head = source[:4]
        else:
            with open(source, "rb") as f:
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

"""Reading torch files without running code: ``torch.load(weights_only=True)`` with errors that say what is wrong.

A ``torch.save`` file (``.pt``/``.pth``) is a pickle, and plain unpickling calls whatever the file names (``os.system``,
``open``, any class's ``__reduce__``). ``weights_only=True`` restricts it to tensors, numbers, strings, ``None`` and
containers, and refuses anything else before calling it. :func:`load_torch_file` is that call, with torch's errors
(which suggest retrying with ``weights_only=False``) turned into a :class:`ValueError` naming the file, what was
expected and what is wrong: code it would run (:class:`UnsafePickleError`), a truncated file, or no checkpoint.

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
import re
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
        return torch.load(io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu",
                          weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if not found:
            raise ValueError(f"{label} {_diagnose(source)}: {_first_line(err)}. Expected {expected}") from err
        raise UnsafePickleError(
            f"{label} was refused: loading it would import and run Python code ({found.group(1)}); only tensors, "
            f"numbers, strings and containers are read (torch.load weights_only=True). Expected {expected}"
        ) from err
    except Exception as err:  # a damaged file raises many types: RuntimeError (zip), EOFError, OSError, IndexError
        raise ValueError(f"{label} {_diagnose(source)}: {_first_line(err)}. Expected {expected}") from err


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    opcode = re.search(r"Unsupported operand (\d+)", text)
    if opcode:
        return f"unsupported pickle opcode {opcode.group(1)}"
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

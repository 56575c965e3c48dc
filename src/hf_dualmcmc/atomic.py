"""Atomic writes that leave the user's normal file modes.

A file or folder is built under a hidden unique sibling name and renamed into place, so a reader (or a kill) never
sees half of it. ``tempfile.mkstemp`` / ``mkdtemp`` would create the temporary entry private (``0600`` / ``0700``)
and the rename would keep that mode: an exported pipeline could then not be read by another user or a serving
container. Here the temporary entries are created like ``open(path, "w")`` and ``mkdir`` create them (``0666`` /
``0777`` less the umask), so the result has the mode any other write would give it; :func:`default_modes` does the
same for what libraries write private inside a folder of ours (safetensors weights are ``0600``).

```python
>>> from hf_dualmcmc.atomic import atomic_directory, atomic_write
>>> atomic_write("out/README.md", "# card\\n")
>>> with atomic_directory("out/pipeline") as tmp:   # replaces out/pipeline only if the block succeeds
...     pipe.save_pretrained(tmp)
```
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{secrets.token_hex(4)}")


def fresh_directory(path: str | os.PathLike, tag: str = "tmp") -> Path:
    """Create and return a new hidden, uniquely named sibling folder of ``path`` with the default mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        candidate = _sibling(path, tag)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue


def default_modes(*paths: str | os.PathLike) -> None:
    """Give each of ``paths`` (and everything below a folder among them) the mode ``open``/``mkdir`` would give it.

    For files that libraries create private (safetensors weights, ``tempfile`` entries: ``0600``) in a folder this
    project writes: the user's umask decides, as for any other file they write.
    """
    mask = os.umask(0)
    os.umask(mask)
    for root in map(Path, paths):
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if not path.is_symlink():
                os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def atomic_write(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` through a temporary sibling and ``os.replace``; returns ``path``.

    The parent folder must exist. On an error the previous content of ``path`` is kept and no temporary file is left.
    """
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    tmp = _sibling(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open(path, "w")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_directory(output_dir: str | os.PathLike):
    """Build a folder in a temporary sibling and move it into place at the end: ``with atomic_directory(d) as tmp:``.

    On an exception (or a kill) ``output_dir`` keeps its previous content and the temporary folder is removed (a
    kill leaves only a hidden ``.name.*`` sibling). An existing ``output_dir`` is replaced.
    """
    output_dir = Path(output_dir)
    tmp = fresh_directory(output_dir)
    try:
        yield tmp
        default_modes(tmp)
        old = None
        if output_dir.exists():
            old = fresh_directory(output_dir, "old")
            os.replace(output_dir, old / output_dir.name)
        os.replace(tmp, output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["atomic_directory", "atomic_write", "default_modes", "fresh_directory"]

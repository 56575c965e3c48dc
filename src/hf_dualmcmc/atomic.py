"""Atomic writes, and the names of the files the project writes (one place for both).

A file or folder is built under a hidden unique sibling name and renamed into place, so a reader (or a kill) never
sees half of it. Temporary entries get the modes ``open(path, "w")`` / ``mkdir`` give (``0666`` / ``0777`` less the
umask), unlike ``tempfile``'s private ``0600`` / ``0700``, which a rename would keep; :func:`default_modes` does the
same for what libraries write private inside a folder of ours (safetensors weights are ``0600``).

```python
>>> atomic_write("out/README.md", "# card\\n")
>>> atomic_write("out/stats.npz", lambda f: np.savez(f, mu=mu))   # a writer of a binary file object
>>> with atomic_directory("out/pipeline") as tmp:   # replaces out/pipeline only if the block succeeds
...     pipe.save_pretrained(tmp)
```
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

# a training run's output_dir (each entry listed in the run's manifest before it is first written)
TRAINING_CONFIG_FILE = "training_config.yaml"  # also in checkpoints and exported pipelines
HISTORY_FILE = "history.jsonl"
CHECKPOINTS_DIR, CHECKPOINT_PREFIX = "checkpoints", "checkpoint-"  # checkpoints/checkpoint-N
PIPELINE_DIR, SAMPLES_DIR, LOGS_DIR = "pipeline", "samples", "logs"
RUN_FILES = (HISTORY_FILE, CHECKPOINTS_DIR, PIPELINE_DIR, SAMPLES_DIR, LOGS_DIR, TRAINING_CONFIG_FILE)
MANIFEST_FILE, MANIFEST_FORMAT = ".hf-dualmcmc-run.json", "hf-dualmcmc-run/1"
LOCK_FILE, HOLDER_FILE = ".hf-dualmcmc.lock", ".hf-dualmcmc.lock.json"
PREVIOUS_RUN_PREFIX = ".previous-run-"  # run.overwrite_output_dir: the previous run, until the first checkpoint
SUPERSEDED_PREFIX = ".superseded-"  # in checkpoints/: checkpoints newer than the one a run resumed from
TRAINER_STATE_FILE, SCALER_FILE = "trainer_state.json", "scaler.pt"  # in a checkpoint
# a pipeline folder (save_pretrained, hub.export_for_hub, the converter, a run's pipeline/)
MODEL_INDEX_FILE, MODEL_CARD_FILE, SAMPLE_GRID_FILE = "model_index.json", "README.md", "samples.png"
MODEL_CONFIG_FILE = "config.json"  # in each component folder
PIPELINE_FILES = (MODEL_INDEX_FILE, MODEL_CARD_FILE, SAMPLE_GRID_FILE, TRAINING_CONFIG_FILE)  # beside the components
RESULTS_FILE = "results.json"  # scripts/evaluate.py


def fresh_directory(parent: str | os.PathLike, prefix: str) -> Path:
    """Create and return a new folder ``parent/<prefix><random hex>`` with the default mode."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    while True:
        candidate = Path(parent, f"{prefix}{secrets.token_hex(4)}")
        with contextlib.suppress(FileExistsError):  # (32 random bits)
            candidate.mkdir()
            return candidate


def default_modes(*paths: str | os.PathLike) -> None:
    """Give each of ``paths`` (and everything below a folder among them) the mode ``open``/``mkdir`` would give it."""
    mask = os.umask(0)
    os.umask(mask)
    for root in map(Path, paths):
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if not path.is_symlink():
                os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` through a temporary sibling and ``os.replace``; returns ``path``. ``data``: text,
    bytes, or a callable that writes into the binary file object it is given (``torch.save``, ``np.savez``,
    ``image.save``). The parent folder must exist. On an error ``path`` keeps its content, no temporary is left."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open(path, "w")
    try:
        with os.fdopen(fd, "wb") as f:
            data(f) if callable(data) else f.write(data.encode(encoding) if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_directory(output_dir: str | os.PathLike):
    """Build a folder in a temporary sibling and move it into place at the end: ``with atomic_directory(d) as tmp:``.
    On an exception ``output_dir`` keeps its previous content and the temporary folder is removed (a kill leaves a
    hidden ``.name.*`` sibling). An existing ``output_dir`` is replaced."""
    output_dir = Path(output_dir)
    tmp = fresh_directory(output_dir.parent, f".{output_dir.name}.tmp-")
    try:
        yield tmp
        default_modes(tmp)
        old = fresh_directory(output_dir.parent, f".{output_dir.name}.old-") if output_dir.exists() else None
        if old is not None:
            os.replace(output_dir, old / output_dir.name)
        os.replace(tmp, output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["atomic_directory", "atomic_write", "default_modes", "fresh_directory"]

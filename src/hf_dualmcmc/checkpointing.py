"""Training checkpoints without pickle: the files of ``checkpoints/checkpoint-N``, written atomically, read strictly.

```
checkpoint-N/
    trainer_state.json            step, epoch, processes, precision, LR-scheduler states, file list (written last)
    training_config.yaml          the run's configuration: what a resumed run is checked against
    energy.safetensors ...        weights of the networks the method learns (energy / generator / encoder)
    optimizer_energy.pt ...       Adam states (torch.save; read with torch.load(weights_only=True))
    ema_energy.safetensors ...    run.use_ema: EMA shadow weights, the EMAModel settings in the metadata
    scaler.pt                     fp16 with a loss scaler: the GradScaler state (weights_only)
    random_states_R.safetensors   RNG states of process R: torch CPU (+ CUDA), numpy, python ``random``
    pipeline/                     run.export_at_checkpoints: the exported DualMCMCPipeline
```

Why not ``accelerator.save_state`` / ``load_state``: objects registered with ``register_for_checkpointing`` (the LR
schedulers) are pickled and read back with ``weights_only=False`` (a tampered ``custom_checkpoint_0.pkl`` runs code),
and a missing or unreadable ``random_states_N.pkl`` is skipped with an INFO log line, so a resumed run silently stops
being identical. Here every file is safetensors, JSON, YAML (``safe_load``) or ``torch.load(weights_only=True)``;
the set of files must match what the run expects (anything else in the folder is refused), and any file that
cannot be read raises :class:`CheckpointError` naming it.

A checkpoint is written into a hidden ``.tmp-checkpoint-N`` folder and renamed into place once complete; old
checkpoints are renamed to a hidden ``.checkpoint-N.deleting.*`` folder before they are deleted. A visible
``checkpoint-N`` is therefore always complete, whatever moment a kill hits. Rotation and the cleanup of killed saves
remove only ``checkpoint-N`` folders and these two kinds of temporaries: any other entry of ``checkpoints/`` (a
user's ``.git``, a resume's ``.superseded-*`` folder) is left alone.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from .atomic import default_modes
from .training_config import safe_load_yaml

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "training_config.yaml"
SCALER_FILE = "scaler.pt"
PIPELINE_DIR = "pipeline"
FORMAT = "hf-dualmcmc-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: missing, incomplete, damaged, tampered with, or from another setup."""


def checkpoint_files(networks, optimizers, emas, num_processes: int, scaler: bool) -> set[str]:
    """The files a checkpoint of this setup holds (besides ``trainer_state.json`` and ``pipeline/``)."""
    files = {
        CONFIG_FILE,
        *(f"{name}.safetensors" for name in networks),
        *(f"optimizer_{name}.pt" for name in optimizers),
        *(f"ema_{name}.safetensors" for name in emas),
        *(f"random_states_{r}.safetensors" for r in range(num_processes)),
    }
    return files | {SCALER_FILE} if scaler else files


# ----------------------------------------------------------------------------------------------------------------
# Finding checkpoints
# ----------------------------------------------------------------------------------------------------------------


# what killed saves and deletes leave in checkpoints/ (the only hidden entries a save removes)
LEFTOVER = re.compile(rf"\.tmp-{CHECKPOINT_PREFIX}\d+|\.{CHECKPOINT_PREFIX}\d+\.deleting\..+")


def checkpoint_step(path: Path) -> int | None:
    m = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints under ``output_dir/checkpoints`` (folders ``checkpoint-N`` holding ``trainer_state.json``),
    oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in root.iterdir() if p.is_dir() and (p / STATE_FILE).is_file()]
    return [p for step, p in sorted((s, p) for s, p in found if s is not None)]


def resolve_checkpoint(output_dir: str | os.PathLike, which: str) -> Path:
    """``"latest"`` (the newest checkpoint of ``output_dir``) or a checkpoint folder."""
    if which == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise CheckpointError(
                f"--resume_from_checkpoint latest: no checkpoint under "
                f"{Path(output_dir) / 'checkpoints'} (start a fresh run without it)"
            )
        return checkpoints[-1]
    path = Path(which)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(
            f"--resume_from_checkpoint {which}: not a complete checkpoint (expected {path / STATE_FILE})"
        )
    return path


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def delete_folder(path: Path) -> None:
    """Rename ``path`` to a hidden sibling, then delete it: a kill mid-delete leaves no half-deleted visible folder."""
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.deleting.", dir=path.parent))
    os.replace(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(
    accelerator,
    output_dir: str | os.PathLike,
    step: int,
    *,
    networks: dict,
    optimizers: dict,
    emas: dict,
    schedulers: dict,
    state: dict,
    config: dict,
    keep: int,
    write_pipeline=None,
) -> Path:
    """Write ``output_dir/checkpoints/checkpoint-{step}`` (all processes call this) and keep the newest ``keep``
    (0: all).

    ``networks`` (unwrapped models), ``optimizers``, ``emas`` (``EMAModel``) and ``schedulers`` are dicts keyed by
    network name; ``state`` (JSON-able, e.g. step and epoch) goes into ``trainer_state.json``, ``config`` (the
    run's ``TrainConfig.to_dict()``) into ``training_config.yaml``; ``write_pipeline(folder)`` exports a pipeline
    into the checkpoint. Leftovers of killed saves and deletes (:data:`LEFTOVER`) are removed first.
    """
    root = Path(output_dir) / "checkpoints"
    final, tmp = root / f"{CHECKPOINT_PREFIX}{step}", root / f".tmp-{CHECKPOINT_PREFIX}{step}"
    main = accelerator.is_main_process
    if main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in (p for p in root.iterdir() if LEFTOVER.fullmatch(p.name)):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        tmp.mkdir()
    accelerator.wait_for_everyone()
    save_rng_state(tmp / f"random_states_{accelerator.process_index}.safetensors")
    if main:
        for name, model in networks.items():
            save_model(model, str(tmp / f"{name}.safetensors"), metadata={"format": "pt"})
        for name, optimizer in optimizers.items():
            torch.save(optimizer.state_dict(), tmp / f"optimizer_{name}.pt")
        for name, ema in emas.items():
            save_ema(ema, networks[name], tmp / f"ema_{name}.safetensors")
        if accelerator.scaler is not None:
            torch.save(accelerator.scaler.state_dict(), tmp / SCALER_FILE)
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if write_pipeline is not None:
            write_pipeline(tmp / PIPELINE_DIR)
    accelerator.wait_for_everyone()
    if main:
        state = {
            "format": FORMAT,
            **state,
            "num_processes": accelerator.num_processes,
            "mixed_precision": str(accelerator.mixed_precision),
            "schedulers": {name: s.state_dict() for name, s in schedulers.items()},
            "files": sorted(p.name for p in tmp.iterdir() if p.is_file()),
        }
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")  # last: marks it complete
        default_modes(tmp)  # safetensors writes the weights 0600
        if final.exists():
            delete_folder(final)
        os.replace(tmp, final)
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            delete_folder(old)
    accelerator.wait_for_everyone()
    return final


def save_ema(ema, model: torch.nn.Module, path: Path) -> None:
    """An ``EMAModel``'s shadow weights under ``model``'s parameter names, its settings as JSON metadata."""
    names = [name for name, _ in model.named_parameters()]
    settings = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
    tensors = {name: shadow.detach().contiguous() for name, shadow in zip(names, ema.shadow_params)}
    save_file(tensors, str(path), metadata={"format": "pt", "ema": json.dumps(settings)})


def save_rng_state(path: Path) -> None:
    """This process's RNG states: torch CPU (and every CUDA device), numpy's global, python's ``random``."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss_next = random.getstate()
    tensors["python"] = torch.tensor(internal, dtype=torch.int64)
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    meta = {
        "python_version": version,
        "python_gauss_next": gauss_next,
        "numpy_kind": kind,
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached_gaussian": float(cached_gaussian),
    }
    save_file(tensors, str(path), metadata={"format": "pt", "rng": json.dumps(meta)})


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


def _damaged(path: Path, err: BaseException) -> CheckpointError:
    detail = " ".join(str(err).split())[:300] or type(err).__name__
    return CheckpointError(
        f"{path}: cannot be read ({type(err).__name__}: {detail}); the checkpoint is damaged or "
        "was not written by this trainer (resume from another checkpoint)"
    )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(trainer_state, training_config)`` of a checkpoint (JSON and YAML ``safe_load``), after checking that the
    folder holds exactly the files its state lists."""
    path = Path(path)
    state, config = (_read_text(path / STATE_FILE, json.loads), _read_text(path / CONFIG_FILE, safe_load_yaml))
    valid = (
        isinstance(state, dict)
        and state.get("format") == FORMAT
        and type(state.get("step")) is int
        and isinstance(state.get("epoch"), int)
        and isinstance(state.get("num_processes"), int)
        and isinstance(state.get("schedulers"), dict)
        and isinstance(state.get("files"), list)
    )
    if not valid:
        raise CheckpointError(
            f"{path / STATE_FILE}: not a trainer state of format {FORMAT!r} (step, epoch, "
            "num_processes, schedulers, files); the checkpoint is damaged, not from this trainer, or "
            "from a version that used accelerator.save_state (those cannot be resumed)"
        )
    named = checkpoint_step(path)
    if named is not None and named != state["step"]:
        raise CheckpointError(
            f"{path / STATE_FILE}: step {state['step']}, but the folder is {path.name} (step {named}); "
            "the checkpoint was renamed or tampered with (resume from another checkpoint)"
        )
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path / CONFIG_FILE}: expected a mapping of config sections, got {type(config).__name__}"
        )
    present = {p.name for p in path.iterdir()} - {STATE_FILE, PIPELINE_DIR}
    listed = set(state["files"])
    if listed - present:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {sorted(listed - present)}")
    if present - listed:
        raise CheckpointError(
            f"{path}: unexpected file(s) {sorted(present - listed)} that this trainer did not write "
            "(refusing to load a tampered checkpoint; remove them or resume from another checkpoint)"
        )
    return state, config


def load_checkpoint(
    accelerator, path: str | os.PathLike, *, networks: dict, optimizers: dict, emas: dict, schedulers: dict
) -> dict:
    """Restore what :func:`save_checkpoint` wrote into the given objects (same dicts) and the RNG states of this
    process; returns the trainer state. Raises :class:`CheckpointError` naming the first file that is missing,
    unexpected or unreadable."""
    path = Path(path)
    state, _ = read_checkpoint(path)
    expected = checkpoint_files(networks, optimizers, emas, accelerator.num_processes, accelerator.scaler is not None)
    if set(state["files"]) != expected:
        raise CheckpointError(
            f"{path}: holds {sorted(state['files'])}, but this run expects {sorted(expected)} "
            "(another method, run.use_ema, precision or number of processes)"
        )
    for name, model in networks.items():
        file = path / f"{name}.safetensors"
        try:
            load_model(model, str(file), strict=True, device=str(next(model.parameters()).device))
        except Exception as err:
            raise _damaged(file, err) from err
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(_torch_load(path / f"optimizer_{name}.pt"))
    for name, ema in emas.items():
        load_ema(ema, networks[name], path / f"ema_{name}.safetensors")
    if accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(_torch_load(path / SCALER_FILE))
    for name, scheduler in schedulers.items():
        load_scheduler_state(scheduler, state["schedulers"].get(name), path / STATE_FILE)
    load_rng_state(path / f"random_states_{accelerator.process_index}.safetensors")
    return state


def _read_text(file: Path, parse):
    try:
        return parse(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _damaged(file, err) from err


def _torch_load(file: Path) -> dict:
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise _damaged(file, err) from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file}: expected a state dict, got {type(obj).__name__}")
    return obj


def _read_safetensors(file: Path) -> tuple[dict, dict]:
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as err:
        raise _damaged(file, err) from err


def load_ema(ema, model: torch.nn.Module, file: Path) -> None:
    tensors, meta = _read_safetensors(file)
    params = dict(model.named_parameters())
    if tensors.keys() != params.keys() or any(tensors[k].shape != p.shape for k, p in params.items()):
        raise CheckpointError(f"{file}: the EMA weights do not match the model's parameters (names or shapes)")
    try:
        settings = json.loads(meta["ema"])
        ema.load_state_dict({**settings, "shadow_params": [tensors[k].to(p.device) for k, p in params.items()]})
    except (KeyError, TypeError, ValueError) as err:
        raise _damaged(file, err) from err


def load_scheduler_state(scheduler, saved, where: Path) -> None:
    """An LR scheduler's state from JSON: the same keys as a fresh state, each of the same JSON type."""
    fresh = scheduler.state_dict()

    def same_kind(a, b):
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(same_kind(x, y) for x, y in zip(a, b))
        return (a is None and b is None) or (type(a) is type(b)) or (isinstance(a, float) and type(b) is int)

    if not (
        isinstance(saved, dict) and saved.keys() == fresh.keys() and all(same_kind(fresh[k], saved[k]) for k in fresh)
    ):
        raise CheckpointError(
            f"{where}: the saved learning-rate scheduler state does not match {type(scheduler).__name__}"
        )
    scheduler.load_state_dict(saved)


def load_rng_state(file: Path) -> None:
    """Set this process's RNG states from :func:`save_rng_state`'s file; a missing, damaged or foreign file is an
    error (a resumed run that silently draws other random numbers is not a continuation)."""
    if not file.is_file():
        raise CheckpointError(f"{file}: missing RNG state of this process; the checkpoint is incomplete")
    tensors, meta = _read_safetensors(file)
    try:
        m = json.loads(meta["rng"])
        cpu, python, keys = tensors["torch"], tensors["python"], tensors["numpy"]
        cuda = [tensors[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in tensors))]
        ok = (
            cpu.dtype == torch.uint8
            and cpu.shape == torch.get_rng_state().shape
            and python.shape == (625,)
            and keys.shape == (624,)
            and int(keys.min()) >= 0
            and int(keys.max()) < 2**32
            and int(python.min()) >= 0
            and int(python.max()) <= 2**32
        )
        if not ok:
            raise ValueError("unexpected tensor shapes, dtypes or ranges")
        here = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if len(cuda) != here:
            raise CheckpointError(
                f"{file}: RNG states of {len(cuda)} CUDA device(s), this process sees {here}; "
                "resume on the same kind of machine"
            )
        python_state = (int(m["python_version"]), tuple(int(v) for v in python.tolist()), m["python_gauss_next"])
        numpy_state = (
            str(m["numpy_kind"]),
            keys.numpy().astype(np.uint32),
            int(m["numpy_pos"]),
            int(m["numpy_has_gauss"]),
            float(m["numpy_cached_gaussian"]),
        )
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu.contiguous())
        if cuda:
            torch.cuda.set_rng_state_all([s.contiguous() for s in cuda])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise _damaged(file, err) from err


__all__ = [
    "CheckpointError",
    "checkpoint_files",
    "list_checkpoints",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]

"""Training checkpoints without pickle: ``checkpoints/checkpoint-N``, written atomically, read strictly.

A checkpoint holds ``trainer_state.json`` (step, epoch, processes, precision, LR-scheduler states, file list; written
last), ``training_config.yaml``, network and EMA weights and each process's RNG states (safetensors), Adam and
loss-scaler states (``torch.save``, read with ``weights_only=True``) and, with ``run.export_at_checkpoints``,
``pipeline/`` (docs/TRAINING.md). The folder must hold exactly the files its state lists; an unreadable file raises
:class:`CheckpointError` naming it. Built in a hidden ``.tmp-checkpoint-N`` and renamed into place, deleted through a
``.checkpoint-N.deleting.*`` rename: a visible ``checkpoint-N`` is always complete. Rotation removes nothing else.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from .atomic import (
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    PIPELINE_DIR,
    SCALER_FILE,
    TRAINER_STATE_FILE,
    TRAINING_CONFIG_FILE,
    default_modes,
    fresh_directory,
)
from .training_config import safe_load_yaml

FORMAT = "hf-dualmcmc-checkpoint/1"
# what killed saves and deletes leave in checkpoints/ (the only hidden entries a save removes)
LEFTOVER = re.compile(rf"\.tmp-{CHECKPOINT_PREFIX}\d+|\.{CHECKPOINT_PREFIX}\d+\.deleting\..+")
RNG_META = "python_version python_gauss_next numpy_kind numpy_pos numpy_has_gauss numpy_cached_gaussian".split()


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: missing, incomplete, damaged, tampered with, or from another setup."""


def checkpoint_files(networks, optimizers, emas, processes: int, scaler: bool) -> set[str]:
    """The files a checkpoint of this setup holds (besides ``trainer_state.json`` and ``pipeline/``)."""
    files = {TRAINING_CONFIG_FILE, *(f"{n}.safetensors" for n in networks), *(f"ema_{n}.safetensors" for n in emas)}
    files |= {f"optimizer_{n}.pt" for n in optimizers} | {f"random_states_{r}.safetensors" for r in range(processes)}
    return files | {SCALER_FILE} if scaler else files


def checkpoint_step(path: Path) -> int | None:
    m = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints (``checkpoint-N`` folders holding ``trainer_state.json``) of ``output_dir``, oldest first."""
    found = [(checkpoint_step(p), p) for p in (Path(output_dir) / CHECKPOINTS_DIR).glob(f"{CHECKPOINT_PREFIX}*")]
    return [p for s, p in sorted(f for f in found if f[0] is not None) if (p / TRAINER_STATE_FILE).is_file()]


def resolve_checkpoint(output_dir: str | os.PathLike, which: str) -> Path:
    """``"latest"`` (the newest checkpoint of ``output_dir``) or a checkpoint folder."""
    if which == "latest":
        if not list_checkpoints(output_dir):
            raise CheckpointError(
                f"--resume_from_checkpoint latest: no checkpoint under "
                f"{Path(output_dir) / CHECKPOINTS_DIR} (start a fresh run without it)"
            )
        return list_checkpoints(output_dir)[-1]
    if not (Path(which) / TRAINER_STATE_FILE).is_file():
        raise CheckpointError(
            f"--resume_from_checkpoint {which}: not a complete checkpoint (expected {Path(which) / TRAINER_STATE_FILE})"
        )
    return Path(which)


def delete_folder(path: Path) -> None:
    """Rename ``path`` to a hidden sibling, then delete it: a kill mid-delete leaves no half-deleted visible folder."""
    trash = fresh_directory(path.parent, f".{path.name}.deleting.")
    os.replace(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def prune_checkpoints(output_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (0: keep all)."""
    for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
        delete_folder(old)


def save_checkpoint(
    accelerator, output_dir, step, *, networks, optimizers, emas, schedulers, state, config, keep, write_pipeline=None
) -> Path:
    """Write ``output_dir/checkpoints/checkpoint-{step}`` (all processes call this), keep the newest ``keep`` (0: all).
    ``networks`` (unwrapped), ``optimizers``, ``emas``, ``schedulers``: dicts by network name; ``state`` (JSON-able) and
    ``config`` (``TrainConfig.to_dict()``) are saved; ``write_pipeline(folder)`` exports a pipeline into it."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    final, tmp = root / f"{CHECKPOINT_PREFIX}{step}", root / f".tmp-{CHECKPOINT_PREFIX}{step}"
    main = accelerator.is_main_process
    if main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in (p for p in root.iterdir() if LEFTOVER.fullmatch(p.name)):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
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
        (tmp / TRAINING_CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if write_pipeline is not None:
            write_pipeline(tmp / PIPELINE_DIR)
    accelerator.wait_for_everyone()
    if main:
        run = {"num_processes": accelerator.num_processes, "mixed_precision": str(accelerator.mixed_precision)}
        state = {"format": FORMAT, **state, **run, "schedulers": {n: s.state_dict() for n, s in schedulers.items()}}
        state["files"] = sorted(p.name for p in tmp.iterdir() if p.is_file())
        (tmp / TRAINER_STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")  # last: marks it complete
        default_modes(tmp)  # safetensors writes the weights 0600
        if final.exists():
            delete_folder(final)
        os.replace(tmp, final)
        prune_checkpoints(output_dir, keep)
    accelerator.wait_for_everyone()
    return final


def save_ema(ema, model: torch.nn.Module, path: Path) -> None:
    """An ``EMAModel``'s shadow weights under ``model``'s parameter names, its settings as JSON metadata."""
    settings = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
    tensors = {name: s.detach().contiguous() for (name, _), s in zip(model.named_parameters(), ema.shadow_params)}
    save_file(tensors, str(path), metadata={"format": "pt", "ema": json.dumps(settings)})


def save_rng_state(path: Path) -> None:
    """This process's RNG states: torch CPU (and every CUDA device), numpy's global, python's ``random``."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors.update(python=torch.tensor(internal, dtype=torch.int64), numpy=torch.from_numpy(keys.astype(np.int64)))
    meta = dict(zip(RNG_META, (version, gauss_next, kind, int(pos), int(has_gauss), float(cached))))
    save_file(tensors, str(path), metadata={"format": "pt", "rng": json.dumps(meta)})


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(trainer_state, training_config)`` of a checkpoint that holds exactly the files its state lists."""
    path = Path(path)
    state = _read(path / TRAINER_STATE_FILE, lambda f: json.loads(f.read_text("utf-8")))
    config = _read(path / TRAINING_CONFIG_FILE, lambda f: safe_load_yaml(f.read_text("utf-8")))
    valid = isinstance(state, dict) and state.get("format") == FORMAT and type(state.get("step")) is int
    kinds = {"epoch": int, "num_processes": int, "schedulers": dict, "files": list}
    if not (valid and all(isinstance(state.get(k), t) for k, t in kinds.items())):
        raise CheckpointError(
            f"{path / TRAINER_STATE_FILE}: not a trainer state of format {FORMAT!r} (step, epoch, "
            "num_processes, schedulers, files); the checkpoint is damaged, not from this trainer, or "
            "from a version that used accelerator.save_state (those cannot be resumed)"
        )
    named = checkpoint_step(path)
    if named is not None and named != state["step"]:
        raise CheckpointError(
            f"{path / TRAINER_STATE_FILE}: step {state['step']}, but the folder is {path.name} (step {named}); "
            "the checkpoint was renamed or tampered with (resume from another checkpoint)"
        )
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path / TRAINING_CONFIG_FILE}: expected a mapping of config sections, got {type(config).__name__}"
        )
    present, listed = {p.name for p in path.iterdir()} - {TRAINER_STATE_FILE, PIPELINE_DIR}, set(state["files"])
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
    """Restore what :func:`save_checkpoint` wrote into the given objects and this process's RNG states; returns the
    trainer state. :class:`CheckpointError` names the first file that is missing, unexpected or unreadable."""
    path = Path(path)
    state, _ = read_checkpoint(path)
    expected = checkpoint_files(networks, optimizers, emas, accelerator.num_processes, accelerator.scaler is not None)
    if set(state["files"]) != expected:
        raise CheckpointError(
            f"{path}: holds {sorted(state['files'])}, but this run expects {sorted(expected)} "
            "(another method, run.use_ema, precision or number of processes)"
        )
    for name, model in networks.items():
        device = str(next(model.parameters()).device)
        _read(path / f"{name}.safetensors", partial(load_model, model, strict=True, device=device))
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(_torch_load(path / f"optimizer_{name}.pt"))
    for name, ema in emas.items():
        load_ema(ema, networks[name], path / f"ema_{name}.safetensors")
    if accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(_torch_load(path / SCALER_FILE))
    for name, scheduler in schedulers.items():
        load_scheduler_state(scheduler, state["schedulers"].get(name), path / TRAINER_STATE_FILE)
    load_rng_state(path / f"random_states_{accelerator.process_index}.safetensors")
    return state


def _read(file: Path, parse):
    """``parse(file)``; any error raises :class:`CheckpointError` naming the file."""
    try:
        return parse(file)
    except CheckpointError:
        raise
    except Exception as err:  # a damaged file raises many types (OSError, ValueError, YAMLError, SafetensorError...)
        detail = " ".join(str(err).split())[:300] or type(err).__name__
        raise CheckpointError(
            f"{file}: cannot be read ({type(err).__name__}: {detail}); the checkpoint is damaged or "
            "was not written by this trainer (resume from another checkpoint)"
        ) from err


def _torch_load(file: Path) -> dict:
    obj = _read(file, lambda f: torch.load(f, map_location="cpu", weights_only=True))
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file}: expected a state dict, got {type(obj).__name__}")
    return obj


def _read_safetensors(file: Path) -> tuple[dict, dict]:
    def read(f):
        with safe_open(str(f), framework="pt") as st:
            return {k: st.get_tensor(k) for k in st.keys()}, dict(st.metadata() or {})

    return _read(file, read)


def load_ema(ema, model: torch.nn.Module, file: Path) -> None:
    tensors, meta = _read_safetensors(file)
    params = dict(model.named_parameters())
    if tensors.keys() != params.keys() or any(tensors[k].shape != p.shape for k, p in params.items()):
        raise CheckpointError(f"{file}: the EMA weights do not match the model's parameters (names or shapes)")
    shadow = [tensors[k].to(p.device) for k, p in params.items()]
    _read(file, lambda _: ema.load_state_dict({**json.loads(meta["ema"]), "shadow_params": shadow}))


def load_scheduler_state(scheduler, saved, where: Path) -> None:
    """An LR scheduler's state from JSON: the same keys as a fresh state, each of the same JSON type."""
    fresh = scheduler.state_dict()

    def same_kind(a, b):
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(same_kind(x, y) for x, y in zip(a, b))
        return (a is None and b is None) or (type(a) is type(b)) or (isinstance(a, float) and type(b) is int)

    same = isinstance(saved, dict) and saved.keys() == fresh.keys()
    if not (same and all(same_kind(fresh[k], saved[k]) for k in fresh)):
        raise CheckpointError(
            f"{where}: the saved learning-rate scheduler state does not match {type(scheduler).__name__}"
        )
    scheduler.load_state_dict(saved)


def load_rng_state(file: Path) -> None:
    """Set this process's RNG states from :func:`save_rng_state`'s file (missing, damaged or foreign: an error)."""
    if not file.is_file():
        raise CheckpointError(f"{file}: missing RNG state of this process; the checkpoint is incomplete")
    tensors, meta = _read_safetensors(file)
    cuda = [tensors[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in tensors))]
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if len(cuda) != here:
        raise CheckpointError(
            f"{file}: RNG states of {len(cuda)} CUDA device(s), this process sees {here}; "
            "resume on the same kind of machine"
        )
    _read(file, lambda _: _set_rng_state(tensors, json.loads(meta["rng"]), cuda))


def _set_rng_state(tensors: dict, m: dict, cuda: list) -> None:
    cpu, python, keys = tensors["torch"], tensors["python"], tensors["numpy"]
    if not (
        cpu.dtype == torch.uint8
        and cpu.shape == torch.get_rng_state().shape
        and python.shape == (625,)
        and keys.shape == (624,)
        and 0 <= int(keys.min()) <= int(keys.max()) < 2**32
        and 0 <= int(python.min()) <= int(python.max()) <= 2**32
    ):
        raise ValueError("unexpected tensor shapes, dtypes or ranges")
    python_state = (int(m["python_version"]), tuple(int(v) for v in python.tolist()), m["python_gauss_next"])
    numpy_state = (int(m["numpy_pos"]), int(m["numpy_has_gauss"]), float(m["numpy_cached_gaussian"]))
    random.setstate(python_state)
    np.random.set_state((str(m["numpy_kind"]), keys.numpy().astype(np.uint32), *numpy_state))
    torch.set_rng_state(cpu.contiguous())
    if cuda:
        torch.cuda.set_rng_state_all([s.contiguous() for s in cuda])


__all__ = ["CheckpointError", "list_checkpoints", "load_checkpoint", "read_checkpoint", "save_checkpoint"]

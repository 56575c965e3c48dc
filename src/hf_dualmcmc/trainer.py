"""The training loop behind ``accelerate launch scripts/train.py``: ``train(config)`` builds the models, loads the data,
picks the step function of ``teaching.method`` once and runs one loop whose phases are commented (data, step, log,
sample, checkpoint, stop), under Accelerate (processes, mixed precision, gradient accumulation, trackers, optional EMA).
How a run uses its ``output_dir`` (lock, manifest, atomic checkpoints, bit-identical resumption): docs/TRAINING.md and
docs/RELIABILITY.md.

>>> from hf_dualmcmc.training_config import load_config
>>> from hf_dualmcmc.trainer import train
>>> train(load_config("configs/digits.yaml", ["run.max_steps=2"])).pipeline_dir  # doctest: +SKIP
PosixPath('outputs/digits/pipeline')
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed
from diffusers.utils import make_image_grid
from tqdm.auto import tqdm

from . import atomic
from .atomic import atomic_write, fresh_directory
from .checkpointing import (
    LEFTOVER,
    CheckpointError,
    checkpoint_step,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from .data import DataConfig, check_dataset_size, describe, load_image_dataset
from .hub import overlap
from .modeling_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel, refresh_spectral_norm
from .performance import chain_compiler, to_memory_format
from .pipeline_dualmcmc import DualMCMCPipeline
from .training import METHODS, StepOutput, make_optimizers, make_schedulers
from .training_config import RESUMABLE_KEYS, ConfigError, ModelSettings, TeachingConfig, TrainConfig, network_configs

logger = get_logger(__name__)

NETWORKS = ("energy", "generator", "encoder")
POSTFIX = {"E": "loss_energy", "G": "loss_generator", "I": "loss_encoder", "gap": "energy_gap"}  # the progress bar's
# what the run writes inside its folders (anything else there is the user's: overwrite refuses to set it aside)
OWN_CONTENT = {
    atomic.CHECKPOINTS_DIR: re.compile(
        rf"{atomic.CHECKPOINT_PREFIX}\d+|{re.escape(atomic.SUPERSEDED_PREFIX)}.+|{LEFTOVER.pattern}"
    ),
    atomic.SAMPLES_DIR: re.compile(r"step_\d+_\w+\.png"),
    atomic.LOGS_DIR: re.compile("dualmcmc"),
}


class DivergenceError(RuntimeError):
    """The run exploded (NaN loss or energy gap beyond ``explode_threshold``); the last checkpoint is intact."""


class OutputDirError(ValueError):
    """``run.output_dir`` holds another run (a fresh run would mix with it)."""


class DataError(ValueError):
    """The configured data cannot be loaded (``data.*``)."""


USER_ERRORS = (ConfigError, CheckpointError, OutputDirError, DataError)
"""What ``scripts/train.py`` reports as one ``error: ...`` line with exit code 2."""


def build_models(data: DataConfig, model: ModelSettings):
    """Fresh (energy, generator, encoder) for the data's image size and channels."""
    configs = network_configs(data, model)
    return tuple(cls(c) for cls, c in zip((DualMCMCEnergyModel, DualMCMCGeneratorModel, DualMCMCEncoderModel), configs))


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of one epoch: ``randperm(N, seed + epoch)`` cut into global batches of ``batch_size *
    num_processes`` (last partial one dropped); each process takes its slice. ``start_batch`` skips the first
    batches (resumption mid-epoch). With gradient accumulation these are the micro-batches: ``k`` consecutive ones
    make one update, i.e. the images of one batch of ``k * batch_size``."""

    def __init__(self, num_items: int, batch_size: int, seed: int, num_processes: int = 1, process_index: int = 0):
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.num_processes, self.process_index = num_processes, process_index
        self.epoch, self.start_batch = 0, 0

    def __len__(self) -> int:
        return self.num_items // (self.batch_size * self.num_processes)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self):
        perm = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        global_batch = self.batch_size * self.num_processes
        for b in range(self.start_batch, len(self)):
            chunk = perm[b * global_batch : (b + 1) * global_batch]
            yield chunk[self.process_index * self.batch_size : (self.process_index + 1) * self.batch_size].tolist()


def build_pipeline(energy, generator, encoder, sampler, teaching: TeachingConfig | None = None) -> DualMCMCPipeline:
    """The exported pipeline. Baselines (``teaching.method``) export what they learned: ``short_run`` an energy with
    uniform-noise proposals (``proposal="noise"``), ``cooperative`` no encoder, ``inference_only`` no energy (its
    samples are the generator's: ``num_inference_steps=0``)."""
    settings = dataclasses.asdict(sampler) | ({} if energy is not None else {"num_inference_steps": 0})
    if teaching is not None and teaching.method == "short_run":
        settings |= {"proposal": "noise", "noise_init_range": teaching.noise_init_range}
    pipe = DualMCMCPipeline(energy, generator, encoder, **settings)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_grids(pipe: DualMCMCPipeline, data: torch.Tensor, num: int, seed: int) -> dict:
    """``{tag: (left, right)}`` grids with a private RNG (the training RNG is untouched): ``proposals_vs_revised`` and,
    with an encoder, ``data_vs_reconstructions``."""
    n = max(2, min(num, data.shape[0]))
    rows = math.isqrt(n)
    n = rows * (n // rows)
    out = pipe(batch_size=n, generator=torch.Generator().manual_seed(seed), return_proposals=True)
    grids = {"proposals_vs_revised": (out.proposals, out.images)}
    if pipe.encoder is not None:
        x = data[:n].float().clamp(-1, 1)
        rec = pipe.reconstruct(pixel_values=x, generator=torch.Generator().manual_seed(seed))
        grids["data_vs_reconstructions"] = (pipe.image_processor.postprocess(x, output_type="pil"), rec.images)
    return {tag: tuple(make_image_grid(images, rows, n // rows) for images in pair) for tag, pair in grids.items()}


def write_samples(accelerator: Accelerator, pipe: DualMCMCPipeline, data, run, step: int) -> None:
    """``samples/step_NNNNNNN_{tag}.png`` (left | right) of :func:`sample_grids`, also to the trackers that take
    images (TensorBoard ``add_image``, W&B ``wandb.Image``)."""
    folder = Path(run.output_dir) / atomic.SAMPLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    grids = sample_grids(pipe, data, run.num_sample_images, run.seed)
    images = {tag: side_by_side(*pair) for tag, pair in grids.items()}
    for tag, image in images.items():
        image.save(folder / f"step_{step:07d}_{tag}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            for tag, image in images.items():
                tracker.writer.add_image(f"samples/{tag}", np.asarray(image.convert("RGB")), step, dataformats="HWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({f"samples/{tag}": wandb.Image(image) for tag, image in images.items()}, step=step)


def side_by_side(left, right, gap: int = 4):
    """Two images next to each other on white, ``gap`` pixels apart (e.g. proposals | revised)."""
    from PIL import Image

    canvas = Image.new(left.mode, (left.width + right.width + gap, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    return canvas


def export_pipeline(pipe, directory: Path, config: TrainConfig, grid, metrics=None, model_id=None) -> Path:
    """``save_pretrained`` + sample grid + model card, built in a temporary folder and moved into place. The card
    loads it from ``model_id`` (default: ``directory``)."""
    from .hub import write_model_card

    with atomic.atomic_directory(directory) as tmp:
        pipe.save_pretrained(tmp)
        grid_name = atomic.SAMPLE_GRID_FILE if grid is not None else None
        if grid is not None:
            grid.save(tmp / grid_name)
        (tmp / atomic.TRAINING_CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        write_model_card(
            tmp,
            template=config.run.card_template,  # a paper template names its own data set
            dataset=None if config.run.card_template != "run" else config.run.dataset_name or config.data.source,
            training_config=config.to_dict(),
            metrics=metrics,
            sample_grid=grid_name,
            hub_model_id=config.run.hub_model_id,
            model_id=model_id or str(directory),
            license=config.run.hub_license,
        )
    return directory


# --- The output folder: one run at a time (a lock), a manifest of what the run wrote, a resumed run rewinds it


def read_manifest(output_dir: Path) -> set[str]:
    """The entries of ``output_dir`` its manifest lists as written by this trainer (no manifest: none)."""
    file = output_dir / atomic.MANIFEST_FILE
    if not os.path.lexists(file):
        return set()
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    ours = isinstance(manifest, dict) and manifest.get("format") == atomic.MANIFEST_FORMAT
    entries = manifest.get("entries") if ours else None
    if not (isinstance(entries, list) and all(e in atomic.RUN_FILES for e in entries)):
        raise OutputDirError(
            f"{file}: not a run manifest of format {atomic.MANIFEST_FORMAT!r} listing some of "
            f"{', '.join(atomic.RUN_FILES)}; this trainer did not write it, so nothing in run.output_dir "
            f"{output_dir} is taken as its own (move it away or choose another run.output_dir)"
        )
    return set(entries)


def claim(output_dir: Path, *names: str) -> None:
    """List ``names`` in the manifest before they are first written (main process)."""
    listed = read_manifest(output_dir)
    if not set(names) <= listed:
        manifest = {"format": atomic.MANIFEST_FORMAT, "entries": sorted(listed | set(names))}
        atomic_write(output_dir / atomic.MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


def foreign_entries(output_dir: Path, inside: bool = False) -> list[str]:
    """What of ``output_dir`` carries a name this trainer writes but is not listed in its manifest (the user's);
    ``inside``: also what a listed folder holds that this trainer does not write there (a ``checkpoints/.git``)."""
    listed = read_manifest(output_dir)
    foreign = [name for name in atomic.RUN_FILES if os.path.lexists(output_dir / name) and name not in listed]
    for name, own in OWN_CONTENT.items() if inside else ():
        if name in listed and (output_dir / name).is_dir():
            foreign += sorted(f"{name}/{p.name}" for p in (output_dir / name).iterdir() if not own.fullmatch(p.name))
    return foreign


def check_output_dir(output_dir: Path, config: TrainConfig, resume: Path | None) -> None:
    """Before anything is written (and again under the lock): a folder apart from the data and the checkpoint
    resumed from, with no file of the user under a name this run writes and no other run (see docs/RELIABILITY.md)."""
    where = next(p for p in (output_dir.absolute(), *output_dir.absolute().parents) if os.path.lexists(p))
    if not where.is_dir():
        raise OutputDirError(f"run.output_dir {output_dir}: {where} is not a folder")
    source = config.data.source.removeprefix("mnist:")
    if source and Path(source).expanduser().exists() and overlap(output_dir, Path(source).expanduser()):
        raise OutputDirError(
            f"run.output_dir {output_dir} and data.source {config.data.source} overlap (a run writes nothing among "
            "its inputs, nor reads them from among its outputs): choose another run.output_dir"
        )
    if resume is not None and overlap(output_dir, resume) in ("is", "is inside"):
        raise OutputDirError(
            f"run.output_dir {output_dir} is inside the checkpoint {resume} it resumes from: choose "
            "the checkpoint's own output_dir or another one"
        )
    foreign = foreign_entries(output_dir, inside=resume is None and config.run.overwrite_output_dir)
    if foreign:
        raise OutputDirError(
            f"run.output_dir {output_dir} holds {', '.join(foreign)} that this trainer did not write "
            f"(not listed in {atomic.MANIFEST_FILE}); nothing there is overwritten or deleted: move them "
            "away or choose another run.output_dir"
        )
    holds_run = any(os.path.lexists(output_dir / name) for name in read_manifest(output_dir))
    if resume is not None:
        if holds_run and overlap(resume, output_dir / atomic.CHECKPOINTS_DIR) not in ("is", "is inside"):
            raise OutputDirError(
                f"run.output_dir {output_dir} holds another run than the checkpoint {resume}; resume into the "
                "checkpoint's own output_dir or into an empty one"
            )
    elif holds_run and not config.run.overwrite_output_dir:
        raise OutputDirError(
            f"run.output_dir {output_dir} holds another run; continue it with --resume_from_checkpoint latest, or "
            "replace it with run.overwrite_output_dir=true, or choose another run.output_dir"
        )


def lock_output_dir(output_dir: Path):
    """One run per folder: an OS lock on ``.hf-dualmcmc.lock`` (``filelock``: dies with its process) until the
    run ends; ``.hf-dualmcmc.lock.json`` names the holder for a run that is refused."""
    from filelock import FileLock, Timeout

    output_dir.mkdir(parents=True, exist_ok=True)
    lock, holder_file = FileLock(output_dir / atomic.LOCK_FILE), output_dir / atomic.HOLDER_FILE
    try:
        lock.acquire(timeout=0)
    except Timeout:
        for _ in range(20):  # the holder names itself just after it takes the lock: give it up to 2 s
            try:
                holder = json.loads(holder_file.read_text(encoding="utf-8"))
                holder = f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
                break
            except (OSError, ValueError, TypeError, KeyError):
                holder = f"holder unknown: {atomic.HOLDER_FILE} is missing or unreadable"
                time.sleep(0.1)
        raise OutputDirError(
            f"run.output_dir {output_dir} is in use by another training run ({holder}): wait for it "
            "or choose another run.output_dir"
        ) from None
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "command": " ".join(sys.argv)}
    atomic_write(holder_file, json.dumps(holder) + "\n")  # (a killed run's file is overwritten by the next holder)
    return lock


def set_aside_previous_run(output_dir: Path) -> Path | None:
    """``run.overwrite_output_dir``: move what the manifest lists (and the manifest) into ``.previous-run-*``,
    deleted after the new run's first checkpoint (or export), moved back by :func:`restore_previous_run` before."""
    names = (*sorted(read_manifest(output_dir)), atomic.MANIFEST_FILE)  # the manifest last: a kill midway leaves it
    entries = [output_dir / name for name in names if os.path.lexists(output_dir / name)]  # listing what is in place
    if not entries:
        return None
    aside = fresh_directory(output_dir, atomic.PREVIOUS_RUN_PREFIX)
    for entry in entries:
        os.replace(entry, aside / entry.name)
    logger.warning(
        f"run.overwrite_output_dir: the previous run in {output_dir} is set aside in {aside} until this "
        "run's first checkpoint"
    )
    return aside


def restore_previous_run(output_dir: Path, aside: Path) -> None:
    """The new run failed before its first checkpoint: remove what it wrote, move the previous run back."""
    for new in (output_dir / name for name in (*read_manifest(output_dir), atomic.MANIFEST_FILE)):
        shutil.rmtree(new) if new.is_dir() and not new.is_symlink() else new.unlink(missing_ok=True)
    for entry in aside.iterdir():
        os.replace(entry, output_dir / entry.name)
    aside.rmdir()
    logger.warning(f"this run failed before its first checkpoint: the previous run is back in {output_dir}")


def rewind_output_dir(output_dir: Path, step: int, keep: int) -> None:
    """Resuming from ``step``: newer checkpoints are kept aside in ``checkpoints/.superseded-*``, the newest ``keep``
    stay, ``history.jsonl`` keeps the complete records up to ``step``."""
    checkpoints = output_dir / atomic.CHECKPOINTS_DIR
    found = checkpoints.glob(f"{atomic.CHECKPOINT_PREFIX}*")
    if newer := sorted(p for p in found if p.is_dir() and (checkpoint_step(p) or 0) > step):
        aside = fresh_directory(checkpoints, f"{atomic.SUPERSEDED_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-")
        for checkpoint in newer:
            os.replace(checkpoint, aside / checkpoint.name)
        logger.warning(
            f"resuming from step {step}: the newer checkpoints {', '.join(p.name for p in newer)} are kept in {aside}",
            main_process_only=True,
        )
    prune_checkpoints(output_dir, keep)
    history = output_dir / atomic.HISTORY_FILE
    if history.exists():
        kept = []
        for line in history.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line + "\n")
        atomic_write(history, "".join(kept))


def check_resumable(config: TrainConfig, saved: dict, state: dict, accelerator: Accelerator, path: Path) -> None:
    """A resumed run continues bit-identically, so it may change only the fields marked resumable (where, how long,
    how often, what is logged and exported) and must run with the same number of processes and precision."""
    try:
        saved_config = TrainConfig.from_dict(saved).to_dict()
    except ConfigError as err:
        raise CheckpointError(f"{path / atomic.TRAINING_CONFIG_FILE}: {err}") from err
    changed = [
        f"{section}.{key} (checkpoint {saved_config[section][key]!r}, now {value!r})"
        for section, values in config.to_dict().items()
        for key, value in values.items()
        if key not in RESUMABLE_KEYS.get(section, ()) and saved_config[section][key] != value
    ]
    if changed:
        allowed = ", ".join(f"{section}.{key}" for section, keys in RESUMABLE_KEYS.items() for key in sorted(keys))
        raise ConfigError(
            ", ".join(c.split(" ")[0] for c in changed),
            f"cannot change when resuming from {path}: {'; '.join(changed)}. A resumed run continues "
            f"bit-identically; it may change {allowed} (start a new run for anything else)",
        )
    for what, then, now in (
        ("processes", state["num_processes"], accelerator.num_processes),
        ("mixed precision", state.get("mixed_precision"), str(accelerator.mixed_precision)),
    ):
        if then != now:
            raise CheckpointError(
                f"{path} was written with {what} {then!r}, this run has {now!r}; resume with the "
                f"same accelerate launch settings (a resumed run continues bit-identically)"
            )
    if saved_config["data"]["random_flip"] and config.run.num_workers != saved_config["run"]["num_workers"]:
        raise ConfigError(
            "run.num_workers",
            "cannot change when resuming with data.random_flip (the flips are drawn by the loader's processes)",
        )


def make_emas(networks: dict, run) -> dict:
    """``diffusers.training_utils.EMAModel`` over the energy's and the generator's parameters (``run.use_ema``)."""
    if not run.use_ema:
        return {}
    from diffusers.training_utils import EMAModel

    settings = {"decay": run.ema_decay, "use_ema_warmup": run.ema_warmup, "power": run.ema_power}
    return {n: EMAModel(networks[n].parameters(), **settings) for n in ("energy", "generator") if n in networks}


def averaged_copy(model: torch.nn.Module, ema, seed: int) -> torch.nn.Module:
    """A copy of ``model`` holding the EMA weights; its spectral-norm vectors are recomputed for them (with a private
    RNG: the training RNG is untouched). Buffers (BatchNorm statistics) are the model's."""
    averaged = copy.deepcopy(model)
    ema.copy_to(averaged.parameters())
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        refresh_spectral_norm(averaged)
    return averaged


# --- The loop


@dataclass
class TrainResult:
    step: int
    history: list[dict]
    output_dir: Path
    pipeline_dir: Path | None
    seconds: float
    mixed_precision: str = "no"
    grad_scaler: bool = False  # fp16: accelerate's loss scaler is active


def resolve_mixed_precision(setting: str | None) -> str | None:
    """``run.mixed_precision``: ``"auto"`` is what ``accelerate launch`` chose (other than ``no``), else ``"bf16"``
    where the device computes it natively, else ``"no"`` (emulated bf16 is many times slower); the choice is logged."""
    from accelerate import PartialState
    from accelerate.state import AcceleratorState, is_initialized

    from . import performance

    if setting != "auto":
        return setting
    device, launched = PartialState().device, os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if is_initialized():  # accelerate keeps a process's first precision
        precision, why = AcceleratorState().mixed_precision, "this process's accelerate state has it"
    elif launched != "no":
        precision, why = launched, "chosen by accelerate launch / its config"
    elif performance.bf16_is_native(device):
        precision, why = "bf16", f"{device} computes bfloat16 natively"
    else:
        precision, why = "no", f"bfloat16 is not native on {device}: float32"
    logger.info(f"run.mixed_precision auto: {precision} ({why})", main_process_only=True)
    return precision


def train(config: TrainConfig, resume_from_checkpoint: str | None = None) -> TrainResult:
    """Run Dual-MCMC teaching (or ``teaching.method``) as configured; returns this invocation's per-step history and
    the export path. ``resume_from_checkpoint``: ``"latest"`` or a checkpoint folder."""
    run, teaching = config.run, config.teaching
    output_dir = Path(run.output_dir)
    k = run.gradient_accumulation_steps
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(run.mixed_precision),
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=k, sync_with_dataloader=False),
        log_with=None if run.report_to in (None, "none") else run.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / atomic.LOGS_DIR)),
    )
    main, procs = accelerator.is_main_process, accelerator.num_processes
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        # Accelerate neither autocasts nor scales losses for fp16 on CPU: say so rather than pretend
        warnings.warn(
            "mixed_precision='fp16' is not supported on CPU by Accelerate: this run computes in float32 "
            "(use bf16 on CPU; fp16 with a loss scaler is used on GPUs)",
            stacklevel=2,
        )

    # what this run continues, where it writes: checked before anything is built or decoded
    resume = resolve_checkpoint(output_dir, resume_from_checkpoint) if resume_from_checkpoint else None
    if resume is not None:
        saved_state, saved_config = read_checkpoint(resume)
        check_resumable(config, saved_config, saved_state, accelerator, resume)
    check_output_dir(output_dir, config, resume)

    # models, optimizers, data
    set_seed(run.seed)  # identical initial weights on every process
    keep = METHODS[teaching.method].networks  # baselines learn (and export) only some of the three networks
    energy, generator, encoder = (
        m if name in keep else None for name, m in zip(NETWORKS, build_models(config.data, config.model))
    )
    memory_format = torch.channels_last if run.channels_last else None
    if memory_format is not None:
        to_memory_format(energy, generator, encoder, memory_format=memory_format)
    optimizers = make_optimizers(energy, generator, encoder, teaching)
    schedulers = make_schedulers(optimizers, teaching)
    try:
        dataset = load_image_dataset(config.data)
    except (ValueError, OSError) as err:
        raise DataError(f"data.source {config.data.source!r}: {' '.join(str(err).split())}") from err
    try:
        check_dataset_size(dataset, run.batch_size * procs * k)
    except ValueError as err:
        why = f"(run.batch_size {run.batch_size} x {procs} process(es) x {k} accumulation step(s))"
        raise ConfigError("run.batch_size", f"{err} {why}") from err
    sampler = EpochBatchSampler(len(dataset), run.batch_size, run.seed, procs, accelerator.process_index)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=run.num_workers, generator=torch.Generator().manual_seed(run.seed)
    )
    steps_per_epoch = len(sampler) // k  # one step = k micro-batches; the last incomplete update of an epoch is dropped
    total_steps = steps_per_epoch * run.epochs if run.max_steps is None else run.max_steps

    energy, generator, encoder, *optimizers = accelerator.prepare(energy, generator, encoder, *optimizers)
    models = [m for m in (energy, generator, encoder) if m is not None]
    networks = {
        name: accelerator.unwrap_model(m) for name, m in zip(NETWORKS, (energy, generator, encoder)) if m is not None
    }
    emas = make_emas(networks, run)
    trained = [name for name, opt in zip(NETWORKS, optimizers) if opt is not None]
    optimized = dict(zip(trained, [o for o in optimizers if o is not None]))
    schedules = dict(zip(trained, schedulers))  # (these four by network name)
    checkpointed = dict(networks=networks, emas=emas, schedulers=schedules, optimizers=optimized)
    set_seed(run.seed, device_specific=True)  # different z / chain noise on every process
    step = 0
    if resume is not None:
        step = load_checkpoint(accelerator, resume, **checkpointed)["step"]  # weights, optimizers, EMA, LR, RNG
        logger.info(f"resumed from {resume} at step {step}", main_process_only=True)

    # the step function of teaching.method (training.METHODS) and its hooks (the speed options: dual_mcmc only)
    step_fn = METHODS[teaching.method].step
    hooks = {
        "backward": accelerator.backward,
        "autocast": accelerator.autocast,
        "unwrap": lambda m: None if m is None else accelerator.unwrap_model(m),
        "memory_format": memory_format,
        "chain_compiler": chain_compiler(accelerator.device) if run.compile else None,
    }

    def export_at_checkpoint(model_id: str):
        return lambda folder: export_pipeline(pipeline(), folder, config, None, model_id=model_id)

    def pipeline() -> DualMCMCPipeline:
        """The pipeline as it would be exported now: the EMA weights when ``run.use_ema``."""
        exported = (averaged_copy(networks[n], emas[n], run.seed) if n in emas else networks.get(n) for n in NETWORKS)
        return build_pipeline(*exported, config.sampler, teaching)

    history: list[dict] = []
    history_file = previous_run = bar = lock = None
    try:
        # the output folder (main process): locked, checked again under the lock, rewound to the checkpoint resumed
        # from or claimed (a run set aside by overwrite_output_dir comes back if this one fails before its checkpoint)
        accelerator.wait_for_everyone()
        refused = None
        if main:
            try:
                lock = lock_output_dir(output_dir)
                check_output_dir(output_dir, config, resume)
            except OutputDirError as err:
                refused = err
        if _any(accelerator, refused is not None):  # every process stops, none waits for the others
            raise refused or OutputDirError(f"run.output_dir {output_dir}: refused by the main process")
        if main:
            if resume is not None:
                rewind_output_dir(output_dir, step, run.checkpoints_total_limit)
            elif run.overwrite_output_dir:
                previous_run = set_aside_previous_run(output_dir)
            claim(output_dir, atomic.TRAINING_CONFIG_FILE, atomic.HISTORY_FILE)
            atomic_write(output_dir / atomic.TRAINING_CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
            history_file = open(output_dir / atomic.HISTORY_FILE, "a", encoding="utf-8")  # noqa: SIM115
        accelerator.wait_for_everyone()
        logger.info(
            f"data: {describe(dataset)}; {steps_per_epoch} steps/epoch of {k} x {run.batch_size} images per "
            f"process, {total_steps} steps in all",
            main_process_only=True,
        )
        if accelerator.trackers == [] and run.report_to not in (None, "none"):
            if main:
                claim(output_dir, atomic.LOGS_DIR)
            accelerator.init_trackers("dualmcmc", config=_flat(config.to_dict()))
        checkpoints = list_checkpoints(output_dir)
        last_checkpoint = checkpoints[-1] if checkpoints else None
        # a wall-clock budget without max_steps ends long before epochs x steps: no total, so no made-up ETA
        timed = run.max_minutes is not None and run.max_steps is None
        desc = teaching.method.replace("_", "-")
        bar = tqdm(total=None if timed else total_steps, initial=step, disable=not main, desc=desc, dynamic_ncols=True)
        lr_key = f"lr_{trained[0]}"  # the first optimizer's network
        started = time.time()
        batches, data = None, None
        while step < total_steps:
            # data: each epoch has its own order; its first step decays the learning rates (lr = base * gamma^epoch)
            epoch, index = divmod(step, steps_per_epoch)
            if batches is None or index == 0:
                if index == 0 and epoch > 0:
                    for s in schedulers:
                        s.step()
                sampler.set_epoch(epoch, start_batch=index * k)
                batches = iter(loader)

            # step: one update of every network from k micro-batches (accelerate accumulates and syncs the gradients)
            outs = []
            for _ in range(k):
                data = next(batches).to(accelerator.device, non_blocking=True)
                with accelerator.accumulate(*models):
                    outs.append(step_fn(data, energy, generator, encoder, optimizers, teaching, **hooks))
                _guard(outs[-1], step + 1, teaching.explode_threshold, last_checkpoint)
            for name, ema in emas.items():
                ema.step(networks[name].parameters())
            step += 1
            last = step >= total_steps or (
                run.max_minutes is not None and _any(accelerator, time.time() - started > 60 * run.max_minutes)
            )

            # log: every step to history.jsonl as it happens, every log_every steps to the trackers
            lr = schedulers[0].get_last_lr()[0]
            record = {"step": step, "epoch": epoch, **_mean([o.as_dict() for o in outs]), lr_key: lr}
            history.append(record)
            if main:
                history_file.write(json.dumps(record) + "\n")
                history_file.flush()
            bar.update()
            bar.set_postfix({short: f"{record[key]:.3g}" for short, key in POSTFIX.items()})
            if step % run.log_every == 0 or last:
                accelerator.log({key: v for key, v in record.items() if key != "step"}, step=step)

            # sample: grids of the pipeline as it would be exported, to samples/ and the trackers
            if run.sample_every and step % run.sample_every == 0 and main:
                claim(output_dir, atomic.SAMPLES_DIR)
                write_samples(accelerator, pipeline(), data, run, step)

            # checkpoint: written aside, renamed into place; the newest checkpoints_total_limit are kept
            if run.checkpoint_every and (step % run.checkpoint_every == 0 or last):
                named = f"{output_dir / atomic.CHECKPOINTS_DIR}/{atomic.CHECKPOINT_PREFIX}{step}/{atomic.PIPELINE_DIR}"
                if main:
                    claim(output_dir, atomic.CHECKPOINTS_DIR)
                last_checkpoint = save_checkpoint(
                    accelerator,
                    output_dir,
                    step,
                    **checkpointed,
                    state={"step": step, "epoch": epoch, "last": record},
                    config=config.to_dict(),
                    keep=run.checkpoints_total_limit,
                    write_pipeline=export_at_checkpoint(named) if run.export_at_checkpoints else None,
                )
                previous_run = _discard(previous_run)

            # stop: max_steps reached or the wall-clock budget spent
            if last:
                break
        seconds = time.time() - started
        accelerator.wait_for_everyone()
        pipeline_dir = None
        if main:
            pipe = pipeline()
            grids = sample_grids(pipe, data, run.num_sample_images, run.seed) if data is not None else None
            grid = grids and grids["proposals_vs_revised"][1]  # the revised samples
            claim(output_dir, atomic.PIPELINE_DIR)
            pipeline_dir = export_pipeline(pipe, output_dir / atomic.PIPELINE_DIR, config, grid)
            previous_run = _discard(previous_run)
            logger.info(f"exported {pipeline_dir} after {step} steps ({seconds:.1f} s)", main_process_only=True)
    except BaseException:
        if previous_run is not None:
            restore_previous_run(output_dir, previous_run)
        raise
    finally:
        if bar is not None:
            bar.close()
        if history_file is not None:
            history_file.close()
        if lock is not None:  # (the empty lock file stays: removing it would let two runs lock two different files)
            (output_dir / atomic.HOLDER_FILE).unlink(missing_ok=True)
            lock.release()
    if main and run.push_to_hub:
        from .hub import push_pipeline_to_hub

        push_pipeline_to_hub(pipeline_dir, run.hub_model_id, private=run.hub_private)
    for tracker in accelerator.trackers:  # (end_training() would also destroy the process group: the caller's)
        tracker.finish()
    scaled = accelerator.scaler is not None
    return TrainResult(step, history, output_dir, pipeline_dir, seconds, str(accelerator.mixed_precision), scaled)


def _guard(out: StepOutput, step: int, threshold: float, last_checkpoint: Path | None) -> None:
    where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    if not out.is_finite():
        bad = {k: v for k, v in out.as_dict().items() if not math.isfinite(v)}
        raise DivergenceError(
            f"training diverged at step {step}: non-finite values {bad}; {where} (a resumed run "
            "repeats the same steps: start a new run, e.g. with smaller teaching.lr_*)"
        )
    if out.energy_gap > threshold:
        raise DivergenceError(
            f"training diverged at step {step}: |mean E(data) - mean E(samples)| = {out.energy_gap:.4g} > "
            f"teaching.explode_threshold = {threshold:g}; {where} (resume from it with a larger "
            "teaching.explode_threshold, or start a new run)"
        )


def _mean(records: list[dict]) -> dict:
    """The micro-batches' scalars averaged (one micro-batch: its own values, unchanged)."""
    return records[0] if len(records) == 1 else {k: sum(r[k] for r in records) / len(records) for k in records[0]}


def _discard(previous_run: Path | None) -> None:
    if previous_run is not None:
        shutil.rmtree(previous_run, ignore_errors=True)
    return None


def _any(accelerator: Accelerator, flag: bool) -> bool:
    """Whether ``flag`` holds on any process (all processes agree, so none waits for the others)."""
    flags = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.reduce(flags, reduction="sum").item() > 0)


def _flat(config: dict) -> dict:
    """``{"section.key": value}`` (values the trackers take: numbers, strings, else their text)."""
    flat = {f"{section}.{key}": v for section, values in config.items() for key, v in values.items()}
    return {key: v if isinstance(v, (int, float, str, bool)) else str(v) for key, v in flat.items()}

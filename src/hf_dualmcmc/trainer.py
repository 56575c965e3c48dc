"""The training loop behind ``accelerate launch scripts/train.py`` (one loop a reader can follow).

``train(config)`` builds the three models from :class:`ModelSettings`, loads images with :mod:`hf_dualmcmc.data`,
and repeats :func:`hf_dualmcmc.training.dual_mcmc_step` (or, with ``teaching.method``, one of the baselines of
:mod:`hf_dualmcmc.baselines`) under Accelerate (one or many processes, mixed precision
``no``/``bf16``/``fp16``; MCMC chains always run through the unwrapped models with float32 state). Around it:
trackers (TensorBoard by default) and a tqdm bar, sample grids (proposals vs revised, data vs reconstructions),
atomic checkpoints (``accelerator.save_state`` into a temporary folder renamed into place, last K kept) and
bit-identical resumption, a divergence guard, and the export of a :class:`~hf_dualmcmc.DualMCMCPipeline` with a
model card (optionally pushed to the Hub).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers.utils import make_image_grid
from tqdm.auto import tqdm

from .baselines import method_networks, teaching_step
from .configuration_dualmcmc import (
    DualMCMCEncoderConfig,
    DualMCMCEnergyConfig,
    DualMCMCGeneratorConfig,
    default_encoder_layout,
    default_energy_layout,
    default_generator_mults,
)
from .data import DataConfig, check_dataset_size, describe, load_image_dataset
from .modeling_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel
from .performance import chain_compiler, to_memory_format
from .pipeline_dualmcmc import DualMCMCPipeline
from .training import StepOutput, dual_mcmc_step, make_optimizers, make_schedulers
from .training_config import ModelSettings, SamplerSettings, TeachingConfig, TrainConfig

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"


class DivergenceError(RuntimeError):
    """The run exploded (NaN loss or energy gap beyond ``explode_threshold``); the last checkpoint is intact."""


def build_models(data: DataConfig, settings: ModelSettings):
    """Fresh (energy, generator, encoder) for the data's image size and channels."""
    size, ch = data.image_size, data.num_channels
    e_mults, e_down = default_energy_layout(size)
    i_mults, i_stride = default_encoder_layout(size)
    energy = DualMCMCEnergyModel(DualMCMCEnergyConfig(
        image_size=size, num_channels=ch, base_channels=settings.ndf,
        channel_mults=settings.energy_channel_mults or e_mults, downsample=settings.energy_downsample or e_down,
        spectral_norm=settings.spectral_norm,
    ))
    generator = DualMCMCGeneratorModel(DualMCMCGeneratorConfig(
        latent_dim=settings.latent_dim, image_size=size, num_channels=ch, base_channels=settings.ngf,
        channel_mults=settings.generator_channel_mults or default_generator_mults(size),
        observation_std=settings.observation_std, prior_std=settings.prior_std,
    ))
    encoder = DualMCMCEncoderModel(DualMCMCEncoderConfig(
        image_size=size, num_channels=ch, latent_dim=settings.latent_dim, base_channels=settings.nif,
        channel_mults=settings.encoder_channel_mults or i_mults,
        first_stride=settings.encoder_first_stride or i_stride,
    ))
    return energy, generator, encoder


# ----------------------------------------------------------------------------------------------------------------
# Data order: a fixed permutation per epoch, sharded over processes, resumable at any batch
# ----------------------------------------------------------------------------------------------------------------


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of one epoch: ``randperm(N, seed + epoch)`` cut into global batches (last partial one dropped); each
    process takes its slice. ``start_batch`` skips the first batches (resumption mid-epoch)."""

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


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (those holding ``trainer_state.json``), oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def resolve_checkpoint(output_dir: str | os.PathLike, which: str) -> Path:
    if which == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no complete checkpoint under {output_dir}/checkpoints")
        return checkpoints[-1]
    path = Path(which)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (expected {path / STATE_FILE})")
    return path


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, state: dict, keep: int) -> Path:
    """``accelerator.save_state`` into ``.tmp-checkpoint-N``, then an atomic rename; a kill mid-save leaves the
    previous checkpoints untouched and only a temporary folder (removed by the next save)."""
    root = output_dir / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    tmp = root / f".tmp-{CHECKPOINT_PREFIX}{step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(f".tmp-{CHECKPOINT_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# ----------------------------------------------------------------------------------------------------------------
# Visual checks and export
# ----------------------------------------------------------------------------------------------------------------


def build_pipeline(energy, generator, encoder, sampler: SamplerSettings, teaching: TeachingConfig | None = None
                   ) -> DualMCMCPipeline:
    """The exported pipeline. Baselines (``teaching.method``) export what they learned: ``short_run`` an energy with
    uniform-noise proposals (``proposal="noise"``), ``cooperative`` no encoder, ``inference_only`` no energy (its
    samples are the generator's: ``num_inference_steps=0``)."""
    noise = teaching is not None and teaching.method == "short_run"
    pipe = DualMCMCPipeline(
        energy, generator, encoder,
        num_inference_steps=sampler.num_inference_steps if energy is not None else 0, step_size=sampler.step_size,
        noise_scale=sampler.noise_scale, bn_stats=sampler.bn_stats, num_latent_steps=sampler.num_latent_steps,
        latent_step_size=sampler.latent_step_size, latent_noise_scale=sampler.latent_noise_scale,
        proposal="noise" if noise else "generator",
        noise_init_range=teaching.noise_init_range if noise else 1.0,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_grids(pipe: DualMCMCPipeline, data: torch.Tensor, num: int, seed: int):
    """(proposals | revised) and (data | reconstructions) grids, with a private RNG (the training RNG is untouched)."""
    n = max(2, min(num, data.shape[0] if data is not None else num))
    rows = max(1, int(math.sqrt(n)))
    n = rows * (n // rows)
    out = pipe(batch_size=n, generator=torch.Generator().manual_seed(seed), return_proposals=True)
    samples = make_image_grid(out.proposals, rows, n // rows), make_image_grid(out.images, rows, n // rows)
    recon = None
    if pipe.encoder is not None and data is not None:
        x = data[:n].float().clamp(-1, 1)
        rec = pipe.reconstruct(pixel_values=x, generator=torch.Generator().manual_seed(seed))
        real = pipe.image_processor.postprocess(x, output_type="pil")
        recon = make_image_grid(real, rows, n // rows), make_image_grid(rec.images, rows, n // rows)
    return samples, recon


def side_by_side(left, right, gap: int = 4):
    """Two images next to each other on white, ``gap`` pixels apart (e.g. proposals | revised)."""
    from PIL import Image

    canvas = Image.new(left.mode, (left.width + right.width + gap, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    return canvas


def export_pipeline(pipe: DualMCMCPipeline, directory: Path, config: TrainConfig, grid, metrics: dict | None = None):
    """``save_pretrained`` + sample grid + model card, built in a temporary folder and moved into place."""
    from .hub import atomic_directory, write_model_card

    with atomic_directory(directory) as tmp:
        pipe.save_pretrained(tmp)
        grid_name = None
        if grid is not None:
            grid_name = "samples.png"
            grid.save(tmp / grid_name)
        (tmp / "training_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        write_model_card(
            tmp, template=config.run.card_template, dataset=config.run.dataset_name or config.data.source,
            training_config=config.to_dict(), metrics=metrics, sample_grid=grid_name,
            hub_model_id=config.run.hub_model_id, model_id=str(directory),
        )
    return directory


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    step: int
    history: list[dict]
    output_dir: Path
    pipeline_dir: Path | None
    seconds: float
    mixed_precision: str = "no"
    grad_scaler: bool = False  # fp16: accelerate's loss scaler is active


def train(config: TrainConfig, resume_from_checkpoint: str | None = None) -> TrainResult:
    """Run Dual-MCMC teaching as configured; returns the per-step history (main process) and the export path."""
    run, teaching = config.run, config.teaching
    output_dir = Path(run.output_dir)
    accelerator = Accelerator(
        mixed_precision=run.mixed_precision,
        log_with=None if run.report_to in (None, "none") else run.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    main = accelerator.is_main_process
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        # Accelerate neither autocasts nor scales losses for fp16 on CPU: say so rather than pretend
        warnings.warn("mixed_precision='fp16' is not supported on CPU by Accelerate: this run computes in float32 "
                      "(use bf16 on CPU; fp16 with a loss scaler is used on GPUs)", stacklevel=2)
    set_seed(run.seed)  # identical initial weights on every process
    energy, generator, encoder = build_models(config.data, config.model)
    keep = method_networks(teaching.method)  # baselines learn (and export) only some of the three networks
    energy, generator, encoder = (m if name in keep else None
                                  for name, m in zip(("energy", "generator", "encoder"), (energy, generator, encoder)))
    if (run.channels_last or run.compile) and teaching.method != "dual_mcmc":
        raise ValueError(f"run.channels_last / run.compile are options of the dual_mcmc step, not of "
                         f"teaching.method={teaching.method!r}")
    memory_format = torch.channels_last if run.channels_last else None
    if memory_format is not None:
        to_memory_format(energy, generator, encoder, memory_format=memory_format)
    optimizers = make_optimizers(energy, generator, encoder, teaching)
    schedulers = make_schedulers(optimizers, teaching)

    dataset = load_image_dataset(config.data)
    check_dataset_size(dataset, run.batch_size * accelerator.num_processes)
    sampler = EpochBatchSampler(len(dataset), run.batch_size, run.seed, accelerator.num_processes, accelerator.process_index)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=run.num_workers, generator=torch.Generator().manual_seed(run.seed)
    )
    steps_per_epoch = len(sampler)
    total_steps = steps_per_epoch * run.epochs if run.max_steps is None else run.max_steps

    energy, generator, encoder, *optimizers = accelerator.prepare(energy, generator, encoder, *optimizers)
    for s in schedulers:
        accelerator.register_for_checkpointing(s)
    set_seed(run.seed, device_specific=True)  # different z / chain noise on every process

    step = 0
    if resume_from_checkpoint:
        path = resolve_checkpoint(output_dir, resume_from_checkpoint)
        accelerator.load_state(str(path))
        step = json.loads((path / STATE_FILE).read_text())["step"]
        accelerator.print(f"resumed from {path} at step {step}")
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "training_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        accelerator.print(f"data: {describe(dataset)}; {steps_per_epoch} steps/epoch, {total_steps} steps in all")
    if accelerator.trackers == [] and run.report_to not in (None, "none"):
        accelerator.init_trackers("dualmcmc", config={k: v for k, v in _flat(config.to_dict()).items()})

    def unwrap(model):
        return None if model is None else accelerator.unwrap_model(model)

    compiler = chain_compiler(accelerator.device) if run.compile else None
    history: list[dict] = []
    last_checkpoint = list_checkpoints(output_dir)[-1] if list_checkpoints(output_dir) else None
    bar = tqdm(total=total_steps, initial=step, disable=not main, desc=teaching.method.replace("_", "-"),
               dynamic_ncols=True)
    started = time.time()
    last_batch = None
    lr_key = "lr_energy" if energy is not None else "lr_generator"  # the first optimizer's network
    while step < total_steps:
        epoch, start_batch = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, start_batch)
        for batch in loader:
            if start_batch == 0 and step % steps_per_epoch == 0 and epoch > 0:
                # ExponentialLR stepped at the start of every epoch: lr = base * gamma^epoch
                for s in schedulers:
                    s.step()
            start_batch = 0
            data = batch.to(accelerator.device, non_blocking=True)
            # the default path calls dual_mcmc_step itself (with the speed options); baselines go through the
            # method dispatcher
            if teaching.method == "dual_mcmc":
                step_fn, fast = dual_mcmc_step, {"memory_format": memory_format, "chain_compiler": compiler}
            else:
                step_fn, fast = teaching_step, {}
            out: StepOutput = step_fn(
                data, energy, generator, encoder, optimizers, teaching,
                backward=accelerator.backward, autocast=accelerator.autocast, unwrap=unwrap, **fast,
            )
            step += 1
            last_batch = data
            if run.max_minutes is not None and _out_of_time(accelerator, started, run.max_minutes):
                total_steps = step  # out of time: this is the last step (checkpoint and export follow)
            _guard(out, step, teaching.explode_threshold, last_checkpoint)
            record = {"step": step, "epoch": epoch, **out.as_dict(), lr_key: schedulers[0].get_last_lr()[0]}
            history.append(record)
            bar.update()
            bar.set_postfix(E=f"{out.loss_energy:.3g}", G=f"{out.loss_generator:.3g}", I=f"{out.loss_encoder:.3g}",
                            gap=f"{out.energy_data - out.energy_samples:.2g}")
            if step % run.log_every == 0 or step == total_steps:
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
            if run.sample_every and step % run.sample_every == 0 and main:
                _write_grids(unwrap(energy), unwrap(generator), unwrap(encoder), config, data, output_dir, step)
            if run.checkpoint_every and (step % run.checkpoint_every == 0 or step == total_steps):
                last_checkpoint = save_checkpoint(
                    accelerator, output_dir, step, {"step": step, "epoch": epoch, "last": record},
                    run.checkpoints_total_limit,
                )
                if run.export_at_checkpoints and main:
                    pipe = build_pipeline(unwrap(energy), unwrap(generator), unwrap(encoder), config.sampler, teaching)
                    export_pipeline(pipe, last_checkpoint / "pipeline", config, None)
            if step >= total_steps:
                break
    bar.close()
    seconds = time.time() - started
    accelerator.wait_for_everyone()
    pipeline_dir = None
    if main:
        pipe = build_pipeline(unwrap(energy), unwrap(generator), unwrap(encoder), config.sampler, teaching)
        grids, _ = sample_grids(pipe, last_batch, run.num_sample_images, run.seed) if last_batch is not None else (None, None)
        grid = grids[1] if grids else None
        pipeline_dir = export_pipeline(pipe, output_dir / "pipeline", config, grid)
        with open(output_dir / "history.jsonl", "a") as f:
            for rec in history:
                f.write(json.dumps(rec) + "\n")
        accelerator.print(f"exported {pipeline_dir} after {step} steps ({seconds:.1f} s)")
        if run.push_to_hub:
            if not run.hub_model_id:
                raise ValueError("run.push_to_hub needs run.hub_model_id (e.g. --hub_model_id org/dualmcmc-digits)")
            from .hub import push_pipeline_to_hub

            push_pipeline_to_hub(pipeline_dir, run.hub_model_id, private=run.hub_private)
    accelerator.end_training()
    return TrainResult(step=step, history=history, output_dir=output_dir, pipeline_dir=pipeline_dir, seconds=seconds,
                       mixed_precision=str(accelerator.mixed_precision), grad_scaler=accelerator.scaler is not None)


def _guard(out: StepOutput, step: int, threshold: float, last_checkpoint: Path | None) -> None:
    where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    if not out.is_finite():
        bad = {k: v for k, v in out.as_dict().items() if not math.isfinite(v)}
        raise DivergenceError(f"training diverged at step {step}: non-finite values {bad}; {where} (resume from it "
                              "with --resume_from_checkpoint latest, e.g. with smaller learning rates)")
    if out.energy_gap > threshold:
        raise DivergenceError(
            f"training diverged at step {step}: |mean E(data) - mean E(samples)| = {out.energy_gap:.4g} > "
            f"teaching.explode_threshold = {threshold:g}; {where}"
        )


def _out_of_time(accelerator: Accelerator, started: float, minutes: float) -> bool:
    """Whether any process has spent its wall-clock budget (all processes agree, so none waits for the others)."""
    over = torch.tensor([float(time.time() - started > 60 * minutes)], device=accelerator.device)
    return bool(accelerator.reduce(over, reduction="sum").item() > 0)


def _write_grids(energy, generator, encoder, config: TrainConfig, data, output_dir: Path, step: int) -> None:
    pipe = build_pipeline(energy, generator, encoder, config.sampler, config.teaching)
    (samples, recon) = sample_grids(pipe, data, config.run.num_sample_images, config.run.seed)
    folder = output_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    side_by_side(*samples).save(folder / f"step_{step:07d}_proposals_vs_revised.png")
    if recon is not None:
        side_by_side(*recon).save(folder / f"step_{step:07d}_data_vs_reconstructions.png")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)):
            out[key] = v
        else:
            out[key] = str(v)
    return out


__all__ = [
    "DivergenceError",
    "EpochBatchSampler",
    "TrainResult",
    "build_models",
    "list_checkpoints",
    "resolve_checkpoint",
    "save_checkpoint",
    "train",
]

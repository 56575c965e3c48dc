"""The training loop: resume equals an uninterrupted run, divergence guard, exports, data sources, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hf_dualmcmc import DualMCMCPipeline
from hf_dualmcmc.trainer import CheckpointError, DivergenceError, list_checkpoints, train
from hf_dualmcmc.training_config import TrainConfig, load_config

REPO = Path(__file__).resolve().parents[1]


def tiny_config(output_dir, **run):
    raw = {
        "data": {"source": "sklearn:digits", "image_size": 8, "num_channels": 1, "max_images": 48},
        "model": {"latent_dim": 4, "ngf": 8, "ndf": 8, "nif": 4},
        "teaching": {"num_steps": 2, "num_latent_steps": 2},
        "sampler": {"num_inference_steps": 2, "num_latent_steps": 1},
        "run": {"output_dir": str(output_dir), "batch_size": 8, "epochs": 1, "log_every": 1, "sample_every": 0,
                "checkpoint_every": 3, "checkpoints_total_limit": 2, "report_to": "none", "num_sample_images": 4,
                **run},
    }
    return TrainConfig.from_dict(raw)


def state_of(pipeline_dir):
    pipe = DualMCMCPipeline.from_pretrained(pipeline_dir)
    return {f"{n}.{k}": v for n in ("energy_model", "generator_model", "encoder")
            for k, v in getattr(pipe, n).state_dict().items()}


def test_resume_is_bit_identical(tmp_path):
    # 6 steps per epoch (48 images / 8), 2 epochs: the resume point (step 3) is mid-epoch and the lr decays at step 7
    full = train(tiny_config(tmp_path / "full", epochs=2, max_steps=9))
    part = train(tiny_config(tmp_path / "part", epochs=2, max_steps=3))
    assert [c.name for c in list_checkpoints(tmp_path / "part")] == ["checkpoint-3"]
    resumed = train(tiny_config(tmp_path / "part", epochs=2, max_steps=9), resume_from_checkpoint="latest")
    assert resumed.step == 9 and [r["step"] for r in resumed.history] == list(range(4, 10))
    ours = part.history + resumed.history
    for a, b in zip(full.history, ours):
        assert a == b  # every loss, energy and lr, to the last bit
    assert full.history[-1]["lr_energy"] < full.history[0]["lr_energy"]
    sa, sb = state_of(full.pipeline_dir), state_of(resumed.pipeline_dir)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # only the last K=2 checkpoints are kept
    assert [c.name for c in list_checkpoints(tmp_path / "full")] == ["checkpoint-6", "checkpoint-9"]


def test_export_and_sample_grids(tmp_path):
    result = train(tiny_config(tmp_path, max_steps=2, sample_every=2, checkpoint_every=0))
    pipe = DualMCMCPipeline.from_pretrained(result.pipeline_dir)
    assert pipe.config.num_inference_steps == 2
    images = pipe(batch_size=2, output_type="np").images
    assert images.shape == (2, 8, 8, 1)
    assert (result.pipeline_dir / "README.md").is_file() and (result.pipeline_dir / "samples.png").is_file()
    card = (result.pipeline_dir / "README.md").read_text()
    assert f'DualMCMCPipeline.from_pretrained("{result.pipeline_dir}")' in card and ".tmp" not in card
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_0000002_data_vs_reconstructions.png", "step_0000002_proposals_vs_revised.png"]
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_divergence_guard_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import hf_dualmcmc.trainer as trainer

    real_step = trainer.dual_mcmc_step
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            out.loss_energy = float("nan")
        return out

    monkeypatch.setattr(trainer, "dual_mcmc_step", poisoned)
    with pytest.raises(DivergenceError, match=r"diverged at step 5: non-finite values \{'loss_energy': nan\}.*checkpoint-3"):
        train(tiny_config(tmp_path, max_steps=6))
    checkpoints = list_checkpoints(tmp_path)
    assert [c.name for c in checkpoints] == ["checkpoint-3"]
    monkeypatch.setattr(trainer, "dual_mcmc_step", real_step)
    resumed = train(tiny_config(tmp_path, max_steps=4), resume_from_checkpoint="latest")
    assert resumed.step == 4 and np.isfinite(resumed.history[-1]["loss_energy"])


def test_energy_gap_guard(tmp_path):
    with pytest.raises(DivergenceError, match=r"step 1: \|mean E\(data\) - mean E\(samples\)\| = .* > teaching.explode_threshold"):
        train(TrainConfig.from_dict({**tiny_config(tmp_path).to_dict(), "teaching": {"num_steps": 2, "num_latent_steps": 2,
                                                                                     "explode_threshold": 1e-12}}))


def test_imagefolder_and_parquet_sources(tmp_path):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    arrays = [rng.integers(0, 255, (10, 10, 3), dtype=np.uint8) for _ in range(16)]
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"{i}.png")
    ds = datasets.Dataset.from_dict({"picture": [Image.fromarray(a) for a in arrays]},
                                    features=datasets.Features({"picture": datasets.Image()}))
    ds.to_parquet(str(tmp_path / "imgs.parquet"))
    for source in (str(folder), str(tmp_path / "imgs.parquet")):
        cfg = tiny_config(tmp_path / ("out-" + Path(source).name), max_steps=1, checkpoint_every=0)
        cfg.data.source, cfg.data.num_channels, cfg.data.max_images = source, 3, None
        result = train(cfg)
        assert result.step == 1
        assert DualMCMCPipeline.from_pretrained(result.pipeline_dir).generator_model.config.num_channels == 3


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(tiny_config(tmp_path, batch_size=64))
    with pytest.raises(ValueError, match=r"^run.stepz: unknown key; expected one of \['output_dir', 'batch_size'"):
        TrainConfig.from_dict({"data": {"source": "x"}, "run": {"stepz": 1}})
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(REPO / "configs" / "digits.yaml", ["max_steps=3"])


@pytest.mark.parametrize("name", ["cifar10", "celeba64", "celebahq256", "church64", "mnist", "digits"])
def test_shipped_configs_parse(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml", ["run.max_steps=1"])
    assert cfg.run.max_steps == 1
    if name == "cifar10":
        t = cfg.teaching
        assert (t.num_steps, t.step_size, t.noise_scale, t.generator_teaching_weight, t.betas) == (30, 0.5, 0.001, 50.0, (0.0, 0.9))
    if name == "celeba64":
        assert cfg.data.crop_box == (15, 40, 163, 188) and cfg.teaching.generator_teaching_weight == 70.0


def test_script_cli(tmp_path):
    cfg = tiny_config(tmp_path / "out", max_steps=1, checkpoint_every=0).to_dict()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--config", str(path), "run.seed=7"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pipeline:" in proc.stdout
    assert yaml.safe_load((tmp_path / "out" / "training_config.yaml").read_text())["run"]["seed"] == 7


MIXED_PRECISION_CHECK = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from test_trainer import tiny_config
from hf_dualmcmc import DualMCMCPipeline
from hf_dualmcmc.trainer import train
r = train(tiny_config({out!r}, max_steps=3, checkpoint_every=0, mixed_precision={mp!r}))
pipe = DualMCMCPipeline.from_pretrained(r.pipeline_dir)
dtypes = sorted({{str(p.dtype) for m in (pipe.energy_model, pipe.generator_model, pipe.encoder) for p in m.parameters()}})
print(json.dumps({{"mp": r.mixed_precision, "scaler": r.grad_scaler, "last": r.history[-1], "dtypes": dtypes}}))
"""


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training(tmp_path, precision):
    # a fresh process per precision: Accelerate's state is a process-wide singleton
    code = MIXED_PRECISION_CHECK.format(tests=str(REPO / "tests"), out=str(tmp_path / precision), mp=precision)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["mp"] == precision
    # bf16 needs no loss scaler; fp16 gets one on GPUs, while on CPU Accelerate runs fp32 and the trainer warns
    assert result["scaler"] is False
    if precision == "fp16":
        assert "not supported on CPU by Accelerate" in proc.stderr
    assert result["dtypes"] == ["torch.float32"]  # master weights stay fp32
    assert all(np.isfinite(v) for k, v in result["last"].items() if isinstance(v, float))


def test_wall_clock_budget_stops_with_checkpoint_and_export(tmp_path):
    result = train(tiny_config(tmp_path, max_steps=6, max_minutes=0.0))
    assert result.step == 1
    assert [c.name for c in list_checkpoints(tmp_path)] == ["checkpoint-1"]
    assert (result.pipeline_dir / "model_index.json").is_file()


def test_kill_during_checkpoint_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    import hf_dualmcmc.checkpointing as checkpointing

    real_save = checkpointing.save_model
    calls = {"n": 0}

    def dying_save(model, filename, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the second checkpoint (step 6): write part of its first file, then "get killed"
            Path(filename).write_bytes(b"truncated")
            raise KeyboardInterrupt("killed during save")
        return real_save(model, filename, **kwargs)

    monkeypatch.setattr(checkpointing, "save_model", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path, max_steps=6))
    monkeypatch.setattr(checkpointing, "save_model", real_save)
    # only complete checkpoints count; the half-written one is a hidden temporary folder
    assert [c.name for c in list_checkpoints(tmp_path)] == ["checkpoint-3"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == [".tmp-checkpoint-6"]
    resumed = train(tiny_config(tmp_path, max_steps=6), resume_from_checkpoint=str(tmp_path / "checkpoints" / "checkpoint-3"))
    assert resumed.step == 6 and [r["step"] for r in resumed.history] == [4, 5, 6]
    assert not any(p.name.startswith(".") for p in (tmp_path / "checkpoints").iterdir())
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        train(tiny_config(tmp_path, max_steps=6), resume_from_checkpoint=str(tmp_path / "nowhere"))

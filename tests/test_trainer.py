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
from conftest import REPO_ROOT, load_module, state_of, tiny_config, tree

from hf_dualmcmc import DualMCMCPipeline
from hf_dualmcmc.trainer import CheckpointError, DivergenceError, list_checkpoints, train
from hf_dualmcmc.training_config import TrainConfig, load_config


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
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(tiny_config(tmp_path, max_steps=2, sample_every=2, checkpoint_every=0, report_to="tensorboard"))
    pipe = DualMCMCPipeline.from_pretrained(result.pipeline_dir)
    assert pipe.config.num_inference_steps == 2
    images = pipe(batch_size=2, output_type="np").images
    assert images.shape == (2, 8, 8, 1)
    assert (result.pipeline_dir / "README.md").is_file() and (result.pipeline_dir / "samples.png").is_file()
    card = (result.pipeline_dir / "README.md").read_text()
    assert f'DualMCMCPipeline.from_pretrained("{result.pipeline_dir}")' in card and ".tmp" not in card
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_0000002_data_vs_reconstructions.png",
        "step_0000002_proposals_vs_revised.png",
    ]
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    # the trackers got the scalars of every step and the two grids (as images) of step 2
    events = EventAccumulator(str(tmp_path / "logs" / "dualmcmc"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss_energy")] == [1, 2]
    assert [e.value for e in events.Scalars("loss_energy")] == pytest.approx(
        [json.loads(x)["loss_energy"] for x in lines]
    )
    for tag in ("proposals_vs_revised", "data_vs_reconstructions"):
        (image,) = events.Images(f"samples/{tag}")
        png = tmp_path / "samples" / f"step_0000002_{tag}.png"
        from PIL import Image

        assert image.step == 2 and (image.width, image.height) == Image.open(png).size


def test_divergence_guard_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import hf_dualmcmc.trainer as trainer

    real_step = trainer.METHODS["dual_mcmc"].step
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            out.loss_energy = float("nan")
        return out

    monkeypatch.setitem(trainer.METHODS, "dual_mcmc", trainer.METHODS["dual_mcmc"]._replace(step=poisoned))
    with pytest.raises(
        DivergenceError, match=r"diverged at step 5: non-finite values \{'loss_energy': nan\}.*checkpoint-3"
    ):
        train(tiny_config(tmp_path, max_steps=6))
    checkpoints = list_checkpoints(tmp_path)
    assert [c.name for c in checkpoints] == ["checkpoint-3"]
    # history.jsonl was written as the steps were logged: it holds steps 1-4 (the diverged step 5 is not logged);
    # a kill in the middle of a write would leave half a line
    history = tmp_path / "history.jsonl"
    assert [json.loads(line)["step"] for line in history.read_text().splitlines()] == [1, 2, 3, 4]
    history.write_text(history.read_text() + '{"step": 5, "loss_ene')
    monkeypatch.setitem(trainer.METHODS, "dual_mcmc", trainer.METHODS["dual_mcmc"]._replace(step=real_step))
    resumed = train(tiny_config(tmp_path, max_steps=6), resume_from_checkpoint="latest")
    assert resumed.step == 6 and np.isfinite(resumed.history[-1]["loss_energy"])
    # resuming from step 3 dropped the records after it; every step is in the file once
    records = [json.loads(line) for line in history.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and records[3:] == resumed.history


def test_energy_gap_guard(tmp_path):
    with pytest.raises(
        DivergenceError, match=r"step 1: \|mean E\(data\) - mean E\(samples\)\| = .* > teaching.explode_threshold"
    ):
        train(
            TrainConfig.from_dict(
                {
                    **tiny_config(tmp_path).to_dict(),
                    "teaching": {"num_steps": 2, "num_latent_steps": 2, "explode_threshold": 1e-12},
                }
            )
        )


def test_imagefolder_and_parquet_sources(tmp_path):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    arrays = [rng.integers(0, 255, (10, 10, 3), dtype=np.uint8) for _ in range(16)]
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"{i}.png")
    ds = datasets.Dataset.from_dict(
        {"picture": [Image.fromarray(a) for a in arrays]}, features=datasets.Features({"picture": datasets.Image()})
    )
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
        load_config(REPO_ROOT / "configs" / "digits.yaml", ["max_steps=3"])


@pytest.mark.parametrize("name", ["cifar10", "celeba64", "celebahq256", "church64", "mnist", "digits"])
def test_shipped_configs_parse(name):
    cfg = load_config(REPO_ROOT / "configs" / f"{name}.yaml", ["run.max_steps=1"])
    assert cfg.run.max_steps == 1
    if name == "cifar10":
        t = cfg.teaching
        assert (t.num_steps, t.step_size, t.noise_scale, t.generator_teaching_weight, t.betas) == (
            30,
            0.5,
            0.001,
            50.0,
            (0.0, 0.9),
        )
    if name == "celeba64":
        assert cfg.data.crop_box == (15, 40, 163, 188) and cfg.teaching.generator_teaching_weight == 70.0


def test_script_cli(tmp_path):
    cfg = tiny_config(tmp_path / "out", max_steps=1, checkpoint_every=0).to_dict()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "--config", str(path), "run.seed=7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pipeline:" in proc.stdout
    assert yaml.safe_load((tmp_path / "out" / "training_config.yaml").read_text())["run"]["seed"] == 7


MIXED_PRECISION_CHECK = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from conftest import tiny_config
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
    code = MIXED_PRECISION_CHECK.format(tests=str(REPO_ROOT / "tests"), out=str(tmp_path / precision), mp=precision)
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
    resumed = train(
        tiny_config(tmp_path, max_steps=6), resume_from_checkpoint=str(tmp_path / "checkpoints" / "checkpoint-3")
    )
    assert resumed.step == 6 and [r["step"] for r in resumed.history] == [4, 5, 6]
    assert not any(p.name.startswith(".") for p in (tmp_path / "checkpoints").iterdir())
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        train(tiny_config(tmp_path, max_steps=6), resume_from_checkpoint=str(tmp_path / "nowhere"))


def test_output_dir_of_another_run_is_refused_or_replaced_without_loss(tmp_path, monkeypatch):
    import hf_dualmcmc.trainer as trainer
    from hf_dualmcmc.trainer import OutputDirError

    train(tiny_config(tmp_path, max_steps=2, checkpoint_every=2, sample_every=2))
    before = tree(tmp_path)
    with pytest.raises(
        OutputDirError,
        match=r"holds another run; continue it with --resume_from_checkpoint latest, "
        r"or replace it with run.overwrite_output_dir=true",
    ):
        train(tiny_config(tmp_path, max_steps=3))
    assert tree(tmp_path) == before
    # overwrite_output_dir, but the new run fails before its first checkpoint: the previous run is back, intact
    real_step = trainer.METHODS["dual_mcmc"].step

    def failing(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setitem(trainer.METHODS, "dual_mcmc", trainer.METHODS["dual_mcmc"]._replace(step=failing))
    with pytest.raises(RuntimeError, match="out of memory"):
        train(tiny_config(tmp_path, max_steps=3, overwrite_output_dir=True, seed=5))
    assert tree(tmp_path) == before
    # overwrite_output_dir and the new run goes through: nothing of the previous run is left, nothing mixed
    monkeypatch.setitem(trainer.METHODS, "dual_mcmc", trainer.METHODS["dual_mcmc"]._replace(step=real_step))
    new = train(tiny_config(tmp_path, max_steps=3, checkpoint_every=3, overwrite_output_dir=True, seed=5))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".hf-dualmcmc-run.json",
        ".hf-dualmcmc.lock",
        "checkpoints",
        "history.jsonl",
        "pipeline",
        "training_config.yaml",
    ]
    assert json.loads((tmp_path / ".hf-dualmcmc-run.json").read_text())["entries"] == [
        "checkpoints",
        "history.jsonl",
        "pipeline",
        "training_config.yaml",
    ]
    assert [c.name for c in list_checkpoints(tmp_path)] == ["checkpoint-3"]
    assert [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()] == new.history
    assert yaml.safe_load((tmp_path / "training_config.yaml").read_text())["run"]["seed"] == 5


def test_user_files_around_runs_stay_byte_identical(tmp_path):
    """Issue #22, ownership: a run writes only what its manifest lists, saves and rotation keep a user's entries of
    checkpoints/, overwrite and a folder of the user's are refused naming the files, and nothing is touched."""
    from hf_dualmcmc.trainer import OutputDirError

    run = tmp_path / "run"
    user = {"notes.txt": b"mine", "data/x.png": b"png"}  # beside a run: names it does not write
    for rel, data in user.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(data)
    train(tiny_config(run, max_steps=2, checkpoint_every=2, checkpoints_total_limit=1, sample_every=2))
    assert json.loads((run / ".hf-dualmcmc-run.json").read_text())["entries"] == [
        "checkpoints",
        "history.jsonl",
        "pipeline",
        "samples",
        "training_config.yaml",
    ]
    # the user's entries in checkpoints/: kept by every save and by rotation (only checkpoint-N and our temporaries go)
    extra = {
        "checkpoints/.git/config": b"[core]",
        "checkpoints/.DS_Store": b"x",
        "checkpoints/README": b"r",
        "checkpoints/.tmp-notes": b"t",
    }
    user.update(extra)
    for rel, data in extra.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(data)
    (run / "checkpoints" / ".tmp-checkpoint-9").mkdir()  # leftovers of a killed save and a killed delete: removed
    (run / "checkpoints" / ".checkpoint-1.deleting.abc").mkdir()
    train(tiny_config(run, max_steps=4, checkpoint_every=1, checkpoints_total_limit=1), resume_from_checkpoint="latest")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        ".DS_Store",
        ".git",
        ".tmp-notes",
        "README",
        "checkpoint-4",
    ]
    assert {rel: (run / rel).read_bytes() for rel in user} == user
    # overwrite would set aside checkpoints/ with the user's .git in it: refused, naming them
    before = tree(tmp_path)
    with pytest.raises(
        OutputDirError,
        match=r"holds checkpoints/.DS_Store, checkpoints/.git, checkpoints/.tmp-notes, "
        r"checkpoints/README that this trainer did not write",
    ):
        train(tiny_config(run, max_steps=1, overwrite_output_dir=True))
    # a folder of the user's with our names in it: a fresh run, overwrite, a resume into it are all refused
    mine = tmp_path / "mine"
    for rel in ("samples/x.png", "logs/notes.txt", "history.jsonl", "pipeline/model_index.json"):
        (mine / rel).parent.mkdir(parents=True, exist_ok=True)
        (mine / rel).write_text(rel)
    before = tree(tmp_path)
    names = "history.jsonl, pipeline, samples, logs"
    for config, resume in (
        (tiny_config(mine, max_steps=1), None),
        (tiny_config(mine, max_steps=1, overwrite_output_dir=True), None),
        (
            tiny_config(mine, max_steps=5, checkpoint_every=1, checkpoints_total_limit=1),
            str(run / "checkpoints" / "checkpoint-4"),
        ),
    ):
        with pytest.raises(
            OutputDirError, match=f"run.output_dir {mine} holds {names} that this trainer did not write"
        ):
            train(config, resume_from_checkpoint=resume)
        assert tree(tmp_path) == before


def test_resume_refuses_changes_that_break_bit_identical_continuation(tmp_path):
    from hf_dualmcmc.training_config import ConfigError

    train(tiny_config(tmp_path, max_steps=2, checkpoint_every=2))
    before = tree(tmp_path)
    refused = [
        ({"batch_size": 4}, "run.batch_size"),
        ({"seed": 3}, "run.seed"),
        ({"gradient_accumulation_steps": 2}, "run.gradient_accumulation_steps"),
        ({"use_ema": True}, "run.use_ema"),
    ]
    for run, key in refused:
        with pytest.raises(
            ConfigError,
            match=rf"^{key}: cannot change when resuming from .*checkpoint-2: {key} "
            r"\(checkpoint .*, now .*\)\. A resumed run continues bit-identically",
        ):
            train(tiny_config(tmp_path, max_steps=3, **run), resume_from_checkpoint="latest")
    cfg = tiny_config(tmp_path, max_steps=3)
    cfg.teaching.lr_energy, cfg.model.ngf = 1e-3, 16
    with pytest.raises(
        ConfigError,
        match=r"^model.ngf, teaching.lr_energy: cannot change .*model.ngf \(checkpoint 8, "
        r"now 16\); teaching.lr_energy \(checkpoint 0.0001, now 0.001\)",
    ):
        train(cfg, resume_from_checkpoint="latest")
    assert tree(tmp_path) == before  # refused before anything was touched
    # how long, how often, what is exported may change
    cfg = tiny_config(tmp_path, max_steps=3, log_every=2, checkpoint_every=1)
    cfg.sampler.num_inference_steps, cfg.teaching.explode_threshold = 5, 1e6
    resumed = train(cfg, resume_from_checkpoint="latest")
    assert resumed.step == 3 and DualMCMCPipeline.from_pretrained(resumed.pipeline_dir).config.num_inference_steps == 5


def test_missing_or_damaged_rng_state_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    train(tiny_config(tmp_path, max_steps=2, checkpoint_every=2))
    rng = tmp_path / "checkpoints" / "checkpoint-2" / "random_states_0.safetensors"
    good = rng.read_bytes()
    rng.unlink()
    with pytest.raises(
        CheckpointError, match=r"checkpoint-2: incomplete checkpoint, missing \['random_states_0.safetensors'\]"
    ):
        train(tiny_config(tmp_path, max_steps=3), resume_from_checkpoint="latest")
    rng.write_bytes(good[: len(good) // 2])
    with pytest.raises(
        CheckpointError, match=r"random_states_0.safetensors: cannot be read \(.*\); the checkpoint is damaged"
    ):
        train(tiny_config(tmp_path, max_steps=3), resume_from_checkpoint="latest")
    rng.write_bytes(good)
    tensors = load_file(rng)
    save_file({**tensors, "torch": tensors["torch"][:100]}, rng, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"random_states_0.safetensors: cannot be read"):
        train(tiny_config(tmp_path, max_steps=3), resume_from_checkpoint="latest")
    rng.write_bytes(good)
    assert train(tiny_config(tmp_path, max_steps=3), resume_from_checkpoint="latest").step == 3


def test_gradient_accumulation_of_k_micro_batches_is_one_update_of_k_times_the_batch(tmp_path):
    # the short-run EBM has no generator (whose update the energy's samples would see mid-step) and, without chain
    # noise and spectral norm (a power iteration per forward), its update from k micro-batches of b images equals
    # the update from one batch of k * b: same images (the same data order), same uniform proposals (the same RNG
    # stream), gradient summed over micro-batches and divided by k by accelerate
    from safetensors.torch import load_file

    def run(out, batch_size, k):
        cfg = tiny_config(
            tmp_path / out, batch_size=batch_size, gradient_accumulation_steps=k, max_steps=3, checkpoint_every=3
        )
        cfg.teaching.method, cfg.teaching.use_noise, cfg.model.spectral_norm = "short_run", False, False
        return train(cfg)

    one, acc = run("one", 16, 1), run("acc", 8, 2)
    for a, b in zip(one.history, acc.history):
        assert b["loss_energy"] == pytest.approx(a["loss_energy"], rel=1e-6)
    wa, wb = (load_file(tmp_path / d / "checkpoints" / "checkpoint-3" / "energy.safetensors") for d in ("one", "acc"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-6
    # and Adam stepped once per step, not once per micro-batch
    opt = torch.load(tmp_path / "acc" / "checkpoints" / "checkpoint-3" / "optimizer_energy.pt", weights_only=True)
    assert {float(s["step"]) for s in opt["state"].values()} == {3.0}


def test_ema_with_accumulation_resumes_bit_identically_and_is_exported(tmp_path):
    from safetensors.torch import load_file

    def cfg(out, steps):
        # 48 images / (8 x 2) = 3 steps per epoch: the lr decays at step 4, the resume point (2) is mid-epoch
        return tiny_config(
            tmp_path / out,
            max_steps=steps,
            epochs=2,
            gradient_accumulation_steps=2,
            checkpoint_every=2,
            use_ema=True,
            ema_decay=0.9,
        )

    full = train(cfg("full", 4))
    train(cfg("part", 2))
    resumed = train(cfg("part", 4), resume_from_checkpoint="latest")
    assert full.history[2:] == resumed.history and full.history[-1]["lr_energy"] < full.history[0]["lr_energy"]
    sa, sb = state_of(full.pipeline_dir), state_of(resumed.pipeline_dir)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    checkpoint = tmp_path / "full" / "checkpoints" / "checkpoint-4"
    opt = torch.load(checkpoint / "optimizer_generator.pt", weights_only=True)
    assert {float(s["step"]) for s in opt["state"].values()} == {4.0}  # 8 micro-batches, 4 updates
    # the pipeline's energy and generator weights are the EMA shadow weights, not the trained ones
    pipe = DualMCMCPipeline.from_pretrained(full.pipeline_dir)
    for name, model in (("energy", pipe.energy_model), ("generator", pipe.generator_model)):
        ema, raw = load_file(checkpoint / f"ema_{name}.safetensors"), load_file(checkpoint / f"{name}.safetensors")
        params = dict(model.named_parameters())
        assert ema.keys() == params.keys()
        assert all(torch.equal(params[k], ema[k]) for k in ema)
        assert all(not torch.equal(raw[k], ema[k]) for k in ema if "weight" in k)
    raw_encoder = load_file(checkpoint / "encoder.safetensors")
    assert all(torch.equal(v, raw_encoder[k]) for k, v in pipe.encoder.state_dict().items())  # no EMA: trained weights
    # the spectral-norm vectors were recomputed for the averaged weights: W / sigma has spectral norm 1 in eval mode
    pipe.energy_model.eval()
    conv = pipe.energy_model.start.conv1
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=1e-3)


def load_train_script():
    return load_module("scripts/train.py", "train_script")


@pytest.mark.parametrize(
    "args, message",
    [
        (["run.batch_size=abc"], "error: run.batch_size: expected an integer, got 'abc'"),
        (["teaching.num_steps=abc"], "error: teaching.num_steps: expected an integer, got 'abc'"),
        (["teaching.lr_energy=abc"], "error: teaching.lr_energy: expected a number, got 'abc'"),
        (["run.stepz=1"], "error: run.stepz: unknown key; expected one of ['output_dir', 'batch_size'"),
        (["run.max_steps=0"], "error: run.max_steps: must be >= 1 (or null: run.epochs decides), got 0"),
        (["--config", "nowhere.yaml"], "error: nowhere.yaml: cannot read the config file (No such file or directory)"),
        (["--resume_from_checkpoint", "latest"], "error: --resume_from_checkpoint latest: no checkpoint under"),
        (["run.batch_size=64"], "error: run.batch_size: dataset has 48 images, fewer than one batch of 64"),
        (
            ["HOLDS_RUN"],
            "error: run.output_dir {out} holds another run; continue it with --resume_from_checkpoint latest",
        ),
        (["FOREIGN"], "error: run.output_dir {out} holds training_config.yaml that this trainer did not write"),
    ],
)
def test_script_user_errors_are_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    script = load_train_script()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "out", max_steps=1).to_dict()))
    if args in (["HOLDS_RUN"], ["FOREIGN"]):  # a run of ours (its manifest lists the file) or a file of the user
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "training_config.yaml").write_text("run: {}\n")
        if args == ["HOLDS_RUN"]:
            manifest = {"format": "hf-dualmcmc-run/1", "entries": ["training_config.yaml"]}
            (tmp_path / "out" / ".hf-dualmcmc-run.json").write_text(json.dumps(manifest))
        args = []
    argv = (["--config", str(config)] if "--config" not in args else []) + args
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error")]  # (besides progress bars)
    assert len(errors) == 1 and errors[0].startswith(message.format(out=tmp_path / "out")), err
    assert "Traceback" not in err


def test_script_overrides_anywhere_and_resume(tmp_path, capsys):
    script = load_train_script()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "elsewhere").to_dict()))
    out = str(tmp_path / "out")
    assert script.main(["run.max_steps=2", "--config", str(config), "--output_dir", out, "run.checkpoint_every=2"]) == 0
    assert (
        script.main(
            [
                "--config",
                str(config),
                "--resume_from_checkpoint",
                "latest",
                "run.max_steps=3",
                "--output_dir",
                out,
                "run.checkpoint_every=2",
            ]
        )
        == 0
    )
    assert "pipeline:" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3] and [c.name for c in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-3"]


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "accelerate").exists(), reason="the accelerate CLI is not installed"
)
def test_script_user_error_under_accelerate_launch(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "out").to_dict()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--quiet",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(REPO_ROOT / "scripts" / "train.py"),
        "--config",
        str(config),
        "run.batch_size=abc",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    # the script's one line; the launcher turns any failure into exit code 1 (and, without --quiet, adds its own
    # CalledProcessError report naming the script's exit status 2)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: run.batch_size: expected an integer, got 'abc'"]

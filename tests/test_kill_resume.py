"""Kill test: SIGKILL a training process at random moments, resume until done, compare with an uninterrupted run.

Every training runs in its own process, forked from the test process (a fork inherits the imports, so a run starts
in a fraction of a second instead of the ~8 s a fresh interpreter needs), and is killed with SIGKILL:

* ``timer`` kills: after a seeded random delay (up to half the duration of an uninterrupted run, scaled to the steps
  left; counted from the start, or from the first step), wherever the process is (setup, a step, a checkpoint save,
  the pipeline export); the phase it was in is recorded;
* ``io`` kills: the process SIGKILLs itself right before its n-th file operation (n seeded, uniform over the file
  operations of a whole run: safetensors / torch.save / text writes, renames, folder deletions), which puts kills
  inside checkpoint saves, checkpoint rotation, pipeline exports and the output-folder bookkeeping.

After every kill the output folder is checked: each visible ``checkpoints/checkpoint-N`` holds exactly the files
its ``trainer_state.json`` lists and every one of them loads (pickle-free), each checkpoint pipeline has its files,
``pipeline/`` loads with ``DualMCMCPipeline.from_pretrained``. Then the run is continued with
``--resume_from_checkpoint latest`` (or, killed before its first checkpoint, restarted with
``run.overwrite_output_dir=true``) until it finishes; its exported pipeline must equal the uninterrupted run's
bit for bit, and its ``history.jsonl`` must hold every step exactly once with the uninterrupted run's values.

Run: tiny widths, the digits at 8x8 (48 images, 6 steps per epoch), 8 steps over 2 epochs (the LR decays at step
7), a checkpoint every 2 steps with the newest 2 kept, a pipeline exported into every checkpoint, EMA on.
``pytest -s tests/test_kill_resume.py`` prints the table of kills (phase, operation, steps done) per seed.

Recorded on an idle 2-core machine (2026-12-01, ``OMP_NUM_THREADS=1 pytest -s tests/test_kill_resume.py``; timer-kill
phases vary with machine speed, file-operation kills do not): 3 seeds, 12 SIGKILLs: 6 after random delays (3 during
setup, 3 in a training step) and 6 right before a random file operation (2 ``torch.save`` and 3 safetensors writes
inside checkpoint saves, 1 rename of the pipeline export); 6 resumes from ``latest`` and 6 restarts with
``run.overwrite_output_dir`` over runs killed before their first complete checkpoint. After every kill all visible
checkpoints and pipelines were complete and loadable; all three final pipelines and histories equalled the
uninterrupted run's bit for bit. 33 s for the test file.
"""

import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import after_fork
from safetensors.torch import load_file

from hf_dualmcmc import DualMCMCPipeline
from hf_dualmcmc.checkpointing import checkpoint_step, list_checkpoints, read_checkpoint

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="the kill test forks training processes (POSIX only)"
)

PHASES = ("setup", "step", "checkpoint", "export", "done")
SEEDS = (0, 1, 2)
KILLS_PER_SEED = 4  # alternating timer / io kills, then the run is resumed to the end
MAX_STEPS = 8


def run_config(out, overwrite=False):
    from conftest import tiny_config

    return tiny_config(
        out,
        epochs=2,
        max_steps=MAX_STEPS,
        checkpoint_every=2,
        checkpoints_total_limit=2,
        export_at_checkpoints=True,
        use_ema=True,
        ema_decay=0.9,
        overwrite_output_dir=overwrite,
    )


def _child(out, resume, kill_at, phase, io_count, io_label):
    """Train (or resume) in this forked process; report the phase and count file operations, SIGKILL self before
    file operation number ``kill_at``."""
    after_fork()
    import pathlib
    import shutil

    import safetensors.torch

    import hf_dualmcmc.checkpointing as checkpointing
    import hf_dualmcmc.trainer as trainer

    torch.set_num_threads(
        1
    )  # every run alike (conftest asks for 2; two spinning OpenMP threads per run crawl on 2 cores)

    def io(fn, label):
        def wrapper(*args, **kwargs):
            io_count.value += 1
            if io_count.value == kill_at:
                io_label.value = f"{PHASES[phase.value]}: {label}".encode()[:63]
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapper

    def in_phase(fn, name):
        def wrapper(*args, **kwargs):
            before, phase.value = phase.value, PHASES.index(name)
            try:
                return fn(*args, **kwargs)
            finally:
                phase.value = before

        return wrapper

    os.replace = io(os.replace, "rename")
    shutil.rmtree = io(shutil.rmtree, "delete folder")
    pathlib.Path.write_text = io(pathlib.Path.write_text, "write text")
    torch.save = io(torch.save, "torch.save")
    for module in (checkpointing, safetensors.torch):
        module.save_model = io(module.save_model, "safetensors save_model")
        module.save_file = io(module.save_file, "safetensors save_file")
    method = trainer.METHODS["dual_mcmc"]
    trainer.METHODS["dual_mcmc"] = method._replace(step=in_phase(method.step, "step"))
    trainer.save_checkpoint = in_phase(trainer.save_checkpoint, "checkpoint")
    trainer.export_pipeline = in_phase(trainer.export_pipeline, "export")
    trainer.train(run_config(out, overwrite=not resume), resume_from_checkpoint="latest" if resume else None)
    phase.value = PHASES.index("done")


def launch(out, kill_at=None):
    ctx = multiprocessing.get_context("fork")
    shared = {"phase": ctx.Value("i", 0), "io_count": ctx.Value("i", 0), "io_label": ctx.Array("c", 64)}
    resume = bool(list_checkpoints(out))
    proc = ctx.Process(
        target=_child, args=(str(out), resume, kill_at, shared["phase"], shared["io_count"], shared["io_label"])
    )
    proc.start()
    return proc, shared, resume


def check_integrity(out: Path) -> None:
    """Every visible checkpoint and pipeline in ``out`` is complete and loads."""
    root = out / "checkpoints"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith("."):
            continue  # a temporary folder of a killed save or delete
        state, config = read_checkpoint(folder)  # exactly the files its trainer_state.json lists
        assert state["step"] == int(folder.name.split("-")[1]) and config["run"]["max_steps"] == MAX_STEPS
        for file in folder.iterdir():
            if file.suffix == ".safetensors":
                assert load_file(file)
            elif file.suffix == ".pt":
                assert torch.load(file, weights_only=True)
            elif file.suffix == ".json":
                json.loads(file.read_text())
            elif file.suffix == ".yaml":
                yaml.safe_load(file.read_text())
            else:
                assert file.name == "pipeline", file
                check_pipeline_files(file)
    if (out / "pipeline").exists():
        DualMCMCPipeline.from_pretrained(out / "pipeline")
    history = out / "history.jsonl"
    if history.exists():
        lines = history.read_text().split("\n")
        steps = [json.loads(line)["step"] for line in lines[:-1]]  # (the last line may be cut short by the kill)
        assert steps == list(range(1, len(steps) + 1))


def check_pipeline_files(folder: Path) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    for name in ("energy_model", "generator_model", "encoder"):
        assert name in index and json.loads((folder / name / "config.json").read_text())
        assert load_file(folder / name / "model.safetensors")


def weights(pipeline_dir: Path) -> dict:
    return {
        f"{f.parent.name}/{k}": v for f in sorted(pipeline_dir.glob("*/*.safetensors")) for k, v in load_file(f).items()
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    started = time.perf_counter()
    proc, shared, _ = launch(out)
    proc.join(timeout=300)
    assert proc.exitcode == 0
    return out, time.perf_counter() - started, shared["io_count"].value


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted_run(uninterrupted, tmp_path, seed):
    reference, seconds, io_ops = uninterrupted
    rng = random.Random(seed)
    out = tmp_path / "run"
    log = []
    for attempt in range(KILLS_PER_SEED + 1):
        mode = None if attempt == KILLS_PER_SEED else ("timer", "io")[attempt % 2]
        # kill somewhere in what is left to do (from the last checkpoint on), setup included
        done = checkpoint_step(list_checkpoints(out)[-1]) if list_checkpoints(out) else 0
        left = max(0.25, 1 - done / MAX_STEPS)
        kill_at = rng.randint(1, max(1, round(io_ops * left))) if mode == "io" else None
        proc, shared, resumed = launch(out, kill_at)
        if mode == "timer":
            if attempt == 2:  # the first timer kill counts from the start, the second from the first step on
                while proc.is_alive() and shared["phase"].value == 0:
                    time.sleep(0.002)
            proc.join(timeout=rng.uniform(0.0, 0.5 * seconds * left))  # (later runs start faster than the first)
            where = PHASES[shared["phase"].value]
            if proc.is_alive():
                proc.kill()
        proc.join(timeout=300)
        if mode == "io":
            where = shared["io_label"].value.decode() or "(finished first)"
        if mode is None:
            where = "(no kill)"
        steps = (
            [json.loads(x)["step"] for x in (out / "history.jsonl").read_text().split("\n")[:-1]]
            if (out / "history.jsonl").exists()
            else []
        )
        log.append(
            (
                mode or "-",
                "resume" if resumed else "fresh",
                where,
                proc.exitcode,
                max(steps, default=0),
                [c.name.split("-")[1] for c in list_checkpoints(out)],
            )
        )
        assert proc.exitcode in (0, -signal.SIGKILL), log
        check_integrity(out)
        if proc.exitcode == 0:
            break
    assert proc.exitcode == 0, log  # the last attempt was not killed
    print(
        f"\nseed {seed}: {sum(e[3] == -signal.SIGKILL for e in log)} kills, {sum(e[1] == 'resume' for e in log)} "
        f"resumes ({seconds:.1f} s per uninterrupted run, {io_ops} file operations)"
    )
    for mode, how, where, code, step, checkpoints in log:
        print(
            f"  {mode:5s} {how:6s} exit {code:>3}  at {where:45s} history to step {step:2d}, checkpoints {checkpoints}"
        )

    assert any(entry[3] == -signal.SIGKILL for entry in log), log  # the test did kill
    a, b = weights(reference / "pipeline"), weights(out / "pipeline")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "history.jsonl").read_text() == (reference / "history.jsonl").read_text()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "checkpoints",
        "history.jsonl",
        "pipeline",
        "training_config.yaml",
    ]
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-6", "checkpoint-8"]


# ----------------------------------------------------------------------------------------------------------------
# Issue #22: one run per folder (a lock naming its holder, released by the OS when a run is killed), resuming from
# an older checkpoint keeps the newer ones, a trainer_state.json that disagrees with its folder is refused
# ----------------------------------------------------------------------------------------------------------------


def _script_child(argv, err_file):
    """``scripts/train.py``'s ``main(argv)`` in this forked process, its stderr into ``err_file``; exits with its code."""
    after_fork()
    import contextlib
    import sys

    from conftest import load_module

    torch.set_num_threads(1)
    with open(err_file, "w") as err, contextlib.redirect_stderr(err):
        code = load_module("scripts/train.py", "_train_script_child").main([str(a) for a in argv])
    sys.exit(code)


def _train_child(out, max_steps):
    after_fork()
    from conftest import tiny_config

    from hf_dualmcmc.trainer import train

    torch.set_num_threads(1)
    train(tiny_config(out, max_steps=max_steps, checkpoint_every=1, checkpoints_total_limit=1))


def _error_lines(text: str) -> list[str]:
    return [line for line in text.replace("\r", "\n").splitlines() if "error:" in line]


def _history_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "history.jsonl").read_text().splitlines()]


def test_two_runs_started_together_one_runs_the_other_exits_2(tmp_path):
    from conftest import tiny_config

    out = tmp_path / "out"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(out, max_steps=4, checkpoint_every=2).to_dict()))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_script_child, args=(["--config", config], tmp_path / f"err{i}")) for i in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert sorted(proc.exitcode for proc in procs) == [0, 2]
    winner, loser = sorted((0, 1), key=lambda i: procs[i].exitcode)
    errors = _error_lines((tmp_path / f"err{loser}").read_text())
    # refused at the lock while the other runs (or, had the other finished first, as a folder holding another run)
    assert len(errors) == 1 and (
        errors[0].startswith(
            f"error: run.output_dir {out} is in use by another training run (pid {procs[winner].pid} "
            f"on {socket.gethostname()}, started "
        )
        and errors[0].endswith("): wait for it or choose another run.output_dir")
        or errors[0].startswith(f"error: run.output_dir {out} holds another run;")
    ), errors
    assert _history_steps(out) == [1, 2, 3, 4]  # one run's history, nothing interleaved
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    assert not (out / ".hf-dualmcmc.lock.json").exists()  # the holder's name goes with it


def test_second_run_names_the_holder_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    from conftest import load_module, tiny_config

    from hf_dualmcmc.trainer import train

    out = tmp_path / "out"
    holder_file = out / ".hf-dualmcmc.lock.json"
    proc = multiprocessing.get_context("fork").Process(target=_train_child, args=(out, 10_000))
    proc.start()
    deadline = time.monotonic() + 300
    while not (holder_file.exists() and list_checkpoints(out)) and time.monotonic() < deadline and proc.is_alive():
        time.sleep(0.05)
    holder = json.loads(holder_file.read_text())
    assert holder["pid"] == proc.pid and holder["host"] == socket.gethostname()
    # a second run, even one asking to overwrite: one line, exit 2, naming the holder; nothing of the first is moved
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(out, max_steps=1, overwrite_output_dir=True).to_dict()))
    assert load_module("scripts/train.py", "_train_script").main(["--config", str(config)]) == 2
    assert proc.is_alive() and not list(out.glob(".previous-run-*"))
    assert _error_lines(capsys.readouterr().err) == [
        f"error: run.output_dir {out} is in use by another training run (pid {proc.pid} on {socket.gethostname()}, "
        f"started {holder['started']}): wait for it or choose another run.output_dir"
    ]
    # SIGKILL the holder: its holder file is left behind, its lock is not (the OS released the flock)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL and json.loads(holder_file.read_text())["pid"] == proc.pid
    done = checkpoint_step(list_checkpoints(out)[-1])
    result = train(
        tiny_config(out, max_steps=done + 1, checkpoint_every=1, checkpoints_total_limit=1),
        resume_from_checkpoint="latest",
    )
    assert result.step == done + 1 and _history_steps(out) == list(range(1, done + 2))
    assert not holder_file.exists()


def test_resume_from_an_older_checkpoint_keeps_the_newer_ones_aside(tmp_path, caplog):
    from conftest import tiny_config, tree

    from hf_dualmcmc.trainer import train

    out = tmp_path / "out"
    train(tiny_config(out, max_steps=4, checkpoint_every=2, checkpoints_total_limit=0))
    newer = tree(out / "checkpoints" / "checkpoint-4")
    (out / "checkpoints" / ".git").mkdir()  # (a user's entry of checkpoints/: left alone)
    resumed = train(
        tiny_config(out, max_steps=3, checkpoint_every=2, checkpoints_total_limit=0),
        resume_from_checkpoint=str(out / "checkpoints" / "checkpoint-2"),
    )
    assert resumed.step == 3 and _history_steps(out) == [1, 2, 3]
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-3"]
    (aside,) = (out / "checkpoints").glob(".superseded-*")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        ".git",
        aside.name,
        "checkpoint-2",
        "checkpoint-3",
    ]
    assert tree(aside / "checkpoint-4") == newer  # kept byte for byte, and said so
    assert f"the newer checkpoints checkpoint-4 are kept in {aside}" in caplog.text
    read_checkpoint(aside / "checkpoint-4")  # still a complete checkpoint (resumable from there)


def test_trainer_state_whose_step_disagrees_with_its_folder_is_refused(uninterrupted, tmp_path):
    from hf_dualmcmc.trainer import CheckpointError, train

    renamed = tmp_path / "checkpoints" / "checkpoint-8"
    shutil.copytree(uninterrupted[0] / "checkpoints" / "checkpoint-6", renamed)
    message = rf"{renamed / 'trainer_state.json'}: step 6, but the folder is checkpoint-8 \(step 8\)"
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(renamed)
    with pytest.raises(CheckpointError, match=message):
        train(run_config(tmp_path / "new"), resume_from_checkpoint=str(renamed))
    assert not (tmp_path / "new").exists()


def test_kill_between_the_last_save_and_its_rotation_then_resume(tmp_path, monkeypatch):
    """Killed after the last checkpoint is renamed into place but before the rotation deletes the oldest: the resumed
    run has no step left (so no save that would rotate), and still keeps only the newest checkpoints_total_limit."""
    from conftest import tiny_config

    import hf_dualmcmc.checkpointing as checkpointing
    from hf_dualmcmc.trainer import train

    out, real = tmp_path / "out", checkpointing.delete_folder

    def killed_before_deleting(path):
        if path.name == "checkpoint-2":
            raise KeyboardInterrupt("killed before the rotation")
        real(path)

    monkeypatch.setattr(checkpointing, "delete_folder", killed_before_deleting)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(out, max_steps=4, checkpoint_every=2, checkpoints_total_limit=1))
    monkeypatch.setattr(checkpointing, "delete_folder", real)
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    result = train(
        tiny_config(out, max_steps=4, checkpoint_every=2, checkpoints_total_limit=1), resume_from_checkpoint="latest"
    )
    assert result.step == 4 and _history_steps(out) == [1, 2, 3, 4] and (out / "pipeline").is_dir()
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-4"]

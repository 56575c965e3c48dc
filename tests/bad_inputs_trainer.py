"""Rows of tests/test_bad_inputs.py's table (issue #22): trainer.

``cases(h)`` returns rows ``(area, what, call(ws), error type, message regex)``; ``h`` is the test_bad_inputs module, whose
helpers (``h.cli``, ``h._train``, ``h._data``, ``h.V``, ...) and workspace fixture the rows use. A row's call may have a
``prepare(ws)`` attribute that seeds files before the workspace is hashed.

The trainer's rows: output folders holding files of the user under the names a run writes (with and without
``run.overwrite_output_dir``), damaged or tampered run manifests, output folders that are files or overlap the data or
the checkpoint resumed from, checkpoints whose ``trainer_state.json`` disagrees with their folder name, and output
folders locked by another run. Their folders are seeded under ``ws.root / "t22"``.
"""

from __future__ import annotations

import json
import re
import shutil

MANIFEST = ".hf-dualmcmc-run.json"
LOCK, HOLDER = ".hf-dualmcmc.lock", ".hf-dualmcmc.lock.json"
HOLDER_JSON = json.dumps({"pid": 4242, "host": "gpu-box", "started": "2026-01-01 12:00:01", "command": "train.py"})


def _seed(files: dict):
    """A ``prepare(ws)``: ``files`` (path under t22 -> text, or ``callable(ws, path)``), each written once."""

    def prepare(ws):
        for rel, content in files.items():
            path = ws.root / "t22" / rel
            if not (path.exists() or path.is_symlink()):
                path.parent.mkdir(parents=True, exist_ok=True)
                content(ws, path) if callable(content) else path.write_text(content)

    return prepare


def _copy_run(ws, path):
    shutil.copytree(ws.root / "run", path)


def _copy_checkpoint(ws, path, edit=None):
    shutil.copytree(ws.root / "run" / "checkpoints" / "checkpoint-2", path)
    if edit is not None:
        state = json.loads((path / "trainer_state.json").read_text())
        edit(state)
        (path / "trainer_state.json").write_text(json.dumps(state))


def _rename_latest(ws, path):
    _copy_run(ws, path)
    (path / "checkpoints" / "checkpoint-2").rename(path / "checkpoints" / "checkpoint-7")


def _manifest(*entries, fmt="hf-dualmcmc-run/1"):
    return json.dumps({"format": fmt, "entries": list(entries)})


def cases(h) -> list[tuple]:
    E = h.ExitCode

    def png(ws, path):
        h._png(path)

    def train(*argv, config="fresh.yaml", seed=None, locked=None):
        """scripts/train.py with ``argv`` (in which ``@@`` stands for ``ws.root/`` and ``@`` for ``ws.root/t22/``);
        ``locked``: a folder under t22 whose lock this process holds during the call (as another run would)."""

        def path(ws, a):
            return re.sub("@@?", lambda m: f"{ws.root}/" + ("" if m[0] == "@@" else "t22/"), a)

        def call(ws):
            args = ["--config", ws.root / config, *(path(ws, a) for a in argv)]
            if locked is None:
                return h.cli("train", *args)
            from filelock import FileLock

            with FileLock(ws.root / "t22" / locked / LOCK, timeout=0):
                h.cli("train", *args)

        if seed:
            call.prepare = _seed(seed)
        return call

    def to(folder, *argv, **kw):  # a fresh run into t22/<folder>
        return train("--output_dir", f"@{folder}", *argv, **kw)

    foreign = "that this trainer did not write .not listed in .hf-dualmcmc-run.json.; nothing there is overwritten"
    ckpt = "@@run/checkpoints/checkpoint-2"
    return [
        # --- files of the user under the names a run writes: refused before anything is written ------------------
        (
            "trainer",
            "a user's history.jsonl in output_dir",
            to("u-history", seed={"u-history/history.jsonl": "{}\n"}),
            E,
            f"exit 2: error: run.output_dir .*u-history holds history.jsonl {foreign}",
        ),
        (
            "trainer",
            "a user's training_config.yaml in output_dir",
            to("u-config", seed={"u-config/training_config.yaml": "lr: 1\n"}),
            E,
            f"holds training_config.yaml {foreign}",
        ),
        (
            "trainer",
            "a user's samples/ in output_dir",
            to("u-samples", seed={"u-samples/samples/x.png": "png"}),
            E,
            f"u-samples holds samples {foreign}",
        ),
        (
            "trainer",
            "a user's logs/ in output_dir",
            to("u-logs", seed={"u-logs/logs/notes.txt": "notes"}),
            E,
            f"u-logs holds logs {foreign}",
        ),
        (
            "trainer",
            "a user's pipeline/ in output_dir",
            to("u-pipe", seed={"u-pipe/pipeline/model_index.json": "{}"}),
            E,
            f"u-pipe holds pipeline {foreign}",
        ),
        (
            "trainer",
            "a user's checkpoints/ in output_dir",
            to("u-ckpt", seed={"u-ckpt/checkpoints/mine.ckpt": "weights"}),
            E,
            f"u-ckpt holds checkpoints {foreign}",
        ),
        (
            "trainer",
            "overwrite_output_dir on user's samples/ and logs/ (no run of ours)",
            to(
                "u-two",
                "run.overwrite_output_dir=true",
                seed={"u-two/samples/x.png": "png", "u-two/logs/notes.txt": "notes", "u-two/keep.txt": "mine"},
            ),
            E,
            f"u-two holds samples, logs {foreign}",
        ),
        (
            "trainer",
            "--overwrite_output_dir on a user's history.jsonl and training_config.yaml",
            to(
                "u-hist-cfg",
                "--overwrite_output_dir",
                seed={"u-hist-cfg/history.jsonl": "{}\n", "u-hist-cfg/training_config.yaml": "a: 1\n"},
            ),
            E,
            f"holds history.jsonl, training_config.yaml {foreign}",
        ),
        (
            "trainer",
            "overwrite_output_dir on a run of ours with a user's checkpoints/.git",
            to(
                "git-run",
                "run.overwrite_output_dir=true",
                seed={"git-run": _copy_run, "git-run/checkpoints/.git/config": "[core]\n"},
            ),
            E,
            f"git-run holds checkpoints/.git {foreign}",
        ),
        (
            "trainer",
            "overwrite_output_dir on a run of ours with a user's logs/",
            to(
                "logs-run",
                "run.overwrite_output_dir=true",
                seed={"logs-run": _copy_run, "logs-run/logs/notes.txt": "n"},
            ),
            E,
            f"logs-run holds logs {foreign}",
        ),
        (
            "trainer",
            "resume latest in a run of ours with a user's samples/",
            train(
                "--resume_from_checkpoint",
                "latest",
                "--output_dir",
                "@smp-run",
                "run.max_steps=3",
                config="run.yaml",
                seed={"smp-run": _copy_run, "smp-run/samples/mine.png": "png"},
            ),
            E,
            f"smp-run holds samples {foreign}",
        ),
        (
            "trainer",
            "resume into a folder with a user's history.jsonl",
            train(
                "--resume_from_checkpoint",
                ckpt,
                "--output_dir",
                "@u-history",
                "run.max_steps=3",
                config="run.yaml",
                seed={"u-history/history.jsonl": "{}\n"},
            ),
            E,
            f"u-history holds history.jsonl {foreign}",
        ),
        # --- the manifest: only a manifest of ours lists what overwrite may set aside -----------------------------
        (
            "trainer",
            "overwrite_output_dir with a manifest that is not JSON",
            to(
                "m-garbage",
                "run.overwrite_output_dir=true",
                seed={f"m-garbage/{MANIFEST}": "{entries: [", "m-garbage/history.jsonl": "{}\n"},
            ),
            E,
            r"m-garbage/\.hf-dualmcmc-run\.json: not a run manifest of format 'hf-dualmcmc-run/1'",
        ),
        (
            "trainer",
            "overwrite_output_dir with a manifest listing the user's data/",
            to(
                "m-data",
                "run.overwrite_output_dir=true",
                seed={f"m-data/{MANIFEST}": _manifest("history.jsonl", "data"), "m-data/data/x.png": "png"},
            ),
            E,
            r"m-data/\.hf-dualmcmc-run\.json: not a run manifest .* this trainer did not write it",
        ),
        (
            "trainer",
            "overwrite_output_dir with a manifest listing ../",
            to("m-up", "run.overwrite_output_dir=true", seed={f"m-up/{MANIFEST}": _manifest("..", "checkpoints")}),
            E,
            r"m-up/\.hf-dualmcmc-run\.json: not a run manifest",
        ),
        (
            "trainer",
            "a manifest of another format",
            to("m-fmt", seed={f"m-fmt/{MANIFEST}": _manifest(fmt="other/2")}),
            E,
            r"m-fmt/\.hf-dualmcmc-run\.json: not a run manifest of format 'hf-dualmcmc-run/1'",
        ),
        (
            "trainer",
            "resume into a folder holding another run (its manifest)",
            train(
                "--resume_from_checkpoint",
                ckpt,
                "--output_dir",
                "@other-run",
                "run.max_steps=3",
                config="run.yaml",
                seed={f"other-run/{MANIFEST}": _manifest("history.jsonl"), "other-run/history.jsonl": "{}\n"},
            ),
            E,
            "other-run holds another run than the checkpoint .*checkpoint-2; resume into the checkpoint's own",
        ),
        # --- where the output goes: a folder, apart from the data and the checkpoint it resumes from --------------
        (
            "trainer",
            "output_dir that is a file",
            train("--output_dir", "@@stats.npz"),
            E,
            r"exit 2: error: run.output_dir .*stats.npz: .*stats.npz is not a folder",
        ),
        (
            "trainer",
            "output_dir below a file",
            train("--output_dir", "@@stats.npz/out"),
            E,
            r"run.output_dir .*stats.npz/out: .*stats.npz is not a folder",
        ),
        (
            "trainer",
            "output_dir equal to the image folder of data.source",
            train("--output_dir", "@images", "data.source=@images", seed={"images/a.png": png}),
            E,
            "run.output_dir .*images and data.source .*images overlap",
        ),
        (
            "trainer",
            "output_dir inside the image folder of data.source",
            train("--output_dir", "@images/out", "data.source=@images", seed={"images/a.png": png}),
            E,
            "images/out and data.source .*images overlap",
        ),
        (
            "trainer",
            "data.source inside output_dir",
            train("--output_dir", "@proj", "data.source=@proj/imgs", seed={"proj/imgs/a.png": png}),
            E,
            "proj and data.source .*proj/imgs overlap",
        ),
        (
            "trainer",
            "data.source mnist:<output_dir>",
            train("--output_dir", "@mnist", "data.source=mnist:@mnist", seed={"mnist/README": "idx"}),
            E,
            "mnist and data.source mnist:.*mnist overlap",
        ),
        (
            "trainer",
            "a parquet file of data.source inside output_dir",
            train("--output_dir", "@@data", "data.source=@@data/text.parquet"),
            E,
            r"data and data.source .*text\.parquet overlap",
        ),
        (
            "trainer",
            "output_dir equal to the checkpoint resumed from",
            train("--resume_from_checkpoint", ckpt, "--output_dir", ckpt, "run.max_steps=3", config="run.yaml"),
            E,
            "run.output_dir .*checkpoint-2 is inside the checkpoint .*checkpoint-2 it resumes from",
        ),
        (
            "trainer",
            "output_dir inside the checkpoint resumed from",
            train(
                "--resume_from_checkpoint", ckpt, "--output_dir", ckpt + "/out", "run.max_steps=3", config="run.yaml"
            ),
            E,
            "run.output_dir .*checkpoint-2/out is inside the checkpoint",
        ),
        # --- checkpoints whose trainer_state.json disagrees with the folder ---------------------------------------
        (
            "trainer",
            "a checkpoint-2 renamed checkpoint-5",
            train(
                "--resume_from_checkpoint",
                "@renamed/checkpoint-5",
                "--output_dir",
                "@renamed-out",
                "run.max_steps=6",
                config="run.yaml",
                seed={"renamed/checkpoint-5": _copy_checkpoint},
            ),
            h.ExitCode,
            r"exit 2: error: .*checkpoint-5/trainer_state.json: step 2, but the folder is checkpoint-5 \(step 5\)",
        ),
        (
            "trainer",
            "latest: a checkpoint-2 renamed checkpoint-7",
            train(
                "--resume_from_checkpoint",
                "latest",
                "--output_dir",
                "@renamed-latest",
                "run.max_steps=9",
                config="run.yaml",
                seed={"renamed-latest": _rename_latest},
            ),
            E,
            r"checkpoint-7/trainer_state.json: step 2, but the folder is checkpoint-7 \(step 7\)",
        ),
        (
            "trainer",
            "a trainer_state.json whose step is true",
            train(
                "--resume_from_checkpoint",
                "@bool-step/checkpoint-1",
                "--output_dir",
                "@bool-out",
                config="run.yaml",
                seed={"bool-step/checkpoint-1": lambda ws, p: _copy_checkpoint(ws, p, lambda s: s.update(step=True))},
            ),
            E,
            r"checkpoint-1/trainer_state.json: not a trainer state of format",
        ),
        # --- one run per folder: a locked output_dir is refused, naming the holder; nothing is touched ------------
        (
            "trainer",
            "output_dir locked by another run",
            to("busy", locked="busy", seed={f"busy/{LOCK}": "", f"busy/{HOLDER}": HOLDER_JSON}),
            E,
            r"exit 2: error: run.output_dir .*busy is in use by another training run \(pid 4242 on gpu-box, started "
            r"2026-01-01 12:00:01\): wait for it or choose another run.output_dir$",
        ),
        (
            "trainer",
            "output_dir locked, the holder not named yet",
            to("busy-anon", locked="busy-anon", seed={f"busy-anon/{LOCK}": ""}),
            E,
            r"busy-anon is in use by another training run \(holder unknown: .hf-dualmcmc.lock.json is missing",
        ),
        (
            "trainer",
            "overwrite_output_dir on a run of ours that is running",
            to(
                "busy-run",
                "run.overwrite_output_dir=true",
                locked="busy-run",
                seed={"busy-run": _copy_run, f"busy-run/{HOLDER}": HOLDER_JSON},
            ),
            E,
            r"busy-run is in use by another training run \(pid 4242 on gpu-box",
        ),
        (
            "trainer",
            "resume latest in a run that is running",
            train(
                "--resume_from_checkpoint",
                "latest",
                "--output_dir",
                "@busy-resume",
                "run.max_steps=3",
                config="run.yaml",
                locked="busy-resume",
                seed={"busy-resume": _copy_run, f"busy-resume/{HOLDER}": HOLDER_JSON},
            ),
            E,
            r"busy-resume is in use by another training run \(pid 4242 on gpu-box",
        ),
    ]

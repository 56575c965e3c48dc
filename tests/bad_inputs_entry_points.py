"""Rows of tests/test_bad_inputs.py's table (issue #22): entry_points.

``cases(h)`` returns rows ``(area, what, call(ws), error type, message regex)``; ``h`` is the test_bad_inputs module, whose
helpers (``h.cli``, ``h._train``, ``h._data``, ``h.V``, ...) and workspace fixture the rows use. A row's call may have a
``prepare(ws)`` attribute that seeds files before the workspace is hashed.

The rows here: the ownership of what the converter, the exporter, evaluate.py and sample.py write (an output equal to,
inside or containing an input; a folder or file this project did not write), the pipelines of the baseline teaching
methods in evaluate.py, sample.py and the app, and refused pickles (``UnsafePickleError``, never torch's advice).
"""

from __future__ import annotations

import json
import pickle
import shutil

import PIL.Image
import torch
from conftest import SystemPayload  # a pickle whose loading would run os.system


def _seeded(prepare):
    """A row's call with ``prepare(ws)`` (seeding files before the workspace is hashed)."""

    def wrap(call):
        call.prepare = prepare
        return call

    return wrap


def _pipeline_copy(name, extra):
    """``prepare``: a copy of the workspace pipeline at ``ws.root / "owned" / name`` with ``extra(folder)`` added."""

    def prepare(ws):
        target = ws.root / "owned" / name
        if not target.exists():
            shutil.copytree(ws.pipeline, target)
            extra(target)
        return target

    return prepare


def _git(folder):
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def _other_class(folder):
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))


def _file(name, data=b"user data\n"):
    def prepare(ws):
        path = ws.root / "user" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if data is None:
                path.mkdir()
            elif data == "png":
                PIL.Image.new("RGB", (4, 4), "red").save(path)
            else:
                path.write_bytes(data)
        return path

    return prepare


def _system_checkpoint(name, protocol=None):
    def prepare(ws):
        path = ws.ckpt / name
        if not path.exists():
            payload = {"netG": {}, "netE": {}, "netI": {}, "payload": SystemPayload(ws.root / "MARKER")}
            if protocol is None:
                torch.save(payload, path)
            else:
                path.write_bytes(pickle.dumps(payload, protocol=protocol))
        return path

    return prepare


def save_baseline(method, folder):
    """Save a tiny pipeline (8x8 grey) of teaching method ``method`` to ``folder``, built as the trainer exports it
    (tests/test_baselines.py): short_run has no generator or encoder, cooperative no encoder, inference_only no
    energy model."""
    from hf_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel, configs_for_image_size
    from hf_dualmcmc.trainer import build_pipeline
    from hf_dualmcmc.training import METHODS
    from hf_dualmcmc.training_config import SamplerSettings, TeachingConfig

    torch.manual_seed(0)
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=4)
    nets = {
        "energy": DualMCMCEnergyModel(e),
        "generator": DualMCMCGeneratorModel(g),
        "encoder": DualMCMCEncoderModel(i),
    }
    used = {k: (v if k in METHODS[method].networks else None) for k, v in nets.items()}
    build_pipeline(
        used["energy"],
        used["generator"],
        used["encoder"],
        SamplerSettings(num_inference_steps=2),
        TeachingConfig(method=method),
    ).save_pretrained(folder)
    return folder


def _baseline(method):
    """``prepare``: :func:`save_baseline` at ``ws.root / "baselines" / method``."""

    def prepare(ws):
        target = ws.root / "baselines" / method
        return target if target.exists() else save_baseline(method, target)

    return prepare


def _demo(method):
    from conftest import load_module

    from hf_dualmcmc import DualMCMCPipeline

    def run(ws, call):
        app = load_module("app.py", "_bad_inputs_app")
        return call(app.Demo(DualMCMCPipeline.from_pretrained(_baseline(method)(ws))))

    return run


def cases(h) -> list[tuple]:
    import gradio as gr

    from hf_dualmcmc.serialization import UnsafePickleError

    E = h.ExitCode
    not_ours = r"holds files hf-dualmcmc did not write \("

    def convert(name, out, *argv, prepare=None):
        call = lambda ws: h.cli("convert_official_checkpoint", ws.ckpt / name, out(ws), *argv)  # noqa: E731
        return _seeded(prepare)(call) if prepare else call

    def export(source, out, *argv, prepare=None):
        call = lambda ws: h.cli("export_for_hub", source(ws), out(ws), *argv)  # noqa: E731
        return _seeded(prepare)(call) if prepare else call

    def evaluate(
        *argv, pipeline=lambda ws: ws.pipeline, out=lambda ws: ws.root / "eval-out", metrics="recon", prepare=None
    ):
        def call(ws):
            args = [a(ws) if callable(a) else a for a in argv]
            h.cli(
                "evaluate", "--pipeline", pipeline(ws), "--out", out(ws), "--metrics", metrics, "--no-progress", *args
            )

        return _seeded(prepare)(call) if prepare else call

    def card(path, prepare=None):
        return evaluate("--model-card", path, "--dataset-name", "Digits", "--dataset-type", "digits", prepare=prepare)

    def sample(*argv, pipeline=lambda ws: ws.pipeline, out=lambda ws: ws.root / "grid.png", prepare=None):
        def call(ws):
            h.cli("sample", "--pipeline", pipeline(ws), "--out", out(ws), "--num", 2, *argv)

        return _seeded(prepare)(call) if prepare else call

    def baseline_eval(method, metrics, *argv):
        return evaluate(*argv, pipeline=_baseline(method), metrics=metrics, prepare=_baseline(method))

    def app_call(method, call):
        run = _demo(method)
        return _seeded(_baseline(method))(lambda ws: run(ws, call))

    ckpt = lambda ws: ws.ckpt  # noqa: E731
    owned = _pipeline_copy
    return [
        # --- converter: an output that is, contains or lies inside its input; folders it did not write ----------------
        (
            "converter",
            "--overwrite into the checkpoint's own folder",
            convert("keys.pth", ckpt, "--overwrite"),
            E,
            r"exit 2: error: output directory .*ckpt' contains the input .*keys\.pth'; nothing was written",
        ),
        (
            "converter",
            "output = the checkpoint file",
            convert("keys.pth", lambda ws: ws.ckpt / "keys.pth", "--overwrite"),
            E,
            r"exit 2: error: output directory .*keys\.pth' is the input",
        ),
        (
            "converter",
            "output inside the checkpoint path",
            convert("keys.pth", lambda ws: ws.ckpt / "keys.pth" / "out", "--overwrite"),
            E,
            "is inside the input",
        ),
        (
            "converter",
            "--overwrite onto a training run",
            convert("keys.pth", lambda ws: ws.run, "--overwrite"),
            E,
            not_ours + r".*checkpoints/, .*history\.jsonl",
        ),
        (
            "converter",
            "--overwrite onto a pipeline folder holding .git",
            convert("keys.pth", lambda ws: ws.root / "owned" / "git", "--overwrite", prepare=owned("git", _git)),
            E,
            not_ours + r"\.git/\)",
        ),
        (
            "converter",
            "--overwrite onto a pipeline folder holding notes.txt",
            convert(
                "keys.pth",
                lambda ws: ws.root / "owned" / "notes",
                "--overwrite",
                prepare=owned("notes", lambda d: (d / "notes.txt").write_text("mine")),
            ),
            E,
            not_ours + r"notes\.txt\)",
        ),
        (
            "converter",
            "--overwrite onto a component folder holding a user file",
            convert(
                "keys.pth",
                lambda ws: ws.root / "owned" / "component",
                "--overwrite",
                prepare=owned("component", lambda d: (d / "energy_model" / "best.pth").write_bytes(b"x")),
            ),
            E,
            not_ours + r"energy_model/best\.pth\)",
        ),
        (
            "converter",
            "--overwrite onto another library's pipeline",
            convert(
                "keys.pth", lambda ws: ws.root / "owned" / "ddpm", "--overwrite", prepare=owned("ddpm", _other_class)
            ),
            E,
            not_ours + r".*model_index\.json",
        ),
        (
            "converter",
            "--overwrite onto the data folder",
            convert("keys.pth", lambda ws: ws.data, "--overwrite"),
            E,
            not_ours + r"empty\.parquet, float\.npz",
        ),
        (
            "converter",
            "output = an existing file",
            convert("keys.pth", lambda ws: ws.root / "stats.npz", "--overwrite"),
            E,
            r"stats\.npz' exists and is not a folder",
        ),
        (
            "converter",
            "output = a user folder, no --overwrite",
            convert("keys.pth", lambda ws: ws.data),
            E,
            r"data' exists; pass overwrite=True",
        ),
        # --- refused pickles: UnsafePickleError naming the call, never torch's advice ---------------------------------
        (
            "converter",
            "a checkpoint whose pickle calls os.system",
            convert("system.pth", lambda ws: ws.root / "converted", prepare=_system_checkpoint("system.pth")),
            E,
            r"exit 2: error: official checkpoint .*system\.pth' was refused: loading it would import and run Python code \(posix\.system",
        ),
        (
            "converter",
            "an os.system pickle of protocol 4 (torch stops before the global)",
            convert("system4.pth", lambda ws: ws.root / "converted", prepare=_system_checkpoint("system4.pth", 4)),
            E,
            r"system4\.pth' was refused: .*Python code \(posix\.system",
        ),
        (
            "converter",
            "no message repeats torch's weights_only advice",
            convert("truncated.pth", lambda ws: ws.root / "converted"),
            E,
            r"(?s)^(?!.*weights_only)exit 2: error: .*truncated",
        ),
        (
            "serialization",
            "an os.system pickle is an UnsafePickleError",
            _seeded(_system_checkpoint("system.pth"))(
                lambda ws: __import__("hf_dualmcmc.convert", fromlist=["x"]).load_official_checkpoint(
                    ws.ckpt / "system.pth"
                )
            ),
            UnsafePickleError,
            r"system\.pth' was refused: .*posix\.system",
        ),
        (
            "serialization",
            "an open() pickle is an UnsafePickleError",
            lambda ws: __import__("hf_dualmcmc.convert", fromlist=["x"]).load_official_checkpoint(
                ws.ckpt / "payload.pth"
            ),
            UnsafePickleError,
            r"payload\.pth' was refused: loading it would import and run Python code \(.*open",
        ),
        # --- exporter ----------------------------------------------------------------------------------------------
        (
            "export",
            "RUN/pipeline into RUN --overwrite",
            export(lambda ws: ws.run / "pipeline", lambda ws: ws.run, "--overwrite"),
            E,
            r"exit 2: error: output directory .*run' contains the input .*pipeline'",
        ),
        (
            "export",
            "into a component folder of its source",
            export(lambda ws: ws.pipeline, lambda ws: ws.pipeline / "energy_model", "--overwrite"),
            E,
            "is inside the input",
        ),
        (
            "export",
            "--overwrite onto a run's checkpoints",
            export(lambda ws: ws.pipeline, lambda ws: ws.run / "checkpoints", "--overwrite"),
            E,
            not_ours + "checkpoint-2/",
        ),
        (
            "export",
            "in place, the folder holding .git",
            export(
                lambda ws: ws.root / "owned" / "git",
                lambda ws: ws.root / "owned" / "git",
                "--overwrite",
                prepare=owned("git", _git),
            ),
            E,
            not_ours + r"\.git/\)",
        ),
        (
            "export",
            "--overwrite onto another library's pipeline",
            export(
                lambda ws: ws.pipeline,
                lambda ws: ws.root / "owned" / "ddpm",
                "--overwrite",
                prepare=owned("ddpm", _other_class),
            ),
            E,
            not_ours,
        ),
        (
            "export",
            "output = an existing file",
            export(lambda ws: ws.pipeline, lambda ws: ws.root / "run.yaml", "--overwrite"),
            E,
            r"run\.yaml' exists and is not a folder",
        ),
        # --- evaluate.py: --model-card only writes a card, --out only its own files, never into an input --------------
        (
            "evaluate.py",
            "--model-card model_index.json",
            card(lambda ws: ws.pipeline / "model_index.json"),
            E,
            r"exit 2: error: model card .*model_index\.json': expected a README\.md",
        ),
        (
            "evaluate.py",
            "--model-card a README without front matter",
            card(lambda ws: ws.root / "user" / "README.md", prepare=_file("README.md", b"# my project\n")),
            E,
            r"README\.md' exists and is not a model card \(no YAML front matter\)",
        ),
        (
            "evaluate.py",
            "--model-card a binary .md file",
            card(lambda ws: ws.root / "user" / "blob.md", prepare=_file("blob.md", b"---\n\xff\xfe\n---\n")),
            E,
            r"blob\.md' is not a readable model card",
        ),
        (
            "evaluate.py",
            "--model-card in a folder that does not exist",
            card(lambda ws: ws.root / "nowhere" / "README.md"),
            E,
            r"folder .*nowhere' does not exist",
        ),
        (
            "evaluate.py",
            "--out = the pipeline folder",
            evaluate(out=lambda ws: ws.pipeline),
            E,
            r"exit 2: error: --out .*pipeline' is the input",
        ),
        (
            "evaluate.py",
            "--out inside the pipeline folder",
            evaluate(out=lambda ws: ws.pipeline / "eval"),
            E,
            r"--out .*eval' is inside the input",
        ),
        (
            "evaluate.py",
            "--out = the folder holding the pipeline",
            evaluate(out=lambda ws: ws.root),
            E,
            r"--out .* contains the input .*pipeline'",
        ),
        (
            "evaluate.py",
            "--out inside the held-out images",
            evaluate("--recon-data", lambda ws: ws.data / "large", out=lambda ws: ws.data / "large" / "eval"),
            E,
            r"--out .*eval' is inside the input .*large'",
        ),
        (
            "evaluate.py",
            "--out = a training run",
            evaluate(out=lambda ws: ws.run),
            E,
            r"--out .*run' holds files an evaluation does not write \(.*checkpoints, .*history\.jsonl",
        ),
        (
            "evaluate.py",
            "--out = an existing file",
            evaluate(out=lambda ws: ws.root / "stats.npz"),
            E,
            r"--out .*stats\.npz' exists and is not a folder",
        ),
        (
            "evaluate.py",
            "--cache-dir inside the pipeline folder",
            evaluate("--cache-dir", lambda ws: ws.pipeline / "c"),
            E,
            r"--cache_dir .*c' is inside the input",
        ),
        # --- evaluate.py on the baselines' pipelines -----------------------------------------------------------------
        (
            "evaluate.py",
            "interp on a short-run pipeline (no generator)",
            baseline_eval("short_run", "interp"),
            E,
            r"exit 2: error: this pipeline has only energy_model: interp needs a generator_model; metrics it can do: "
            r"fid,is,domain_fd,profile,ablation,ood",
        ),
        (
            "evaluate.py",
            "recon on a short-run pipeline (no encoder)",
            baseline_eval("short_run", "recon"),
            E,
            "recon needs an encoder",
        ),
        (
            "evaluate.py",
            "recon on a cooperative pipeline",
            baseline_eval("cooperative", "recon,profile"),
            E,
            r"only energy_model, generator_model: recon needs an encoder;",
        ),
        (
            "evaluate.py",
            "profile on an inference-only pipeline",
            baseline_eval("inference_only", "profile"),
            E,
            r"only generator_model, encoder: profile needs an energy_model",
        ),
        (
            "evaluate.py",
            "ablation on an inference-only pipeline",
            baseline_eval("inference_only", "ablation"),
            E,
            "ablation needs an energy_model",
        ),
        (
            "evaluate.py",
            "--steps 3 on an inference-only pipeline",
            baseline_eval("inference_only", "recon", "--steps", 3),
            E,
            "--steps needs an energy_model",
        ),
        # --- sample.py ------------------------------------------------------------------------------------------------
        (
            "sample.py",
            "a pipeline that does not exist",
            sample(pipeline=lambda ws: ws.root / "nowhere"),
            E,
            r"exit 2: error: .*nowhere",
        ),
        (
            "sample.py",
            "--out a file that is not an image (suffix)",
            sample(out=lambda ws: ws.root / "run.yaml"),
            E,
            r"exit 2: error: --out .*run\.yaml': expected an image file name",
        ),
        (
            "sample.py",
            "--out an existing image without --overwrite",
            sample(out=lambda ws: ws.root / "user" / "old.png", prepare=_file("old.png", "png")),
            E,
            r"old\.png' exists; pass --overwrite",
        ),
        (
            "sample.py",
            "--overwrite on a .png that is not an image",
            sample("--overwrite", out=lambda ws: ws.root / "user" / "fake.png", prepare=_file("fake.png")),
            E,
            r"fake\.png' exists and is not an image; --overwrite replaces only an image",
        ),
        (
            "sample.py",
            "--out inside the pipeline folder",
            sample(out=lambda ws: ws.pipeline / "samples.png"),
            E,
            r"--out .*samples\.png' is inside the input",
        ),
        (
            "sample.py",
            "--out in a folder that does not exist",
            sample(out=lambda ws: ws.root / "nowhere" / "g.png"),
            E,
            r"folder .*nowhere' does not exist",
        ),
        (
            "sample.py",
            "--out a folder",
            sample("--overwrite", out=lambda ws: ws.root / "user" / "dir.png", prepare=_file("dir.png", None)),
            E,
            "is not a regular file",
        ),
        ("sample.py", "--num 0", sample("--num", 0), E, "exit 2: .*--num must be >= 1, got 0"),
        (
            "sample.py",
            "--step_size nan",
            sample("--step_size", "nan"),
            E,
            "exit 2: error: step_size must be a finite number > 0, got nan",
        ),
        (
            "sample.py",
            "--steps 3 on an inference-only pipeline",
            sample("--steps", 3, pipeline=_baseline("inference_only"), prepare=_baseline("inference_only")),
            E,
            "exit 2: error: this pipeline has no energy_model",
        ),
        # --- the app on the baselines' pipelines (gr.Error: a message in the page) -----------------------------------
        (
            "app",
            "interpolate on a short-run pipeline",
            app_call("short_run", lambda d: d.interpolate(0, 1, 3, 2)),
            gr.Error,
            "this pipeline has no generator .*: there are no latents to interpolate",
        ),
        (
            "app",
            "interpolate with Langevin steps on an inference-only pipeline",
            app_call("inference_only", lambda d: d.interpolate(0, 1, 3, 2)),
            gr.Error,
            "no energy model .*: no Langevin steps; set the steps to 0",
        ),
        (
            "app",
            "a pipeline folder that does not exist",
            lambda ws: (
                __import__("conftest").load_module("app.py", "_bad_inputs_app").load_demo(str(ws.root / "nowhere"))
            ),
            OSError,
            "nowhere",
        ),
    ]

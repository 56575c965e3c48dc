"""Bad inputs across the project, one table (issue #11): each row's error type and message, and no file changed.

Every row runs against one workspace (a saved pipeline, a finished training run, data files, checkpoints, weights)
whose files are hashed before and after the call: a refused input must leave every byte and every file name as it
was (no half-written output folder, no rewritten checkpoint, no "repaired" file). Rows for command-line scripts call
their ``main(argv)`` in-process and expect exit code 2 (argparse: its usage error) with one ``error: ...`` line.
The table is printed in docs/RELIABILITY.md (``python tests/test_bad_inputs.py`` prints it as markdown).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import yaml
from conftest import (
    MarkerPayload,  # a pickle whose loading would create its marker file
    load_module,
    tiny_config,
)

NAN, INF = float("nan"), float("inf")


def _script(name: str):
    return load_module(f"scripts/{name}.py", f"_bad_inputs_{name}").main


class ExitCode(Exception):
    """A script's non-zero exit: ``str()`` is ``"exit <code>: <what it printed on stderr>"``."""


def cli(script: str, *argv) -> None:
    """Run ``scripts/<script>.py`` with ``argv`` in-process; a non-zero exit raises :class:`ExitCode`."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = _script(script)([str(a) for a in argv])
        except SystemExit as stop:  # argparse
            code = stop.code if isinstance(stop.code, int) else 2
    if code:  # the error line (progress bars may share stderr)
        lines = [line for line in err.getvalue().replace("\r", "\n").splitlines() if "error:" in line]
        raise ExitCode(f"exit {code}: {' '.join((lines[-1] if lines else err.getvalue()).split())}")


# ----------------------------------------------------------------------------------------------------------------
# The workspace
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Workspace:
    root: Path
    pipe: object  # a DualMCMCPipeline (16x16 RGB, latent_dim 8), saved in root / "pipeline"

    def __getattr__(self, name):  # ws.pipeline, ws.run, ws.data, ... are folders of the workspace
        return self.root / name


def _png(path: Path, size=(8, 8), mode="L", value=128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.new(mode, size, value).save(path)
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    import datasets
    from inception_weights import save_random_inception_weights

    from hf_dualmcmc import (
        DualMCMCEncoderModel,
        DualMCMCEnergyModel,
        DualMCMCGeneratorModel,
        DualMCMCPipeline,
        configs_for_image_size,
    )
    from hf_dualmcmc.trainer import train

    root = tmp_path_factory.mktemp("workspace")
    torch.manual_seed(0)
    e, g, i = configs_for_image_size(16, 3, latent_dim=8, ngf=16, ndf=16, nif=8)
    pipe = DualMCMCPipeline(
        DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i), num_inference_steps=2
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(root / "pipeline")
    # a finished training run (a checkpoint, an exported pipeline) and its config; a config for a fresh run
    config = tiny_config(root / "run", max_steps=2, checkpoint_every=2)
    (root / "run.yaml").write_text(yaml.safe_dump(config.to_dict()))
    (root / "fresh.yaml").write_text(yaml.safe_dump(tiny_config(root / "new-run", max_steps=2).to_dict()))
    train(config)
    # data: an imagefolder with a truncated PNG, an image too large for resize=pad, parquet files, npz files
    for k in range(3):
        _png(root / "data" / "truncated" / f"img{k}.png", value=40 * k)
    broken = root / "data" / "truncated" / "img0.png"
    broken.write_bytes(broken.read_bytes()[:30])
    _png(root / "data" / "large" / "big.png", size=(40, 40))
    datasets.Dataset.from_dict({"text": ["a", "b"]}).to_parquet(str(root / "data" / "text.parquet"))
    datasets.Dataset.from_dict({"image": []}, features=datasets.Features({"image": datasets.Image()})).to_parquet(
        str(root / "data" / "empty.parquet")
    )
    np.savez(root / "data" / "float.npz", images=np.zeros((2, 8, 8), np.float32))
    with open(root / "data" / "pickled.npz", "wb") as f:
        pickle.dump(MarkerPayload(root / "MARKER"), f)
    (root / "data" / "no-mnist").mkdir()
    # the authors' checkpoint format, damaged in several ways; Inception weights with another hash
    (root / "ckpt").mkdir()
    (root / "ckpt" / "empty.pth").write_bytes(b"")
    torch.save({"epoch": 3, "netG": {"w": torch.zeros(2)}}, root / "ckpt" / "keys.pth")
    good = io.BytesIO()
    torch.save({"netG": {}, "netE": {}, "netI": {}}, good)
    (root / "ckpt" / "truncated.pth").write_bytes(good.getvalue()[:100])
    torch.save(
        {"netG": {}, "netE": {}, "netI": {}, "payload": MarkerPayload(root / "MARKER")}, root / "ckpt" / "payload.pth"
    )
    (root / "ckpt" / "list.pth").write_bytes(pickle.dumps([1, 2, 3]))
    save_random_inception_weights(root / "inception" / "weights-inception-2015-12-05-6726825d.pth")
    np.savez(root / "stats.npz", mu=np.zeros(3), sigma=np.eye(3))
    return Workspace(root, pipe)


def digest(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: relative path -> SHA-256 (folders: ``"dir"``)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "__pycache__" in rel:
            continue
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _damaged_copy(ws: Workspace, name: str, damage: Callable[[Path], None]) -> Path:
    """A copy of the saved pipeline with ``damage`` applied, in the workspace (made before the files are hashed)."""
    target = ws.root / "damaged" / name
    if not target.exists():
        shutil.copytree(ws.pipeline, target)
        damage(target)
    return target


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-64])


def _seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# The table: (area, what, call(ws), error type, message regex)
# ----------------------------------------------------------------------------------------------------------------


def _call(**kwargs):
    return lambda ws: ws.pipe(**kwargs)


def _recon(**kwargs):
    return lambda ws: ws.pipe.reconstruct(**kwargs)


def _build(**kwargs):
    def run(ws):
        from hf_dualmcmc import DualMCMCPipeline

        DualMCMCPipeline(ws.pipe.energy_model, ws.pipe.generator_model, **kwargs)

    return run


def _load(name, damage):
    def run(ws):
        from hf_dualmcmc import DualMCMCPipeline

        DualMCMCPipeline.from_pretrained(_damaged_copy(ws, name, damage))

    run.prepare = lambda ws: _damaged_copy(ws, name, damage)
    return run


def _data(**fields):
    def run(ws):
        from hf_dualmcmc.data import load_image_dataset
        from hf_dualmcmc.training_config import DataConfig

        fields_ = {k: (v(ws) if callable(v) else v) for k, v in fields.items()}
        load_image_dataset(DataConfig(**fields_))

    return run


def _train(*argv, config="fresh.yaml"):
    return lambda ws: cli("train", "--config", ws.root / config, *argv)


def _convert(name, *argv):
    return lambda ws: cli("convert_official_checkpoint", ws.ckpt / name, ws.root / "converted", *argv)


def _evaluate(*argv, metrics="recon"):
    return lambda ws: cli(
        "evaluate",
        "--pipeline",
        ws.pipeline,
        "--out",
        ws.root / "eval-out",
        "--metrics",
        metrics,
        "--no-progress",
        *argv,
    )


def _inception(sha=None):
    def run(ws):
        from hf_dualmcmc.evaluation import InceptionScorer

        InceptionScorer(ws.inception / "weights-inception-2015-12-05-6726825d.pth", expected_sha256=sha)

    return run


V = ValueError
CASES = [
    # --- pipeline __call__ -------------------------------------------------------------------------------------------
    ("pipeline", "batch_size=0", _call(batch_size=0), V, "batch_size must be an integer >= 1, got 0"),
    ("pipeline", "batch_size=-2", _call(batch_size=-2), V, "batch_size must be an integer >= 1"),
    ("pipeline", "batch_size=2.0", _call(batch_size=2.0), V, "batch_size must be an integer >= 1, got 2.0"),
    (
        "pipeline",
        "num_inference_steps=-1",
        _call(num_inference_steps=-1),
        V,
        "num_inference_steps must be an integer >= 0, got -1",
    ),
    (
        "pipeline",
        "num_inference_steps=2.5",
        _call(num_inference_steps=2.5),
        V,
        "num_inference_steps must be an integer >= 0, got 2.5",
    ),
    *[
        ("pipeline", f"step_size={v}", _call(step_size=v), V, f"step_size must be a finite number > 0, got {v}")
        for v in (NAN, INF, 0.0, -0.1)
    ],
    ("pipeline", "step_size='0.4'", _call(step_size="0.4"), V, "step_size must be a finite number > 0, got '0.4'"),
    *[
        ("pipeline", f"noise_scale={v}", _call(noise_scale=v), V, f"noise_scale must be a finite number >= 0, got {v}")
        for v in (NAN, INF, -1.0)
    ],
    (
        "pipeline",
        "output_type='jpg'",
        _call(output_type="jpg"),
        V,
        r"output_type must be one of \('pil', 'np', 'pt', 'latent'\)",
    ),
    ("pipeline", "bn_stats='eval'", _call(bn_stats="eval"), V, r"bn_stats must be one of \('batch', 'running'\)"),
    (
        "pipeline",
        "latents of the wrong size",
        _call(latents=torch.zeros(2, 5)),
        V,
        r"latents must have shape \[batch, 8\]",
    ),
    (
        "pipeline",
        "numpy latents",
        _call(latents=np.zeros((2, 8), np.float32)),
        V,
        r"latents must be a torch.Tensor \[batch, latent_dim\].*got ndarray",
    ),
    ("pipeline", "NaN latents", _call(latents=torch.full((2, 8), NAN)), V, "latents values must be finite"),
    ("pipeline", "inf latents", _call(latents=torch.tensor([[0.0] * 7 + [INF]])), V, "latents values must be finite"),
    ("pipeline", "empty latents", _call(latents=torch.zeros(0, 8)), V, "latents is empty"),
    (
        "pipeline",
        "2 generators for 3 samples",
        _call(batch_size=3, generator=[_seeded(), _seeded()]),
        V,
        "one per sample: expected 3, got 2",
    ),
    (
        "pipeline",
        "generator='seed'",
        _call(generator="seed"),
        V,
        "generator .a torch.Generator, an integer seed, or a list of them. must be",
    ),
    ("pipeline", "a numpy Generator", _call(generator=np.random.default_rng(0)), V, "generator .* got Generator"),
    (
        "pipeline",
        "a float in the generator list",
        _call(batch_size=2, generator=[_seeded(), 1.5]),
        V,
        "generator .* got 1.5",
    ),
    (
        "pipeline",
        "unknown callback tensor",
        _call(callback_on_step_end_tensor_inputs=("x",)),
        V,
        r"callback_on_step_end_tensor_inputs must be in \['sample'\]",
    ),
    (
        "pipeline",
        "callback returning a tensor",
        _call(callback_on_step_end=lambda pipe, i, t, kw: kw["sample"]),
        V,
        "callback_on_step_end must return a dict, got Tensor",
    ),
    # --- pipeline reconstruct / interpolate ---------------------------------------------------------------------------
    ("pipeline", "reconstruct: images at 32 px", _recon(images=torch.rand(2, 3, 32, 32)), V, r"expects \(3, 16, 16\)"),
    ("pipeline", "reconstruct: 1-channel images", _recon(images=torch.rand(2, 1, 16, 16)), V, r"expects \(3, 16, 16\)"),
    (
        "pipeline",
        "reconstruct: RGBA arrays",
        _recon(images=np.random.rand(2, 16, 16, 4).astype(np.float32)),
        V,
        r"expects \(3, 16, 16\)",
    ),
    (
        "pipeline",
        "reconstruct: images in [-1, 1]",
        _recon(images=torch.rand(2, 3, 16, 16) * 2 - 1),
        V,
        r"images values must be finite, in \[0, 1\]",
    ),
    (
        "pipeline",
        "reconstruct: images of 2.0",
        _recon(images=np.full((1, 16, 16, 3), 2.0, np.float32)),
        V,
        r"images values must be finite, in \[0, 1\]",
    ),
    (
        "pipeline",
        "reconstruct: NaN images",
        _recon(images=np.full((1, 16, 16, 3), NAN, np.float32)),
        V,
        r"images values must be finite, in \[0, 1\]",
    ),
    (
        "pipeline",
        "reconstruct: pixel_values in [0, 3]",
        _recon(pixel_values=torch.rand(2, 3, 16, 16) * 3),
        V,
        r"pixel_values values must be finite, in \[-1, 1\]",
    ),
    (
        "pipeline",
        "reconstruct: NaN pixel_values",
        _recon(pixel_values=torch.full((1, 3, 16, 16), NAN)),
        V,
        r"pixel_values values must be finite, in \[-1, 1\]",
    ),
    (
        "pipeline",
        "reconstruct: numpy pixel_values",
        _recon(pixel_values=np.zeros((1, 3, 16, 16), np.float32)),
        V,
        "pixel_values must be a torch.Tensor",
    ),
    (
        "pipeline",
        "reconstruct: empty pixel_values",
        _recon(pixel_values=torch.zeros(0, 3, 16, 16)),
        V,
        "pixel_values is empty",
    ),
    (
        "pipeline",
        "reconstruct: empty image array",
        _recon(images=np.zeros((0, 16, 16, 3), np.float32)),
        V,
        "images is empty",
    ),
    ("pipeline", "reconstruct: empty list", _recon(images=[]), V, "images must be PIL image"),
    (
        "pipeline",
        "reconstruct: a PIL image at 32 px",
        _recon(images=[PIL.Image.new("RGB", (32, 32))]),
        V,
        r"expects \(3, 16, 16\)",
    ),
    (
        "pipeline",
        "reconstruct: a file name",
        _recon(images="cat.png"),
        V,
        r"images must be PIL image\(s\), numpy arrays or torch tensors",
    ),
    ("pipeline", "reconstruct: no images", _recon(), V, "pass exactly one of `images`"),
    (
        "pipeline",
        "reconstruct: num_latent_steps=-3",
        _recon(num_latent_steps=-3, images=torch.rand(1, 3, 16, 16)),
        V,
        "num_latent_steps must be an integer >= 0, got -3",
    ),
    (
        "pipeline",
        "reconstruct: generator='7'",
        _recon(pixel_values=torch.zeros(1, 3, 16, 16), generator="7"),
        V,
        "generator",
    ),
    (
        "pipeline",
        "reconstruct: output_type='png'",
        _recon(pixel_values=torch.zeros(1, 3, 16, 16), output_type="png"),
        V,
        "output_type must be one of",
    ),
    (
        "pipeline",
        "interpolate: num_points=1",
        lambda ws: ws.pipe.interpolate(start_latents=torch.zeros(8), end_latents=torch.ones(8), num_points=1),
        V,
        "num_points must be an integer >= 2",
    ),
    (
        "pipeline",
        "interpolate: one endpoint",
        lambda ws: ws.pipe.interpolate(start_latents=torch.zeros(8)),
        V,
        "give both endpoints",
    ),
    (
        "pipeline",
        "interpolate: latents of unequal sizes",
        lambda ws: ws.pipe.interpolate(start_latents=torch.zeros(8), end_latents=torch.zeros(5)),
        V,
        "start_latents and end_latents must have equal sizes, got 8, 5",
    ),
    (
        "pipeline",
        "interpolate: latents of the wrong size",
        lambda ws: ws.pipe.interpolate(start_latents=torch.zeros(5), end_latents=torch.zeros(5)),
        V,
        r"latents must have shape \[batch, 8\]",
    ),
    # --- pipeline constructor -----------------------------------------------------------------------------------------
    ("pipeline", "DualMCMCPipeline(step_size=0)", _build(step_size=0.0), V, "step_size must be a finite number > 0"),
    (
        "pipeline",
        "DualMCMCPipeline(noise_scale=nan)",
        _build(noise_scale=NAN),
        V,
        "noise_scale must be a finite number >= 0, got nan",
    ),
    (
        "pipeline",
        "DualMCMCPipeline(latent_step_size=inf)",
        _build(latent_step_size=INF),
        V,
        "latent_step_size must be a finite number > 0, got inf",
    ),
    (
        "pipeline",
        "DualMCMCPipeline(latent_noise_scale=-0.1)",
        _build(latent_noise_scale=-0.1),
        V,
        "latent_noise_scale must be a finite number >= 0",
    ),
    (
        "pipeline",
        "DualMCMCPipeline(num_latent_steps=1.5)",
        _build(num_latent_steps=1.5),
        V,
        "num_latent_steps must be an integer >= 0, got 1.5",
    ),
    (
        "pipeline",
        "DualMCMCPipeline(noise_init_range=0)",
        _build(noise_init_range=0.0),
        V,
        "noise_init_range must be a finite number > 0",
    ),
    ("pipeline", "DualMCMCPipeline(proposal='prior')", _build(proposal="prior"), V, "proposal must be one of"),
    (
        "pipeline",
        "DualMCMCPipeline(num_inference_steps=-5)",
        _build(num_inference_steps=-5),
        V,
        "num_inference_steps must be an integer >= 0",
    ),
    # --- loading a saved pipeline -------------------------------------------------------------------------------------
    (
        "loading",
        "empty model.safetensors",
        _load("empty-weights", lambda d: (d / "energy_model/model.safetensors").write_bytes(b"")),
        OSError,
        "energy_model/model.safetensors: not a readable safetensors file",
    ),
    (
        "loading",
        "truncated model.safetensors",
        _load("truncated-weights", lambda d: _truncate(d / "generator_model/model.safetensors")),
        OSError,
        "generator_model/model.safetensors: not a readable safetensors file",
    ),
    (
        "loading",
        "config.json cut mid-object",
        _load("cut-config", lambda d: (d / "encoder/config.json").write_text('{"image_size":')),
        OSError,
        "encoder/config.json is not a valid JSON config object",
    ),
    (
        "loading",
        "config.json holding a list",
        _load("list-config", lambda d: (d / "energy_model/config.json").write_text("[1, 2]")),
        OSError,
        "energy_model/config.json is not a valid JSON config object",
    ),
    (
        "loading",
        "config.json with image_size 28",
        _load("config-28", lambda d: (d / "energy_model/config.json").write_text(json.dumps({"image_size": 28}))),
        V,
        "energy_model/config.json: .*image_size",
    ),
    (
        "loading",
        "missing config.json",
        _load("no-config", lambda d: (d / "energy_model/config.json").unlink()),
        FileNotFoundError,
        "energy_model/config.json is missing",
    ),
    (
        "loading",
        "model_index.json cut short",
        _load("cut-index", lambda d: (d / "model_index.json").write_text('{"_class_name": "DualMC')),
        OSError,
        "model_index.json",
    ),
    (
        "loading",
        "missing model_index.json",
        _load("no-index", lambda d: (d / "model_index.json").unlink()),
        OSError,
        "model_index.json",
    ),
    # --- data sources -------------------------------------------------------------------------------------------------
    (
        "data",
        "a folder that does not exist",
        _data(source=lambda ws: str(ws.root / "nowhere")),
        FileNotFoundError,
        "data source .*nowhere' does not exist",
    ),
    (
        "data",
        "a truncated PNG",
        _data(source=lambda ws: str(ws.data / "truncated"), image_size=8, num_channels=1),
        V,
        r"cannot use image file .*img0\.png",
    ),
    (
        "data",
        "an image larger than image_size with resize=pad",
        _data(source=lambda ws: str(ws.data / "large"), image_size=8, num_channels=1, resize="pad"),
        V,
        r"resize='pad' needs images no larger than image_size=8, got 40x40",
    ),
    (
        "data",
        "a parquet file without an image column",
        _data(source=lambda ws: str(ws.data / "text.parquet")),
        V,
        r"no image column in .*text\.parquet.*columns: 'text'",
    ),
    (
        "data",
        "an empty parquet file",
        _data(source=lambda ws: str(ws.data / "empty.parquet")),
        V,
        r"empty\.parquet' split 'train' has no images",
    ),
    (
        "data",
        "an unknown split",
        _data(source="sklearn:digits", split="validation"),
        V,
        "sklearn:digits split must be one of",
    ),
    ("data", "an unknown scikit-learn set", _data(source="sklearn:iris"), V, "only 'sklearn:digits' is supported"),
    (
        "data",
        "float images in an .npz",
        _data(source=lambda ws: str(ws.data / "float.npz")),
        V,
        r"float\.npz: expected uint8 images",
    ),
    (
        "data",
        "a pickle named .npz",
        _data(source=lambda ws: str(ws.data / "pickled.npz")),
        V,
        r"pickled\.npz: not an \.npz archive of plain arrays",
    ),
    (
        "data",
        "an MNIST folder without IDX files",
        _data(source=lambda ws: f"mnist:{ws.data / 'no-mnist'}"),
        FileNotFoundError,
        "no MNIST IDX images in",
    ),
    (
        "data",
        "a crop box outside the images",
        _data(source="sklearn:digits", image_size=8, num_channels=1, crop_box=[0, 0, 9, 9]),
        V,
        r"crop_box \(0, 0, 9, 9\) does not fit inside an image of 8x8",
    ),
    (
        "data",
        "image_column that is not an image",
        _data(source="sklearn:digits", image_column="label"),
        V,
        "image_column 'label' is Value",
    ),
    # --- scripts/train.py ---------------------------------------------------------------------------------------------
    (
        "train.py",
        "run.batch_size=abc",
        _train("run.batch_size=abc"),
        ExitCode,
        "exit 2: error: run.batch_size: expected an integer, got 'abc'",
    ),
    (
        "train.py",
        "teaching.num_steps=abc",
        _train("teaching.num_steps=abc"),
        ExitCode,
        "exit 2: error: teaching.num_steps: expected an integer, got 'abc'",
    ),
    (
        "train.py",
        "teaching.lr_energy=abc",
        _train("teaching.lr_energy=abc"),
        ExitCode,
        "exit 2: error: teaching.lr_energy: expected a number, got 'abc'",
    ),
    ("train.py", "run.max_steps=0", _train("run.max_steps=0"), ExitCode, r"exit 2: error: run.max_steps: must be >= 1"),
    (
        "train.py",
        "--max_steps -5",
        _train("--max_steps", "-5"),
        ExitCode,
        r"exit 2: error: run.max_steps: must be >= 1",
    ),
    ("train.py", "an unknown key", _train("run.stepz=1"), ExitCode, "exit 2: error: run.stepz: unknown key"),
    ("train.py", "an unknown section", _train("optim.lr=1"), ExitCode, "exit 2: error: optim: unknown section"),
    (
        "train.py",
        "an override without a section",
        _train("max_steps=3"),
        ExitCode,
        "exit 2: error: max_steps=3: an override must look like section.key=value",
    ),
    (
        "train.py",
        "an override without =",
        _train("run.max_steps"),
        ExitCode,
        "exit 2: error: run.max_steps: an override must look like section.key=value",
    ),
    (
        "train.py",
        "an unparsable override value",
        _train("run.seed=[1,"),
        ExitCode,
        r"exit 2: error: run.seed: cannot parse '\[1,' as a YAML value",
    ),
    (
        "train.py",
        "a config file that does not exist",
        _train(config="missing.yaml"),
        ExitCode,
        "exit 2: error: .*missing.yaml: cannot read the config file",
    ),
    ("train.py", "a config file that is not YAML", _train(config="stats.npz"), ExitCode, "exit 2: error: .*stats.npz"),
    (
        "train.py",
        "a config without data",
        _train("data.source=~"),
        ExitCode,
        "exit 2: error: data.source: expected a string",
    ),
    (
        "train.py",
        "data.image_size=0",
        _train("data.image_size=0"),
        ExitCode,
        "exit 2: error: data.image_size: must be >= 1, got 0",
    ),
    (
        "train.py",
        "data.num_channels=2",
        _train("data.num_channels=2"),
        ExitCode,
        "exit 2: error: data.num_channels: expected 1 or 3, got 2",
    ),
    (
        "train.py",
        "data.resize=crop",
        _train("data.resize=crop"),
        ExitCode,
        r"exit 2: error: data.resize: expected one of \['resize', 'pad', 'center_crop'\], got 'crop'",
    ),
    (
        "train.py",
        "data.crop_box of 2 numbers",
        _train("data.crop_box=[1,2]"),
        ExitCode,
        r"exit 2: error: data.crop_box: expected 4 integers",
    ),
    ("train.py", "model.ngf=0", _train("model.ngf=0"), ExitCode, "exit 2: error: model.ngf: must be >= 1, got 0"),
    (
        "train.py",
        "teaching.method=vae",
        _train("teaching.method=vae"),
        ExitCode,
        "exit 2: error: teaching.method: expected one of",
    ),
    (
        "train.py",
        "teaching.step_size=0",
        _train("teaching.step_size=0"),
        ExitCode,
        "exit 2: error: teaching.step_size: must be > 0, got 0.0",
    ),
    (
        "train.py",
        "teaching.noise_scale=-1",
        _train("teaching.noise_scale=-1"),
        ExitCode,
        "exit 2: error: teaching.noise_scale: must be >= 0",
    ),
    (
        "train.py",
        "teaching.betas=[0.5]",
        _train("teaching.betas=[0.5]"),
        ExitCode,
        r"exit 2: error: teaching.betas: expected two numbers in \[0, 1\)",
    ),
    (
        "train.py",
        "sampler.bn_stats=eval",
        _train("sampler.bn_stats=eval"),
        ExitCode,
        "exit 2: error: sampler.bn_stats: must be one of",
    ),
    (
        "train.py",
        "run.mixed_precision=fp8",
        _train("run.mixed_precision=fp8"),
        ExitCode,
        "exit 2: error: run.mixed_precision: expected one of",
    ),
    (
        "train.py",
        "--mixed_precision fp8",
        _train("--mixed_precision", "fp8"),
        ExitCode,
        "exit 2: .*argument --mixed_precision: invalid choice: 'fp8'",
    ),
    (
        "train.py",
        "push_to_hub without hub_model_id",
        _train("--push_to_hub"),
        ExitCode,
        "exit 2: error: run.hub_model_id",
    ),
    (
        "train.py",
        "an output_dir that holds another run",
        _train(config="run.yaml"),
        ExitCode,
        r"exit 2: error: run.output_dir .*run holds another run; .*--resume_from_checkpoint latest.*"
        r"run.overwrite_output_dir=true",
    ),
    (
        "train.py",
        "resume latest without checkpoints",
        _train("--resume_from_checkpoint", "latest"),
        ExitCode,
        "exit 2: error: --resume_from_checkpoint latest: no checkpoint under",
    ),
    (
        "train.py",
        "resume from a folder that is no checkpoint",
        lambda ws: cli("train", "--config", ws.root / "run.yaml", "--resume_from_checkpoint", ws.pipeline),
        ExitCode,
        "exit 2: error: --resume_from_checkpoint .*pipeline: not a complete checkpoint",
    ),
    (
        "train.py",
        "resume with another batch size",
        _train("--resume_from_checkpoint", "latest", "run.batch_size=4", config="run.yaml"),
        ExitCode,
        "exit 2: error: run.batch_size",
    ),
    (
        "train.py",
        "data.source that does not exist",
        _train("data.source=./no/such/folder"),
        ExitCode,
        "exit 2: error: data.source './no/such/folder'",
    ),
    (
        "train.py",
        "fewer images than one batch",
        _train("run.batch_size=64"),
        ExitCode,
        "exit 2: error: run.batch_size: dataset has 48 images, fewer than one batch of 64",
    ),
    # --- scripts/convert_official_checkpoint.py -----------------------------------------------------------------------
    (
        "converter",
        "a checkpoint that does not exist",
        _convert("missing.pth"),
        ExitCode,
        "exit 2: error: official checkpoint .*missing.pth' does not exist",
    ),
    ("converter", "an empty file", _convert("empty.pth"), ExitCode, r"exit 2: error: .*empty\.pth.* empty"),
    (
        "converter",
        "a truncated file",
        _convert("truncated.pth"),
        ExitCode,
        r"exit 2: error: .*truncated\.pth.*(truncated|corrupt)",
    ),
    (
        "converter",
        "a pickle that would run code",
        _convert("payload.pth"),
        ExitCode,
        r"exit 2: error: .*payload\.pth.*(refused|unsafe|not allowed|would run code)",
    ),
    ("converter", "a pickled list", _convert("list.pth"), ExitCode, r"exit 2: error: .*list\.pth"),
    (
        "converter",
        "a checkpoint without netE / netI",
        _convert("keys.pth"),
        ExitCode,
        r"exit 2: error: .*keys\.pth.*netE",
    ),
    (
        "converter",
        "--ngf without --dataset",
        _convert("keys.pth", "--ngf", "8"),
        ExitCode,
        "exit .*--ngf/--ndf/--nif/--nz need --dataset",
    ),
    # --- evaluation ---------------------------------------------------------------------------------------------------
    (
        "evaluation",
        "an unknown metric",
        _evaluate(metrics="recon,bleu"),
        ExitCode,
        r"exit 2: .*unknown metrics \['bleu'\]",
    ),
    (
        "evaluation",
        "fid without --reference",
        _evaluate(metrics="fid"),
        ExitCode,
        "exit 2: .*--metrics fid needs --reference",
    ),
    (
        "evaluation",
        "domain_fd without --domain",
        _evaluate(metrics="domain_fd"),
        ExitCode,
        "exit 2: .*--metrics domain_fd needs --domain",
    ),
    (
        "evaluation",
        "--num-samples 0",
        _evaluate("--num-samples", "0"),
        ExitCode,
        "exit 2: .*--num_samples must be >= 1",
    ),
    (
        "evaluation",
        "--step-size nan",
        _evaluate("--step-size", "nan"),
        ExitCode,
        "exit 2: .*--step_size must be a finite number > 0, got nan",
    ),
    ("evaluation", "--steps -1", _evaluate("--steps", "-1"), ExitCode, "exit 2: .*--steps must be >= 0"),
    (
        "evaluation",
        "ood without held-out images",
        _evaluate(metrics="ood"),
        ExitCode,
        "exit 2: .*--metrics ood needs held-out images",
    ),
    (
        "evaluation",
        "a pipeline folder that does not exist",
        lambda ws: cli(
            "evaluate", "--pipeline", ws.root / "nowhere", "--out", ws.root / "eval-out", "--metrics", "profile"
        ),
        ExitCode,
        "exit 2: error: .*nowhere",
    ),
    (
        "evaluation",
        "held-out images that do not exist",
        _evaluate("--recon-data", "./no/such/images"),
        ExitCode,
        "exit 2: error: data source './no/such/images' does not exist",
    ),
    (
        "evaluation",
        "Inception weights with another SHA-256",
        _inception(),
        V,
        "weights-inception-2015-12-05-6726825d.pth.*6726825d0af5",
    ),
    ("evaluation", "a malformed --inception-weights-sha256", _inception(sha="xyz"), V, "SHA-256"),
    (
        "evaluation",
        "FID statistics that are a pickle",
        lambda ws: __import__("hf_dualmcmc.evaluation", fromlist=["x"]).load_statistics(ws.data / "pickled.npz"),
        V,
        r"pickled\.npz",
    ),
    (
        "evaluation",
        "an unknown OOD score",
        lambda ws: __import__("hf_dualmcmc.evaluation.ood", fromlist=["x"]).ood_scores(
            ws.pipe, np.zeros((1, 16, 16, 3), np.uint8), "likelihood"
        ),
        V,
        "score must be one of",
    ),
    (
        "evaluation",
        "OOD images of the wrong size",
        lambda ws: __import__("hf_dualmcmc.evaluation.ood", fromlist=["x"]).ood_scores(
            ws.pipe, np.zeros((1, 8, 8, 3), np.uint8)
        ),
        V,
        r"images must be \[N, 16, 16, 3\] uint8",
    ),
    # --- Hub export and model cards -----------------------------------------------------------------------------------
    (
        "hub",
        "export into an existing folder",
        lambda ws: __import__("hf_dualmcmc.hub", fromlist=["x"]).export_for_hub(ws.pipeline, ws.run),
        V,
        "exists; pass overwrite=True",
    ),
    (
        "hub",
        "an unknown model card template",
        lambda ws: __import__("hf_dualmcmc.hub", fromlist=["x"]).write_model_card(ws.pipeline, template="svhn"),
        V,
        "template",
    ),
    (
        "hub",
        "push to an invalid repository id",
        lambda ws: __import__("hf_dualmcmc.hub", fromlist=["x"]).push_pipeline_to_hub(ws.run / "pipeline", "a/b/c"),
        V,
        "repo_id 'a/b/c'",
    ),
]
# rows of issue #22, one module per area; each gets this module for its helpers (no circular import)
for _area in ("trainer", "entry_points", "config_data"):
    CASES += __import__(f"bad_inputs_{_area}").cases(sys.modules[__name__])
IDS = [f"{area}: {what}" for area, what, *_ in CASES]


def test_the_table_is_large_and_unique():
    assert len(CASES) >= 100 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("area, what, call, error, message", CASES, ids=IDS)
def test_bad_input(ws, area, what, call, error, message):
    if hasattr(call, "prepare"):
        call.prepare(ws)
    before = digest(ws.root)
    with pytest.raises(error, match=message):
        call(ws)
    assert digest(ws.root) == before, "a refused input changed or created files"
    assert not (ws.root / "MARKER").exists(), "a pickle ran"


if __name__ == "__main__":  # the table of docs/RELIABILITY.md
    print("| area | bad input | error | message (regex) |\n| --- | --- | --- | --- |")
    for area, what, _, error, message in CASES:
        code = f"`` {message} ``" if "`" in message else f"`{message}`"
        print(f"| {area} | {what.replace('|', '/')} | `{error.__name__}` | {code.replace('|', chr(92) + '|')} |")
    sys.exit(0)

"""Rows of tests/test_bad_inputs.py's table (issue #22): config_data.

``cases(h)`` returns rows ``(area, what, call(ws), error type, message regex)``; ``h`` is the test_bad_inputs module, whose
helpers (``h.cli``, ``h._train``, ``h._data``, ``h.V``, ...) and workspace fixture the rows use. A row's call may have a
``prepare(ws)`` attribute that seeds files before the workspace is hashed.

Config rows: every setting that used to fail after work started (exit 1 and a traceback) is now refused when the config
is built (exit 2, one line naming the key); YAML rows: anchors / aliases, oversized, duplicate keys; data rows: images
of high-depth, float and LAB modes, non-finite pixels; weights rows: strict loading.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch


def _seeded(call, seed):
    """``call`` with a ``prepare(ws)`` that writes its input files (once) before the workspace is hashed."""
    call.prepare = seed
    return call


def _config_file(name: str, text: str | bytes):
    def seed(ws):
        path = ws.root / "configs" / name
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return seed


def _images(folder: str, *images: PIL.Image.Image, suffix: str = "tiff"):
    def seed(ws):
        path = ws.root / "modes" / folder
        if not path.exists():
            path.mkdir(parents=True)
            for k, image in enumerate(images):
                image.save(path / f"img{k}.{suffix}")

    return seed


def _npz(name: str, images: np.ndarray):
    def seed(ws):
        path = ws.root / "modes" / name
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            np.savez(path, images=images)

    return seed


def _float(value, size=(8, 8)) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.full(size[::-1], value, np.float32), "F")


def _damage_weights(component: str, change):
    """A damage for ``h._load``: ``change(state_dict)`` applied to ``component``'s safetensors weights."""

    def damage(folder):
        from safetensors.torch import load_file, save_file

        file = folder / component / "model.safetensors"
        tensors = load_file(file)
        change(tensors)
        save_file(tensors, file, metadata={"format": "pt"})

    return damage


def _first_float(tensors: dict) -> str:
    return next(k for k in sorted(tensors) if tensors[k].is_floating_point())


def cases(h) -> list[tuple]:
    E, V = h.ExitCode, h.V
    head = "a:\n  - " + "x" * 10 + "\n"
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    base = "data: {source: sklearn:digits, image_size: 8, num_channels: 1}\n"

    def train_file(name, text):
        return _seeded(lambda ws: h.cli("train", "--config", ws.root / "configs" / name), _config_file(name, text))

    def train_data(folder, seed):
        return _seeded(
            lambda ws: h.cli("train", "--config", ws.root / "fresh.yaml", f"data.source={ws.root / 'modes' / folder}"),
            seed,
        )

    def data(folder, seed, **fields):
        fields = {"image_size": 8, "num_channels": 1, **fields}
        return _seeded(h._data(source=lambda ws: str(ws.root / "modes" / folder), **fields), seed)

    def load_component(name, cls_name, subfolder, damage):
        def run(ws):
            import hf_dualmcmc

            getattr(hf_dualmcmc, cls_name).from_pretrained(h._damaged_copy(ws, name, damage), subfolder=subfolder)

        run.prepare = lambda ws: h._damaged_copy(ws, name, damage)
        return run

    rows = [
        # --- settings that failed after work started: now refused when the config is built ---------------------------
        (
            "config",
            "data.image_size=12 (not 4 * 2**k)",
            h._train("data.image_size=12"),
            E,
            r"exit 2: error: data.image_size: image_size must be 4 \* 2\*\*k .*got 12",
        ),
        (
            "config",
            "data.image_size=2",
            h._train("data.image_size=2"),
            E,
            "exit 2: error: data.image_size: image_size must be an integer >= 4, got 2",
        ),
        (
            "config",
            "energy_channel_mults of the wrong length",
            h._train("model.energy_channel_mults=[1,1]"),
            E,
            "exit 2: error: model.energy_channel_mults: .*downsample needs one entry per residual block",
        ),
        (
            "config",
            "energy_downsample halving 8 px four times",
            h._train("model.energy_downsample=[true,true,true]"),
            E,
            "exit 2: error: model.energy_downsample: .*4 halvings of image_size 8 leave no pixels",
        ),
        (
            "config",
            "encoder_channel_mults too deep for 8 px",
            h._train("model.encoder_channel_mults=[1,1,1,1,1]"),
            E,
            "exit 2: error: model.encoder_channel_mults: .*too small for 5 conv layers",
        ),
        (
            "config",
            "generator_channel_mults of zeros",
            h._train("model.generator_channel_mults=[0,0]"),
            E,
            r"exit 2: error: model.generator_channel_mults: .*base_channels \* channel_mults must be >= 1",
        ),
        (
            "config",
            "an empty channel_mults list",
            h._train("model.encoder_channel_mults=[]"),
            E,
            "exit 2: error: model.encoder_channel_mults: must not be empty",
        ),
        (
            "config",
            "data.image_size=64 with ndf 8 (halved widths reach 0)",
            h._train("data.image_size=64"),
            E,
            r"exit 2: error: model.ndf: .*base_channels \* channel_mults must be >= 1.*data.image_size 64",
        ),
        (
            "config",
            "teaching.noise_scale=0 with use_temp",
            h._train("teaching.noise_scale=0"),
            E,
            r"exit 2: error: teaching.noise_scale: with teaching.use_temp, noise_scale / step_size must be in .*got 0",
        ),
        (
            "config",
            "teaching.step_size=1e-300 (temperature overflows)",
            h._train("teaching.step_size=1e-300"),
            E,
            "exit 2: error: teaching.noise_scale: with teaching.use_temp.*got 1e.297",
        ),
        (
            "config",
            "sampler.step_size=-1 (the pipeline's rule)",
            h._train("sampler.step_size=-1"),
            E,
            "exit 2: error: sampler.step_size: must be a finite number > 0, got -1.0",
        ),
        (
            "config",
            "teaching.latent_step_size=1e200",
            h._train("teaching.latent_step_size=1e200"),
            E,
            "exit 2: error: teaching.latent_step_size: must be < 1e.150",
        ),
        (
            "config",
            "run.seed=-1",
            h._train("run.seed=-1"),
            E,
            r"exit 2: error: run.seed: must be in \[0, 2\*\*31 - 1\], got -1",
        ),
        (
            "config",
            "run.seed=2**32",
            h._train("run.seed=4294967296"),
            E,
            "exit 2: error: run.seed: must be in .*got 4294967296",
        ),
        ("config", "--seed -5", h._train("--seed", "-5"), E, "exit 2: error: run.seed: must be in"),
        (
            "config",
            "run.max_steps=10**30",
            h._train(f"run.max_steps={10**30}"),
            E,
            r"exit 2: error: run.max_steps: expected an integer of at most 2\*\*63 - 1",
        ),
        (
            "config",
            "run.report_to=foo",
            h._train("run.report_to=foo"),
            E,
            r"exit 2: error: run.report_to: expected one of \['none', 'all', .*'tensorboard'.*got 'foo'",
        ),
        (
            "config",
            "run.report_to=TensorBoard",
            h._train("run.report_to=TensorBoard"),
            E,
            "exit 2: error: run.report_to: did you mean 'tensorboard'",
        ),
        (
            "config",
            "run.card_template=svhn",
            h._train("run.card_template=svhn"),
            E,
            r"exit 2: error: run.card_template: expected one of \['run', 'cifar10'",
        ),
        (
            "config",
            "run.card_template=cifar1",
            h._train("run.card_template=cifar1"),
            E,
            "exit 2: error: run.card_template: did you mean 'cifar10'",
        ),
        (
            "config",
            "run.card_template=cifar10 for digits",
            h._train("run.card_template=cifar10"),
            E,
            "exit 2: error: run.card_template: 'cifar10' describes the paper's 32x32 images with 3 channels; this run "
            "trains 8x8 with 1: use run.card_template: run",
        ),
        (
            "config",
            "run.mixed_precision=true",
            h._train("run.mixed_precision=true"),
            E,
            "exit 2: error: run.mixed_precision: expected a string or null, got True",
        ),
        (
            "config",
            "channels_last with a baseline",
            h._train("run.channels_last=true", "teaching.method=short_run"),
            E,
            "exit 2: error: run.channels_last: .*options of the dual_mcmc step",
        ),
        # --- did you mean -------------------------------------------------------------------------------------------
        (
            "config",
            "run.max_step (misspelt)",
            h._train("run.max_step=3"),
            E,
            "exit 2: error: run.max_step: unknown key; did you mean 'max_steps'",
        ),
        (
            "config",
            "teaching.methd (misspelt)",
            h._train("teaching.methd=short_run"),
            E,
            "exit 2: error: teaching.methd: unknown key; did you mean 'method'",
        ),
        (
            "config",
            "data.sorce (misspelt)",
            h._train("data.sorce=digits"),
            E,
            "exit 2: error: data.sorce: unknown key; did you mean 'source'",
        ),
        (
            "config",
            "model.lantent_dim (misspelt)",
            h._train("model.lantent_dim=4"),
            E,
            "exit 2: error: model.lantent_dim: unknown key; did you mean 'latent_dim'",
        ),
        (
            "config",
            "section rnu (misspelt)",
            h._train("rnu.seed=1"),
            E,
            "exit 2: error: rnu: unknown section; did you mean 'run'",
        ),
        # --- YAML -----------------------------------------------------------------------------------------------------
        (
            "yaml",
            "an alias bomb (900 bytes)",
            train_file("bomb.yaml", bomb),
            E,
            r"exit 2: error: .*bomb.yaml: not valid YAML \(anchors and aliases",
        ),
        (
            "yaml",
            "one anchor and alias",
            train_file("alias.yaml", base + "run: &r {seed: 1}\nsampler: *r\n"),
            E,
            r"exit 2: error: .*alias.yaml: not valid YAML \(anchors and aliases",
        ),
        (
            "yaml",
            "a config over 1 MiB",
            train_file("big.yaml", base + "#" * 2**20 + "\n"),
            E,
            r"exit 2: error: .*big.yaml: larger than 1048576 bytes",
        ),
        (
            "yaml",
            "a section given twice",
            train_file("twice.yaml", base + "run: {seed: 1}\nrun: {seed: 2}\n"),
            E,
            r"exit 2: error: .*twice.yaml: not valid YAML \(duplicate key 'run'",
        ),
        (
            "yaml",
            "a key given twice",
            train_file("key-twice.yaml", base + "run: {seed: 1, seed: 2}\n"),
            E,
            r"exit 2: error: .*key-twice.yaml: not valid YAML \(duplicate key 'seed'",
        ),
        (
            "yaml",
            "nested 100,000 deep",
            train_file("deep.yaml", "[" * 100_000),
            E,
            r"exit 2: error: .*deep.yaml: not valid YAML",
        ),
        (
            "yaml",
            "not UTF-8",
            train_file("latin1.yaml", head.encode() + b"\xff\xfe\n"),
            E,
            r"exit 2: error: .*latin1.yaml: not a text file",
        ),
        (
            "yaml",
            "an override with an alias",
            h._train("run.seed=*a"),
            E,
            r"exit 2: error: run.seed: cannot parse '\*a' as a YAML value",
        ),
        (
            "yaml",
            "an override with an anchor",
            h._train("run.seed=&a 1"),
            E,
            "exit 2: error: run.seed: cannot parse '&a 1' as a YAML value: .*anchors and aliases",
        ),
        # --- data: image modes and non-finite pixels --------------------------------------------------------------------
        (
            "data",
            "a float TIFF with NaN",
            data("nan", _images("nan", _float(0.5), _float(np.nan))),
            V,
            r"cannot use image file .*img1\.tiff.*non-finite pixel values",
        ),
        (
            "data",
            "a float TIFF with inf",
            data("inf", _images("inf", _float(np.inf))),
            V,
            r"cannot use image file .*img0\.tiff.*non-finite pixel values",
        ),
        (
            "data",
            "a float TIFF in [0, 255]",
            data("f255", _images("f255", _float(200.0))),
            V,
            r"img0\.tiff.*'F' pixel values must be in \[0, 1\], got \[200, 200\]",
        ),
        (
            "data",
            "a negative float TIFF",
            data("fneg", _images("fneg", _float(-0.5))),
            V,
            r"img0\.tiff.*'F' pixel values must be in \[0, 1\]",
        ),
        (
            "data",
            "a 32-bit integer TIFF above 65535",
            data("i32", _images("i32", PIL.Image.fromarray(np.full((8, 8), 70000, np.int32), "I"))),
            V,
            r"img0\.tiff.*'I' pixel values must be in \[0, 65535\], got \[70000, 70000\]",
        ),
        (
            "data",
            "a LAB TIFF",
            data("lab", _images("lab", PIL.Image.new("LAB", (8, 8))), num_channels=3),
            V,
            r"img0\.tiff.*LAB images are not supported",
        ),
        (
            "data",
            "an .npz of floats with NaN",
            _seeded(
                h._data(source=lambda ws: str(ws.root / "modes" / "nan.npz")),
                _npz("nan.npz", np.stack([np.zeros((8, 8), np.float32), np.full((8, 8), np.nan, np.float32)])),
            ),
            V,
            r"nan\.npz: image 1 under 'images' has non-finite values",
        ),
        (
            "data",
            "an .npz of floats with inf",
            _seeded(
                h._data(source=lambda ws: str(ws.root / "modes" / "inf.npz")),
                _npz("inf.npz", np.full((3, 8, 8, 3), np.inf, np.float64)),
            ),
            V,
            r"inf\.npz: image 0 under 'images' has non-finite values",
        ),
        (
            "data",
            "train.py on float TIFFs with NaN",
            train_data("nan-train", _images("nan-train", _float(np.nan))),
            E,
            r"exit 2: error: data.source .*nan-train.*img0\.tiff.*non-finite pixel values",
        ),
        # --- weights: strict loading -------------------------------------------------------------------------------------
        (
            "weights",
            "a weights file missing a tensor",
            h._load("w-missing", _damage_weights("energy_model", lambda t: t.pop(_first_float(t)))),
            V,
            r"energy_model: the weights do not match DualMCMCEnergyModel's config: missing tensors \['blocks.0",
        ),
        (
            "weights",
            "a weights file with an extra tensor",
            h._load("w-extra", _damage_weights("generator_model", lambda t: t.update(extra=torch.zeros(2)))),
            V,
            r"generator_model: the weights do not match .*unexpected tensors \['extra'\]",
        ),
        (
            "weights",
            "a tensor of another shape",
            h._load("w-shape", _damage_weights("encoder", lambda t: t.update({_first_float(t): torch.zeros(3, 3)}))),
            V,
            r"encoder: the weights do not match DualMCMCEncoderModel's config: tensors of another shape",
        ),
        (
            "weights",
            "a tensor full of NaN",
            h._load(
                "w-nan",
                _damage_weights(
                    "energy_model",
                    lambda t: t.update({k: torch.full_like(v, np.nan) for k, v in t.items() if k.endswith("original")}),
                ),
            ),
            V,
            r"energy_model: the weights hold NaN or inf in \['start.conv1.parametrizations.weight.original'",
        ),
        (
            "weights",
            "one inf in the generator",
            h._load(
                "w-inf",
                _damage_weights("generator_model", lambda t: t[_first_float(t)].view(-1).__setitem__(0, np.inf)),
            ),
            V,
            r"generator_model: the weights hold NaN or inf in \['blocks.0",
        ),
        (
            "weights",
            "a component loaded directly, missing a tensor",
            load_component(
                "w-direct",
                "DualMCMCEncoderModel",
                "encoder",
                _damage_weights("encoder", lambda t: t.pop(_first_float(t))),
            ),
            V,
            r"encoder: the weights do not match DualMCMCEncoderModel's config: missing tensors",
        ),
    ]
    from accelerate import utils

    missing = [
        t
        for t in utils.LoggerType.list()
        if t != "all" and getattr(utils, f"is_{t}_available", None) and not getattr(utils, f"is_{t}_available")()
    ]
    if missing:  # a tracker whose package is not installed here
        rows.append(
            (
                "config",
                f"run.report_to={missing[0]} (not installed)",
                h._train(f"run.report_to={missing[0]}"),
                E,
                f"exit 2: error: run.report_to: '{missing[0]}' needs the {missing[0]} package, which is not installed",
            )
        )
    return rows

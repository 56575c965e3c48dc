"""Loading a file never runs code (issue #11).

Every test writes a file whose unpickling would create a marker file (:class:`MarkerPayload`), feeds it through a
real load path of the project, checks the documented error and that the marker never appeared.
``test_payloads_are_live`` shows that the same files do create the marker when unpickled without restrictions, so
the absence of the marker means the payload was refused, not that it was inert.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT, MarkerPayload, SystemPayload, load_module, save_untrained_pipeline, tiny_config
from inception_weights import save_random_inception_weights

from hf_dualmcmc.convert import convert_official_checkpoint, load_official_checkpoint
from hf_dualmcmc.evaluation import (
    INCEPTION_WEIGHTS_FILENAME,
    INCEPTION_WEIGHTS_SHA256,
    DomainFrechetScorer,
    InceptionScorer,
    InceptionWeightsError,
    load_images,
    load_inception_state_dict,
    load_or_train_domain_classifier,
    load_statistics,
    reference_statistics,
)
from hf_dualmcmc.serialization import UnsafePickleError, file_sha256

# ---------------------------------------------------------------------------------------------------------------
# Malicious files
# ---------------------------------------------------------------------------------------------------------------


def torch_bomb(path: Path, marker: Path, **entries) -> Path:
    """A ``torch.save`` file: a dict of ``entries`` (e.g. real tensors) plus the payload under ``"payload"``."""
    torch.save({**entries, "payload": MarkerPayload(marker)}, path)
    return path


def npz_bomb(path: Path, marker: Path, key: str = "mu", **arrays) -> Path:
    """An ``.npz`` whose array ``key`` is an object array holding the payload (numpy pickles object arrays)."""
    payload = np.empty(1, dtype=object)
    payload[0] = MarkerPayload(marker)
    np.savez(path, **{**arrays, key: payload})
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "MARKER-payload-ran"
    yield path
    assert not path.exists(), "a file load executed pickled code"


def load_script(name: str):
    return load_module(f"scripts/{name}", name.replace(".py", "_cli"))


def test_payloads_are_live(tmp_path):
    marker = tmp_path / "torch-marker"
    torch.load(torch_bomb(tmp_path / "a.pth", marker), weights_only=False)
    assert marker.is_file()
    marker = tmp_path / "npz-marker"
    with np.load(npz_bomb(tmp_path / "a.npz", marker), allow_pickle=True) as data:
        data["mu"]
    assert marker.is_file()
    marker = tmp_path / "pickle-marker"
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(MarkerPayload(marker)))
    pickle.loads((tmp_path / "a.pkl").read_bytes())
    assert marker.is_file()


# ---------------------------------------------------------------------------------------------------------------
# FID Inception weights: Python API, scripts/evaluate.py
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_weights(tmp_path_factory) -> tuple[str, str]:
    path = save_random_inception_weights(tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_FILENAME)
    return path, file_sha256(path)


@pytest.fixture(scope="module")
def scorer(good_weights) -> InceptionScorer:
    path, sha = good_weights
    return InceptionScorer(path, expected_sha256=sha, fid_feature_layer="64", compute_is=False)


def test_inception_weights_with_pickled_code_are_refused(tmp_path, marker):
    evil = torch_bomb(tmp_path / INCEPTION_WEIGHTS_FILENAME, marker, **{"fc.bias": torch.zeros(1008)})  # right name
    sha = file_sha256(evil)
    # the published hash does not match: refused before anything is unpickled
    with pytest.raises(InceptionWeightsError) as err:
        InceptionScorer(evil, fid_feature_layer="64", compute_is=False)
    assert f"{str(evil)!r} has SHA-256 {sha}, expected {INCEPTION_WEIGHTS_SHA256}" in str(err.value)
    # even when the caller vouches for the file's hash, the weights-only unpickler refuses the payload
    with pytest.raises(InceptionWeightsError) as err:
        InceptionScorer(evil, expected_sha256=sha, fid_feature_layer="64", compute_is=False)
    assert f"Inception weights file {str(evil)!r} was refused: loading it would import and run Python code" in str(
        err.value
    )
    with pytest.raises(InceptionWeightsError, match="was refused"):
        load_inception_state_dict(evil, sha)


def test_torch_fidelity_loads_only_the_verified_bytes(good_weights, monkeypatch):
    """Our weights-only load of the verified bytes comes first; torch-fidelity's own ``torch.load(path,
    weights_only=False)`` then reads a private copy of exactly those bytes, never the user's path."""
    path, sha = good_weights
    real_load, calls = torch.load, []

    def spy(f, *args, **kwargs):
        source = str(f) if isinstance(f, str | os.PathLike) else None
        calls.append((kwargs.get("weights_only"), source and file_sha256(source), source and source == path))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    InceptionScorer(path, expected_sha256=sha, fid_feature_layer="64", compute_is=True)
    assert calls == [(True, None, None), (False, sha, False)]


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory) -> Path:
    return save_untrained_pipeline(tmp_path_factory.mktemp("pipe") / "tiny", 16)


def test_evaluate_script_refuses_pickled_inception_weights(pipe_dir, tmp_path, marker):
    evil = torch_bomb(tmp_path / INCEPTION_WEIGHTS_FILENAME, marker)
    argv = [
        "--pipeline",
        str(pipe_dir),
        "--out",
        str(tmp_path / "out"),
        "--metrics",
        "is",
        "--num-samples",
        "2",
        "--batch-size",
        "2",
        "--steps",
        "0",
        "--no-progress",
        "--inception-weights",
        str(evil),
    ]
    cli = load_script("evaluate.py")
    with pytest.raises(InceptionWeightsError, match="has SHA-256"):
        cli.evaluate(cli.parse_args(argv))  # main() turns these into one line and exit code 2 (checked below)
    with pytest.raises(InceptionWeightsError, match="was refused"):
        cli.evaluate(cli.parse_args(argv + ["--inception-weights-sha256", file_sha256(evil)]))
    assert not (tmp_path / "out" / "results.json").exists()
    # as a command: exit code 2 and one line naming the file, no traceback
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "evaluate.py"),
            *argv,
            "--inception-weights-sha256",
            file_sha256(evil),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: Inception weights file {str(evil)!r} was refused" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# FID reference statistics (.npz given by the user, and the fid-ref-*.npz cache), images .npz
# ---------------------------------------------------------------------------------------------------------------


def test_fid_reference_statistics_refuse_pickles(scorer, tmp_path, marker):
    stats = npz_bomb(tmp_path / "stats.npz", marker, sigma=np.eye(64))
    with pytest.raises(ValueError, match=r"'.*stats\.npz' was refused: it holds object \(pickled\) arrays"):
        reference_statistics(stats, scorer)
    with pytest.raises(ValueError, match="was refused"):
        load_statistics(stats)
    raw = tmp_path / "raw.npz"  # a bare pickle under an .npz name
    raw.write_bytes(pickle.dumps(MarkerPayload(marker)))
    with pytest.raises(ValueError, match=r"'.*raw\.npz' was refused: reading it would need unpickling"):
        reference_statistics(raw, scorer)

    # the cache of computed statistics: replaced by one whose JSON 'meta' is a pickled object
    np.savez(tmp_path / "ref.npz", images=np.random.default_rng(0).integers(0, 256, (4, 16, 16, 1), dtype=np.uint8))
    _, info = reference_statistics(tmp_path / "ref.npz", scorer, cache_dir=tmp_path / "cache")
    npz_bomb(Path(info["cache"]), marker, key="meta", mu=np.zeros(64), sigma=np.eye(64))
    with pytest.raises(ValueError, match=r"fid-ref-.*\.npz' was refused: it holds object \(pickled\) arrays"):
        reference_statistics(tmp_path / "ref.npz", scorer, cache_dir=tmp_path / "cache")


def test_evaluate_script_refuses_pickled_reference_statistics(pipe_dir, good_weights, tmp_path, marker):
    path, sha = good_weights
    stats = npz_bomb(tmp_path / "stats.npz", marker, sigma=np.eye(64))
    argv = [
        "--pipeline",
        str(pipe_dir),
        "--out",
        str(tmp_path / "out"),
        "--metrics",
        "fid",
        "--num-samples",
        "2",
        "--batch-size",
        "2",
        "--steps",
        "0",
        "--no-progress",
        "--inception-weights",
        path,
        "--inception-weights-sha256",
        sha,
        "--fid-feature-layer",
        "64",
        "--reference",
        str(stats),
    ]
    cli = load_script("evaluate.py")
    with pytest.raises(ValueError, match=r"stats\.npz' was refused"):
        cli.evaluate(cli.parse_args(argv))
    assert cli.main(argv) == 2 and not marker.exists()


def test_image_npz_with_object_arrays_is_refused(tmp_path, marker):
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_images(npz_bomb(tmp_path / "images.npz", marker, key="images"))


def test_reproduce_plot_caches_refuse_object_arrays(tmp_path, marker):
    reproduce = load_module("benchmarks/reproduce.py", "reproduce_sec")
    args = SimpleNamespace(cache_dir=tmp_path / "cache", plot_seed=0, out_dir=tmp_path / "out", suite="mnist")
    toy = reproduce.run_path(args.cache_dir, "toy", "ring", "dual_mcmc", 0).with_suffix(".npz")
    mnist = reproduce.run_path(args.cache_dir, "mnist", "mnist", "dual_mcmc", 0).with_suffix(".npz")
    for npz in (toy, mnist):
        npz.parent.mkdir(parents=True)
        npz_bomb(npz, marker, key="revised")
    with pytest.raises(ValueError, match="allow_pickle=False"):
        reproduce.toy_plots(args, ["ring"], ["dual_mcmc"])
    with pytest.raises(ValueError, match="allow_pickle=False"):
        reproduce.image_plot(args, [{"method": "dual_mcmc", "seed": 0}])


# ---------------------------------------------------------------------------------------------------------------
# Domain classifier cache
# ---------------------------------------------------------------------------------------------------------------


def test_domain_classifier_cache_refuses_pickles(tmp_path, marker):
    weights = torch_bomb(tmp_path / "domain-classifier-digits.safetensors", marker)
    (tmp_path / "domain-classifier-digits.json").write_text(
        json.dumps({"dataset": "digits", "steps": 600, "seed": 0, "image_size": 8})
    )
    with pytest.raises(
        ValueError,
        match=rf"domain classifier cache {str(weights)!r} is not a safetensors file.*"
        "delete domain-classifier-digits.safetensors and domain-classifier-digits.json",
    ):
        load_or_train_domain_classifier("digits", tmp_path)
    with pytest.raises(ValueError, match="is not a safetensors file"):
        DomainFrechetScorer("digits", tmp_path)
    (tmp_path / "domain-classifier-digits.json").write_bytes(pickle.dumps(MarkerPayload(marker)))
    with pytest.raises(ValueError, match=r"domain-classifier-digits\.json' is not JSON"):
        load_or_train_domain_classifier("digits", tmp_path)
    # JSON, but not a cache this project wrote: refused, and the weights file is not trained over
    (tmp_path / "domain-classifier-digits.json").write_text("[1, 2]")
    before = weights.read_bytes()
    with pytest.raises(ValueError, match=r"domain-classifier-digits\.json' is not a JSON object"):
        load_or_train_domain_classifier("digits", tmp_path)
    assert weights.read_bytes() == before


# ---------------------------------------------------------------------------------------------------------------
# Official-checkpoint converter: Python API and scripts/convert_official_checkpoint.py
# ---------------------------------------------------------------------------------------------------------------


def test_converter_refuses_pickled_code(tmp_path, marker):
    evil = torch_bomb(tmp_path / "ckpt.pth", marker, epoch=1, netG={}, netE={}, netI={})
    with pytest.raises(UnsafePickleError) as err:
        load_official_checkpoint(evil)
    assert f"official checkpoint {str(evil)!r} was refused: loading it would import and run Python code" in str(
        err.value
    )
    with pytest.raises(UnsafePickleError):
        convert_official_checkpoint(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # a payload hidden deep inside an otherwise plain checkpoint (an optimizer state entry)
    hidden = tmp_path / "hidden.pth"
    torch.save(
        {
            "epoch": 1,
            "netG": {"w": torch.zeros(1)},
            "netE": {},
            "netI": {},
            "optG": {"state": {0: {"step": MarkerPayload(marker)}}, "param_groups": []},
        },
        hidden,
    )
    with pytest.raises(UnsafePickleError, match="was refused"):
        load_official_checkpoint(hidden)


def test_converter_script_refuses_pickled_code(tmp_path, marker, capsys):
    evil = torch_bomb(tmp_path / "ckpt.pth", marker)
    assert load_script("convert_official_checkpoint.py").main([str(evil), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: official checkpoint {str(evil)!r} was refused") and "io.open" in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------------------
# Training checkpoints (--resume_from_checkpoint)
# ----------------------------------------------------------------------------------------------------------------

CHECKPOINT_FILES = [  # every file a checkpoint of an EMA run holds
    "energy.safetensors",
    "generator.safetensors",
    "encoder.safetensors",
    "optimizer_energy.pt",
    "optimizer_generator.pt",
    "optimizer_encoder.pt",
    "ema_energy.safetensors",
    "ema_generator.safetensors",
    "random_states_0.safetensors",
    "training_config.yaml",
    "trainer_state.json",
]
ACCELERATE_FILES = [  # what accelerator.load_state would read, some of it with weights_only=False
    "custom_checkpoint_0.pkl",
    "random_states_0.pkl",
    "scheduler.bin",
    "optimizer.bin",
    "pytorch_model.bin",
    "model.safetensors",
    "sampler.bin",
    "scaler.pt",
    "random_states_1.safetensors",
]


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):

    from hf_dualmcmc.trainer import train

    out = tmp_path_factory.mktemp("ema-run")
    train(tiny_config(out, max_steps=2, checkpoint_every=2, use_ema=True))
    return out


def fresh_copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_checkpoint_files_hold_no_pickle_that_resume_would_run(ema_run):
    checkpoint = ema_run / "checkpoints" / "checkpoint-2"
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted(CHECKPOINT_FILES)
    assert not [p.name for p in checkpoint.iterdir() if p.suffix in (".pkl", ".bin")]


@pytest.mark.parametrize(
    "name, format",
    [(n, "torch") for n in CHECKPOINT_FILES + ACCELERATE_FILES] + [(n, "pickle") for n in CHECKPOINT_FILES],
)
def test_malicious_pickle_in_a_checkpoint_is_refused_without_running(ema_run, tmp_path, name, format):

    from hf_dualmcmc.trainer import CheckpointError, train

    run = fresh_copy(ema_run, tmp_path)
    marker = tmp_path / "marker"
    planted = run / "checkpoints" / "checkpoint-2" / name
    if format == "torch":
        torch.save(MarkerPayload(marker), planted)
    else:
        planted.write_bytes(pickle.dumps(MarkerPayload(marker), protocol=2))
    expected = (
        rf"{name}: cannot be read|{name}: not a trainer state|unexpected file\(s\) \['{name}'\] that this "
        r"trainer did not write"
    )
    with pytest.raises(CheckpointError, match=expected):
        train(tiny_config(run, max_steps=3, use_ema=True), resume_from_checkpoint="latest")
    assert not marker.exists()


def test_yaml_tags_in_a_checkpoint_config_do_not_run(ema_run, tmp_path):

    from hf_dualmcmc.trainer import CheckpointError, train

    run = fresh_copy(ema_run, tmp_path)
    marker = tmp_path / "marker"
    config = run / "checkpoints" / "checkpoint-2" / "training_config.yaml"
    config.write_text(
        config.read_text() + f"extra: !!python/object/apply:exec [\"open('{marker}', 'w').write('x')\"]\n"
    )
    with pytest.raises(
        CheckpointError,
        match=r"training_config.yaml: cannot be read \(ConfigError: .*could not determine a constructor for the tag",
    ):
        train(tiny_config(run, max_steps=3, use_ema=True), resume_from_checkpoint="latest")
    assert not marker.exists()
    with pytest.raises(yaml.constructor.ConstructorError):  # (what safe_load refuses, a full loader would run)
        yaml.safe_load(config.read_text())


# ---------------------------------------------------------------------------------------------------------------
# Issue #22: an os.system payload is an UnsafePickleError; export and sample.py write only their own outputs
# ---------------------------------------------------------------------------------------------------------------


def test_os_system_pickles_are_refused_as_unsafe_naming_the_call(tmp_path, marker, capsys):
    from hf_dualmcmc.serialization import load_torch_file

    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(SystemPayload(live)))
    assert live.is_file(), "the payload runs when unpickled without restrictions"
    files = {"zip.pth": None, "proto2.pth": 2, "proto4.pth": 4, "proto0.pth": 0}
    for name, protocol in files.items():
        payload = {"netG": {}, "netE": {}, "netI": {}, "payload": SystemPayload(marker)}
        if protocol is None:
            torch.save(payload, tmp_path / name)
        else:
            (tmp_path / name).write_bytes(pickle.dumps(payload, protocol=protocol))
        refused = rf"{name}' was refused: loading it would import and run Python code \(posix\.system"
        with pytest.raises(UnsafePickleError, match=refused):
            load_torch_file(tmp_path / name, what="file", expected="tensors")
        with pytest.raises(UnsafePickleError, match="posix.system"):
            load_official_checkpoint(tmp_path / name)
        cli = load_script("convert_official_checkpoint.py")
        assert cli.main([str(tmp_path / name), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: official checkpoint") and "posix.system" in err and "weights_only" not in err
    assert not (tmp_path / "out").exists()


def _tree(root: Path, skip=()) -> dict[str, bytes | str]:
    """Every entry under ``root`` except the ``skip`` folders: relative path -> bytes (folders: ``"dir"``)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] not in skip:
            out[str(rel)] = "dir" if path.is_dir() else path.read_bytes()
    return out


def user_files(root: Path) -> Path:
    """A workspace as users have it: notes, a git folder, another checkpoint, a run with checkpoints and history
    whose pipeline/ is a saved pipeline; returns the run's pipeline folder."""
    (root / "notes.txt").write_text("my notes\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "other.pth").write_bytes(b"PK not mine")
    (root / "run" / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (root / "run" / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (root / "run" / "history.jsonl").write_text('{"step": 1}\n')
    return save_untrained_pipeline(root / "run" / "pipeline", 8)


def test_export_replaces_only_its_own_output(tmp_path, capsys):
    pipeline = user_files(tmp_path)
    before, _ = _tree(tmp_path), capsys.readouterr()
    cli = load_script("export_for_hub.py")
    for out, why in (
        (tmp_path / "run", "contains the input"),
        (pipeline / "energy_model", "is inside the input"),
        (tmp_path, "contains the input"),
        (tmp_path / "notes.txt", "exists and is not a folder"),
    ):
        assert cli.main([str(pipeline), str(out), "--overwrite"]) == 2
        assert why in capsys.readouterr().err
        assert _tree(tmp_path) == before
    assert cli.main([str(pipeline), str(tmp_path / "exported")]) == 0
    assert cli.main([str(pipeline), str(tmp_path / "exported")]) == 2  # exists, no --overwrite
    assert cli.main([str(pipeline), str(tmp_path / "exported"), "--overwrite"]) == 0  # ours: replaced
    assert cli.main([str(tmp_path / "exported"), str(tmp_path / "exported"), "--overwrite"]) == 0  # in place
    (tmp_path / "exported" / "notes.txt").write_text("added by the user")
    (tmp_path / "exported" / "encoder" / "best.pth").write_bytes(b"mine")
    assert cli.main([str(pipeline), str(tmp_path / "exported"), "--overwrite"]) == 2
    assert "did not write (encoder/best.pth, notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "exported" / "notes.txt").read_text() == "added by the user"
    assert _tree(tmp_path, skip=("exported",)) == before


def test_sample_script_writes_only_its_own_image(tmp_path, capsys):
    pipeline = user_files(tmp_path)
    before, _ = _tree(tmp_path), capsys.readouterr()
    cli = load_script("sample.py")
    base = ["--pipeline", str(pipeline), "--num", "2", "--steps", "1"]
    for out, why in (
        (tmp_path / "notes.txt", "expected an image file name"),
        (pipeline / "grid.png", "is inside the input"),
        (tmp_path / "no" / "grid.png", "does not exist"),
    ):
        assert cli.main([*base, "--out", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out") and why in err and _tree(tmp_path) == before
    (tmp_path / "fake.png").write_text("not an image")
    assert cli.main([*base, "--out", str(tmp_path / "fake.png"), "--overwrite"]) == 2
    assert "is not an image" in capsys.readouterr().err and (tmp_path / "fake.png").read_text() == "not an image"
    assert cli.main([*base, "--out", str(tmp_path / "grid.png")]) == 0
    grid = (tmp_path / "grid.png").read_bytes()
    assert cli.main([*base, "--out", str(tmp_path / "grid.png"), "--seed", "1"]) == 2  # exists, no --overwrite
    assert (tmp_path / "grid.png").read_bytes() == grid
    assert cli.main([*base, "--out", str(tmp_path / "grid.png"), "--seed", "1", "--overwrite"]) == 0
    assert (tmp_path / "grid.png").read_bytes() != grid
    assert cli.main(["--pipeline", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: ")
    assert _tree(tmp_path, skip=("grid.png", "fake.png")) == before

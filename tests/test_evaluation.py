"""Tests of the evaluation suite: fast, offline, tiny random pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

from conftest import MNIST, REPO_ROOT, load_module
from inception_weights import save_random_inception_weights

from hf_dualmcmc import (  # noqa: E402
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    configs_for_image_size,
)
from hf_dualmcmc.evaluation import (  # noqa: E402
    INCEPTION_WEIGHTS_FILENAME,
    INCEPTION_WEIGHTS_SHA256,
    DomainFrechetScorer,
    InceptionScorer,
    InceptionWeightsError,
    InceptionWeightsNotFoundError,
    ablation_sweep,
    builtin_split,
    energy_profile,
    frechet_distance,
    inception_weights_url,
    interpolation_grids,
    load_images,
    reconstruction_mse,
    reference_statistics,
    save_statistics,
    to_uint8,
    write_model_index,
)
from hf_dualmcmc.serialization import file_sha256  # noqa: E402

needs_mnist = pytest.mark.skipif(
    not MNIST.is_file(), reason=f"MNIST not found at {MNIST}: set HF_DUALMCMC_MNIST_DIR to its IDX folder"
)


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> str:
    return save_random_inception_weights(tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_FILENAME, seed=0)


@pytest.fixture(scope="module")
def inception_sha256(inception_weights) -> str:
    return file_sha256(inception_weights)


@pytest.fixture(scope="module")
def scorer(inception_weights, inception_sha256) -> InceptionScorer:
    # the real torch-fidelity extractor with injected (random) weights; layer "64" keeps CPU time low
    return InceptionScorer(
        inception_weights, expected_sha256=inception_sha256, fid_feature_layer="64", compute_is=False
    )


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    e, g, i = configs_for_image_size(16, 1, latent_dim=8, ngf=16, ndf=16, nif=8)
    pipe = DualMCMCPipeline(
        DualMCMCEnergyModel(e),
        DualMCMCGeneratorModel(g),
        DualMCMCEncoderModel(i),
        num_inference_steps=4,
        num_latent_steps=2,
    )
    path = tmp_path_factory.mktemp("pipe") / "tiny"
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipe(pipe_dir) -> DualMCMCPipeline:
    p = DualMCMCPipeline.from_pretrained(pipe_dir)
    p.set_progress_bar_config(disable=True)
    return p


def _random_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth blobs rather than white noise, so added noise is a real distribution shift
    base = rng.random((n, size // 4, size // 4, 1))
    return to_uint8(np.kron(base, np.ones((1, 4, 4, 1))))


# ---------------------------------------------------------------------------------------------------------------
# FID / IS
# ---------------------------------------------------------------------------------------------------------------


def test_fid_library_path_zero_for_identical_and_grows_with_noise(scorer):
    x = _random_images(24)
    stats = scorer.statistics(x)
    assert abs(frechet_distance(stats, stats)) < 1e-6
    rng = np.random.default_rng(1)
    fids = []
    for sd in (10, 40, 100):
        noisy = np.clip(x.astype(np.float64) + rng.normal(0, sd, x.shape), 0, 255).astype(np.uint8)
        fids.append(frechet_distance(stats, scorer.statistics(noisy)))
    assert 0 < fids[0] < fids[1] < fids[2], fids
    opts = scorer.options
    assert opts["library"] == "torch-fidelity" and opts["fid_feature_layer"] == "64" and opts["antialias"] is False
    assert opts["inception_weights"] == INCEPTION_WEIGHTS_FILENAME and opts["versions"]["torch_fidelity"]
    assert opts["inception_weights_sha256"] == file_sha256(scorer.weights_path)
    assert opts["inception_weights_published"] is False  # random test weights


def test_extractor_holds_exactly_the_verified_weights(scorer, inception_weights):
    # torch-fidelity's constructor loaded the verified bytes (a private copy: feature_extractor_weights_path)
    saved = torch.load(inception_weights, weights_only=True)
    got = scorer.extractor.state_dict()
    assert set(got) == set(saved) and all(torch.equal(got[k], saved[k]) for k in saved)


def test_inception_score_runs_through_library(inception_weights, inception_sha256):
    s = InceptionScorer(inception_weights, expected_sha256=inception_sha256, fid_feature_layer="64", compute_is=True)
    mean, std = s.inception_score(_random_images(4), splits=2)
    assert mean >= 1.0 - 1e-6 and std >= 0.0


def test_offline_without_weights_names_flag_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached copy
    with pytest.raises(InceptionWeightsNotFoundError) as err:
        InceptionScorer(None)
    assert "--inception_weights" in str(err.value) and INCEPTION_WEIGHTS_FILENAME in str(err.value)
    with pytest.raises(
        InceptionWeightsNotFoundError, match=f"{tmp_path / 'missing.pth'}' does not exist: pass --inception_weights"
    ):
        InceptionScorer(tmp_path / "missing.pth")


def test_inception_weights_hash_mismatch_names_file_and_both_hashes(inception_weights, inception_sha256):
    with pytest.raises(InceptionWeightsError) as err:  # default: the published file's hash
        InceptionScorer(inception_weights, fid_feature_layer="64", compute_is=False)
    msg = str(err.value)
    assert inception_weights in msg and INCEPTION_WEIGHTS_SHA256 in msg and inception_sha256 in msg
    assert "--inception_weights_sha256" in msg
    other = "0" * 64
    with pytest.raises(InceptionWeightsError, match=f"has SHA-256 {inception_sha256}, expected {other}"):
        InceptionScorer(inception_weights, expected_sha256=other, fid_feature_layer="64", compute_is=False)
    with pytest.raises(ValueError, match=r"--inception_weights_sha256\) must be 64 hex digits.*'abc'"):
        InceptionScorer(inception_weights, expected_sha256="abc", fid_feature_layer="64")
    # upper case and surrounding spaces are accepted
    s = InceptionScorer(
        inception_weights, expected_sha256=f" {inception_sha256.upper()} ", fid_feature_layer="64", compute_is=False
    )
    assert s.weights_sha256 == inception_sha256


def test_inception_weights_wrong_layout_is_a_clear_error(tmp_path):
    path = tmp_path / INCEPTION_WEIGHTS_FILENAME
    torch.save({"fc.weight": torch.zeros(3, 3), "extra": torch.zeros(1)}, path)
    with pytest.raises(InceptionWeightsError) as err:
        InceptionScorer(path, expected_sha256=file_sha256(path), fid_feature_layer="64", compute_is=False)
    msg = str(err.value)  # torch's strict load_state_dict, inside torch-fidelity's constructor
    assert f"Inception weights file {str(path)!r} is not torch-fidelity's InceptionV3 state dict" in msg
    assert "Missing key(s)" in msg and 'Unexpected key(s) in state_dict: "extra"' in msg
    torch.save([torch.zeros(1)], path)
    with pytest.raises(InceptionWeightsError, match=r"holds a list, expected torch-fidelity's InceptionV3 state dict"):
        InceptionScorer(path, expected_sha256=file_sha256(path), fid_feature_layer="64", compute_is=False)


def test_cached_and_downloaded_weights_are_verified(tmp_path, monkeypatch, inception_weights, inception_sha256):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DUALMCMC_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):  # torch hub checks hash_prefix before moving
        calls.append((url, hash_prefix))
        if hash_prefix != inception_sha256:
            raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{inception_sha256}")')
        Path(dst).write_bytes(Path(inception_weights).read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    cached = tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILENAME
    with pytest.raises(InceptionWeightsError, match="discarded: invalid hash value"):
        InceptionScorer(None, fid_feature_layer="64", compute_is=False)  # the published hash is what is asked for
    assert calls[-1][1] == INCEPTION_WEIGHTS_SHA256 and not cached.exists()
    s = InceptionScorer(None, expected_sha256=inception_sha256, fid_feature_layer="64", compute_is=False)
    assert s.weights_path == str(cached) and calls[-1] == (inception_weights_url(), inception_sha256)
    # a cached copy is verified too (no download): a different hash is refused
    with pytest.raises(InceptionWeightsError, match=str(cached)):
        InceptionScorer(None, fid_feature_layer="64", compute_is=False)
    assert len(calls) == 2


def test_reference_statistics_cached_npz_and_precomputed(scorer, tmp_path):
    images = _random_images(10)
    np.savez(tmp_path / "ref.npz", images=images)
    stats, info = reference_statistics(tmp_path / "ref.npz", scorer, cache_dir=tmp_path / "cache")
    assert info["cached"] is False and info["num_images"] == 10 and Path(info["cache"]).is_file()
    again, info2 = reference_statistics(tmp_path / "ref.npz", scorer, cache_dir=tmp_path / "cache")
    assert (
        info2["cached"] is True
        and np.allclose(again["mu"], stats["mu"])
        and np.allclose(again["sigma"], stats["sigma"])
    )
    save_statistics(tmp_path / "stats.npz", stats)
    pre, pinfo = reference_statistics(tmp_path / "stats.npz", scorer)
    assert pinfo["kind"] == "precomputed statistics" and np.allclose(pre["mu"], stats["mu"])
    bad = {"mu": np.zeros(2048), "sigma": np.eye(2048)}
    save_statistics(tmp_path / "stats2048.npz", bad)
    with pytest.raises(ValueError, match="feature layer"):
        reference_statistics(tmp_path / "stats2048.npz", scorer)


# ---------------------------------------------------------------------------------------------------------------
# domain Frechet distance
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    # small convolutions on a shared 2-core machine run far faster single-threaded (no thread oversubscription)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@needs_mnist
def test_domain_fd_separates_real_from_noisy_mnist(tmp_path, one_thread):
    scorer = DomainFrechetScorer("mnist", tmp_path, steps=150)
    assert scorer.info["test_accuracy"] > 0.5
    assert (tmp_path / "domain-classifier-mnist.safetensors").is_file()
    meta = json.loads((tmp_path / "domain-classifier-mnist.json").read_text())
    assert meta["test_accuracy"] == scorer.info["test_accuracy"] and meta["num_train"] == 9000
    real = load_images("mnist", image_size=32, split="test", max_images=400)  # padded 28 -> 32, as trained
    rng = np.random.default_rng(0)
    noisy = np.clip(real + rng.normal(0, 60, real.shape), 0, 255).astype(np.uint8)
    d_real, d_noisy = scorer.distance(real), scorer.distance(noisy)
    assert d_noisy > 5 * d_real, (d_real, d_noisy)
    cached = DomainFrechetScorer("mnist", tmp_path, steps=150)
    assert cached.info["cached"] is True
    assert cached.distance(real) == pytest.approx(d_real, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# image sources: the training data's grammar and loader (hf_dualmcmc.data)
# ---------------------------------------------------------------------------------------------------------------


def test_load_images_digits_alias_and_builtin_split():
    from hf_dualmcmc.data import load_digits_images

    held_out = load_images("digits", split="test")
    assert held_out.shape == (180, 8, 8, 1) and held_out.dtype == np.uint8
    assert np.array_equal(held_out, load_images("sklearn:digits", split="test"))
    assert np.array_equal(held_out[..., 0], load_digits_images("test"))
    images, labels = builtin_split("digits", "train")
    expected_images, expected_labels = load_digits_images("train", return_labels=True)
    assert np.array_equal(images[..., 0], expected_images) and np.array_equal(labels, expected_labels)
    assert load_images("digits", image_size=16, num_channels=3, max_images=5).shape == (5, 16, 16, 3)
    with pytest.raises(ValueError, match="unknown built-in source 'cifar10'"):
        builtin_split("cifar10")
    with pytest.raises(ValueError, match=r"split must be one of .* got 'validation'"):
        builtin_split("digits", "validation")


def test_load_images_matches_the_training_loader(tmp_path):
    import PIL.Image

    from hf_dualmcmc.data import DataConfig, load_image_dataset

    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, a in enumerate(arrays):
        PIL.Image.fromarray(a).save(folder / f"{i}.png")
    native = load_images(folder, split="train")
    assert native.shape == (4, 8, 8, 3)
    assert sorted(x.tobytes() for x in native) == sorted(x.tobytes() for x in arrays)
    for kwargs in ({"image_size": 12, "num_channels": 1}, {"image_size": 4, "num_channels": 3}):
        got = load_images(folder, split="train", **kwargs)
        resize = "pad" if kwargs["image_size"] >= 8 else "resize"  # load_images' default policy
        train = load_image_dataset(DataConfig(str(folder), resize=resize, cache_dir=str(tmp_path / "c"), **kwargs))
        assert np.array_equal(got, train.images.permute(0, 2, 3, 1).numpy()), kwargs
    np.savez(tmp_path / "images.npz", images=arrays)
    assert np.array_equal(load_images(tmp_path / "images.npz"), arrays)
    save_statistics(tmp_path / "stats.npz", {"mu": np.zeros(4), "sigma": np.eye(4)})
    with pytest.raises(ValueError, match="FID statistics"):
        load_images(tmp_path / "stats.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_images(tmp_path / "missing")


@needs_mnist
def test_builtin_mnist_split_is_padded_and_labelled():
    from hf_dualmcmc.data import load_mnist_images

    images, labels = builtin_split("mnist", "test")
    raw, raw_labels = load_mnist_images(split="test", return_labels=True)
    assert images.shape == (1000, 32, 32, 1) and np.array_equal(labels, raw_labels)
    assert np.array_equal(images[:, 2:30, 2:30, 0], raw) and images[:, :2].max() == 0


# ---------------------------------------------------------------------------------------------------------------
# analyses on a tiny random pipeline
# ---------------------------------------------------------------------------------------------------------------


def test_reconstruction_mse_writes_json_and_pngs(pipe, tmp_path):
    images = _random_images(12)
    res = reconstruction_mse(
        pipe, images, num_latent_steps=2, curve_steps=[0, 1, 3], batch_size=6, out_dir=tmp_path, progress=False
    )
    steps = [c["num_latent_steps"] for c in res["curve"]]
    assert steps == [0, 1, 2, 3]
    curve = {c["num_latent_steps"]: c["mse"] for c in res["curve"]}
    assert res["mse_inf_plus_l"] == curve[2]
    # zero z-steps reproduce the encoder-only reconstruction; values are per-pixel MSE on [0, 1]
    assert res["mse_inf"] == pytest.approx(curve[0], rel=1e-6) and 0 < res["mse_inf"] < 1
    data = json.loads((tmp_path / "recon_mse.json").read_text())
    assert data["mse_inf"] == pytest.approx(res["mse_inf"])
    for name in ("recon_mse_curve.png", "recon_examples.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_energy_profile_matches_pipeline_energies(pipe, tmp_path):
    res = energy_profile(pipe, batch_size=4, num_inference_steps=4, num_snapshots=3, seed=3, out_dir=tmp_path)
    ref = pipe(batch_size=4, num_inference_steps=4, generator=3, return_energies=True, output_type="pt")
    assert len(res["mean_energy"]) == 5
    np.testing.assert_allclose(res["mean_energy"], ref.energies.double().mean(1).numpy(), rtol=1e-4, atol=1e-6)
    assert res["snapshot_steps"] == [0, 2, 4]
    assert json.loads((tmp_path / "energy_profile.json").read_text())["steps"] == [0, 1, 2, 3, 4]
    from PIL import Image

    strip = Image.open(tmp_path / "revision_strip.png")
    # 3 snapshots x 4 samples of 16 px, saved upscaled by an integer factor until the smaller side is >= 256 px
    factor = strip.size[0] // (3 * 16)
    assert strip.size == (3 * 16 * factor, 4 * 16 * factor) and min(strip.size) >= 256 > min(strip.size) - factor * 16
    assert (tmp_path / "energy_profile.png").stat().st_size > 0


def test_interpolation_grids(pipe, tmp_path):
    res = interpolation_grids(
        pipe, num_rows=2, num_points=4, images=_random_images(4), num_inference_steps=1, out_dir=tmp_path
    )
    assert res["kinds"] == ["generation", "reconstruction"]
    assert res["grids"]["generation"].size == (4 * 16, 2 * 16)
    for kind in res["kinds"]:
        assert (tmp_path / f"interpolation_{kind}.png").is_file()
    assert json.loads((tmp_path / "interpolation.json").read_text())["num_points"] == 4


def test_ablation_sweep_table_and_json(pipe, tmp_path):
    calls = []

    def metric(samples):
        calls.append(samples.shape)
        return {"mean_pixel": float(samples.mean())}

    res = ablation_sweep(
        pipe,
        x_steps=(0, 2),
        z_steps=(0, 2),
        num_samples=6,
        batch_size=6,
        images=_random_images(6),
        sample_metric=metric,
        out_dir=tmp_path,
        progress=False,
    )
    assert [r["x_steps"] for r in res["x_steps"]] == [0, 2] and calls == [(6, 16, 16, 1)] * 2
    assert [r["z_steps"] for r in res["z_steps"]] == ["encoder only (Inf)", 0, 2]
    assert "| x_steps |" in res["markdown"] and "mean_pixel" in res["markdown"]
    assert json.loads((tmp_path / "ablation.json").read_text())["x_steps"][1]["x_steps"] == 2
    assert (tmp_path / "ablation.md").read_text().startswith("### x-chain steps")


# ---------------------------------------------------------------------------------------------------------------
# model index, CLI
# ---------------------------------------------------------------------------------------------------------------


def test_write_model_index_round_trip(tmp_path):
    from huggingface_hub import ModelCard

    card = tmp_path / "README.md"
    card.write_text("---\nlicense: apache-2.0\ntags:\n- ebm\n---\n# My EBM\n\nSome text.\n")
    write_model_index(
        card, {"fid": 9.26, "is": 8.55, "note": "skipped"}, dataset_name="CIFAR-10", dataset_type="cifar10"
    )
    write_model_index(card, {"fid": 9.0, "mse_inf": 0.02}, dataset_name="CIFAR-10", dataset_type="cifar10")
    loaded = ModelCard.load(card)
    got = {r.metric_type: r.metric_value for r in loaded.data.eval_results}
    assert got == {"fid": 9.0, "inception-score": 8.55, "mse-encoder-only": 0.02}
    assert all(
        r.task_type == "unconditional-image-generation" and r.dataset_type == "cifar10"
        for r in loaded.data.eval_results
    )
    assert loaded.data.license == "apache-2.0" and "Some text." in loaded.text

    new = tmp_path / "new"
    new.mkdir()
    write_model_index(new, {"fid": 1.0}, dataset_name="MNIST", dataset_type="mnist", model_name="tiny")
    loaded = ModelCard.load(new / "README.md")
    assert loaded.data.model_name == "tiny" and loaded.data.eval_results[0].metric_value == 1.0
    with pytest.raises(ValueError, match="numeric"):
        write_model_index(new, {"note": "x"}, dataset_name="MNIST", dataset_type="mnist")
    # only a card is written (issue #22): no other file, no README without front matter, nothing through a link
    (tmp_path / "bare.md").write_text("# No front matter\n")
    (tmp_path / "model_index.json").write_text("{}")
    (tmp_path / "link.md").symlink_to(card)
    for path, why in (
        ("bare.md", "is not a model card"),
        ("model_index.json", "expected a README.md"),
        ("link.md", "not a regular file"),
        ("no/README.md", "does not exist"),
    ):
        before = (tmp_path / path).read_bytes() if (tmp_path / path).exists() else None
        with pytest.raises(ValueError, match=why):
            write_model_index(tmp_path / path, {"fid": 1.0}, dataset_name="MNIST", dataset_type="mnist")
        assert ((tmp_path / path).read_bytes() if (tmp_path / path).exists() else None) == before


def test_cli_smoke(pipe_dir, inception_weights, inception_sha256, tmp_path):
    ref = tmp_path / "ref.npz"
    np.savez(ref, images=_random_images(12))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "evaluate.py"),
        "--pipeline",
        str(pipe_dir),
        "--out",
        str(out),
        "--metrics",
        "fid,recon,profile,interp,ablation",
        "--num_samples",
        "8",
        "--batch_size",
        "8",
        "--reference",
        str(ref),
        "--inception_weights",
        inception_weights,
        "--inception_weights_sha256",
        inception_sha256,
        "--fid_feature_layer",
        "64",
        "--num_recon",
        "8",
        "--steps",
        "2",
        "--latent_steps",
        "1",
        "--ablation_x_steps",
        "0,2",
        "--ablation_z_steps",
        "0,1",
        "--ablation_samples",
        "4",
        "--no_progress",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    s = results["summary"]
    assert {"fid_proposal", "fid_revised", "mse_inf", "mse_inf_plus_l", "energy_change"} <= set(s)
    assert results["sampler"]["num_inference_steps"] == 2 and results["sampler"]["num_samples"] == 8
    assert results["inception_options"]["fid_feature_layer"] == "64"
    for name in ("energy_profile.png", "recon_mse_curve.png", "interpolation_generation.png", "ablation.md"):
        assert (out / name).is_file(), name
    assert "fid_revised" in proc.stdout


def test_cli_offline_without_weights_names_flag_and_file(pipe_dir, tmp_path, monkeypatch):
    cli = load_module("scripts/evaluate.py", "evaluate_cli")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
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
    ]
    with pytest.raises(InceptionWeightsNotFoundError) as err:
        cli.evaluate(cli.parse_args(argv))
    assert "--inception_weights" in str(err.value) and INCEPTION_WEIGHTS_FILENAME in str(err.value)
    assert cli.main(argv) == 2  # as a command: one line on stderr, exit code 2


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_writes_only_its_own_files(pipe_dir, tmp_path, capsys):
    """Issue #22: --out holds only an evaluation's files and never lies in an input; --model-card writes only a card."""
    import shutil

    cli = load_module("scripts/evaluate.py", "evaluate_cli")
    pipeline = tmp_path / "run" / "pipeline"
    shutil.copytree(pipe_dir, pipeline)
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "run" / "history.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "README.md").write_text("# my project\n")
    before = _files(tmp_path)
    base = ["--pipeline", str(pipeline), "--metrics", "profile", "--batch-size", "2", "--steps", "1", "--no-progress"]
    card = ["--dataset-name", "Tiny", "--dataset-type", "tiny"]
    for argv, why in (
        (["--out", str(pipeline)], "is the input"),
        (["--out", str(tmp_path / "run")], "contains the input"),
        (["--out", str(tmp_path)], "contains the input"),
        (["--out", str(tmp_path / "notes.txt")], "exists and is not a folder"),
        (
            ["--out", str(tmp_path / "e"), "--model-card", str(pipeline / "model_index.json"), *card],
            "expected a README.md",
        ),
        (["--out", str(tmp_path / "e"), "--model-card", str(tmp_path / "README.md"), *card], "is not a model card"),
    ):
        assert cli.main([*base, *argv]) == 2
        assert why in capsys.readouterr().err.splitlines()[-1]
        assert _files(tmp_path) == before and not (tmp_path / "e").exists()
    out = ["--out", str(tmp_path / "e"), "--model-card", str(pipeline / "README.md"), *card]
    assert cli.main([*base, *out]) == 0
    assert cli.main([*base, *out]) == 0  # a previous evaluation's --out, a card this project wrote
    (tmp_path / "e" / "mine.txt").write_text("kept")
    assert cli.main([*base, *out]) == 2 and "(mine.txt)" in capsys.readouterr().err
    assert {k: v for k, v in _files(tmp_path).items() if not k.startswith(("e/", "run/pipeline/README.md"))} == before


@pytest.mark.parametrize("method", ["short_run", "cooperative", "inference_only"])
def test_cli_on_baseline_pipelines(method, tmp_path, capsys):
    """Issue #22: the metrics a baseline's pipeline can do run; the others are one line naming the component."""
    from bad_inputs_entry_points import save_baseline

    cli = load_module("scripts/evaluate.py", "evaluate_cli")
    pipeline = save_baseline(method, tmp_path / "pipe")
    needs = {"recon": "encoder", "profile": "energy_model", "interp": "generator_model", "ablation": "energy_model"}
    have = {
        "short_run": {"energy_model"},
        "cooperative": {"energy_model", "generator_model"},
        "inference_only": {"generator_model", "encoder"},
    }[method]
    base = [
        "--pipeline",
        str(pipeline),
        "--batch-size",
        "2",
        "--no-progress",
        "--recon-data",
        "sklearn:digits",
        "--num-recon",
        "4",
        "--num-ood",
        "4",
        "--ablation-x-steps",
        "0,1",
        "--ablation-z-steps",
        "0,1",
        "--ablation-samples",
        "2",
        "--latent-steps",
        "1",
    ]
    for metric in ("recon", "profile", "interp", "ablation", "ood"):
        out = tmp_path / metric
        code = cli.main([*base, "--metrics", metric, "--out", str(out)])
        err = capsys.readouterr().err.splitlines()
        if needs.get(metric, "energy_model" if "energy_model" in have else "encoder") in have:
            assert code == 0 and (out / "results.json").is_file(), err[-3:]
        else:
            assert code == 2 and not out.exists()
            assert err[-1].startswith("error: this pipeline has only ") and f"{metric} needs a" in err[-1]

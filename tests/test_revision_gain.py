"""benchmarks/revision_gain.py: one x-chain scored at several steps, paired bootstrap of the FD gain."""

import json

import numpy as np
import pytest
import torch
from conftest import MNIST, load_module, save_untrained_pipeline


@pytest.fixture(scope="module")
def revision_gain():
    return load_module("benchmarks/revision_gain.py", "revision_gain")


def test_the_kept_states_are_the_pipelines_own_samples(revision_gain, tiny_pipeline):
    traj = revision_gain.revision_trajectory(
        tiny_pipeline, 6, 4, [0, 2, 4], step_size=0.5, noise_scale=0.01, batch_size=4, seed=3
    )
    gen = torch.Generator().manual_seed(3)
    outs = [
        tiny_pipeline(
            batch_size=n,
            num_inference_steps=4,
            step_size=0.5,
            noise_scale=0.01,
            generator=gen,
            output_type="np",
            return_proposals=True,
        )
        for n in (4, 2)
    ]
    as_uint8 = [
        np.round(np.concatenate([getattr(o, k) for o in outs]) * 255).astype(np.uint8) for k in ("proposals", "images")
    ]
    assert traj["images"][0].shape == (6, 16, 16, 3) and traj["images"][0].dtype == np.uint8
    assert np.abs(traj["images"][0].astype(int) - as_uint8[0]).max() <= 1  # step 0: the proposals G(z)
    assert np.abs(traj["images"][4].astype(int) - as_uint8[1]).max() <= 1  # the last step: the revised samples
    assert traj["rms_move"][0] == 0 < traj["rms_move"][2] < traj["rms_move"][4]
    assert len(traj["mean_energy"]) == 5


def test_bootstrap_interval_of_the_gain(revision_gain):
    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(300, 4, generator=gen)
    far = torch.randn(300, 4, generator=gen) + 1.5
    ci = revision_gain.bootstrap_gains({0: far, 1: far.clone(), 2: far - 1.5}, reference, num_boot=30)
    assert ci[1] == (0.0, 0.0)  # unchanged samples: no gain, in every resample
    assert 0 < ci[2][0] < ci[2][1]  # samples moved onto the reference: a gain, its interval above 0


def test_bad_arguments_are_refused(revision_gain, tmp_path, capsys):
    for argv, message in [
        (["--pipeline", "x", "--out", "o"], "NAME=DIR"),
        (["--pipeline", f"a={tmp_path / 'missing'}", "--out", "o"], "existing directory"),
        (["--pipeline", f"a={tmp_path}", "--settings", "0.4", "--out", "o"], "STEP_SIZE:NOISE"),
        (["--pipeline", f"a={tmp_path}", "--settings", "0:0.1", "--out", "o"], "STEP_SIZE > 0"),
        (["--pipeline", f"a={tmp_path}", "--record", "5,300", "--out", "o"], "<= --max_steps"),
    ]:
        with pytest.raises(SystemExit):
            revision_gain.parse_args(argv)
        assert message in capsys.readouterr().err


@pytest.mark.skipif(
    not MNIST.is_file(), reason=f"MNIST not found at {MNIST}: set HF_DUALMCMC_MNIST_DIR to its IDX folder"
)
def test_end_to_end_on_an_untrained_mnist_pipeline(revision_gain, tmp_path):
    save_untrained_pipeline(tmp_path / "pipe", 32, latent_dim=8)
    out = tmp_path / "rg" / "gain"
    results = revision_gain.main(
        [
            "--pipeline",
            f"tiny={tmp_path / 'pipe'}",
            "--settings",
            "0.4:0.001,1:0",
            "--max-steps",
            "4",
            "--record",
            "2,4",
            "--num-samples",
            "100",
            "--num-boot",
            "5",
            "--out",
            str(out),
        ]
    )
    assert [(r["step_size"], r["noise_scale"]) for r in results["runs"]] == [(0.4, 0.001), (1.0, 0.0)]
    assert set(results["runs"][0]["fd"]) == {0, 2, 4} and results["floor"] > 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["runs"][1]["gain_ci95"]["4"][0] <= saved["runs"][1]["gain_ci95"]["4"][1]
    assert "| tiny | 1 | 0 | 4 |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 1000
    revision_gain.plot(saved, tmp_path / "again.png")  # also from the JSON (string step keys)
    assert (tmp_path / "again.png").stat().st_size > 1000


def test_digits_domain_floors_at_the_whole_training_split(revision_gain, tmp_path):
    """``--domain digits`` scores against the 180 held-out digits with the committed digits classifier; asked for more
    samples than the 1,617 training digits, the floor uses all of them (and says so)."""
    save_untrained_pipeline(tmp_path / "pipe", 8)
    out = tmp_path / "gain"
    results = revision_gain.main(
        [
            "--pipeline",
            f"tiny={tmp_path / 'pipe'}",
            "--domain",
            "digits",
            "--max-steps",
            "2",
            "--record",
            "2",
            "--num-samples",
            "1700",
            "--num-boot",
            "3",
            "--out",
            str(out),
        ]
    )
    assert (
        results["domain"] == "digits"
        and results["floor_n"] == 1617
        and 0 < results["floor"] < results["runs"][0]["fd"][0]
    )
    assert "Floor (1,617 training images" in out.with_suffix(".md").read_text()

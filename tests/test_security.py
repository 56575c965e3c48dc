"""Loading a file never runs code: malicious pickles planted where the package reads files."""

import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Payload:
    """Unpickling this writes ``marker`` (what an attacker's checkpoint file would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


# ----------------------------------------------------------------------------------------------------------------
# Training checkpoints (--resume_from_checkpoint)
# ----------------------------------------------------------------------------------------------------------------

CHECKPOINT_FILES = [  # every file a checkpoint of an EMA run holds
    "energy.safetensors", "generator.safetensors", "encoder.safetensors", "optimizer_energy.pt",
    "optimizer_generator.pt", "optimizer_encoder.pt", "ema_energy.safetensors", "ema_generator.safetensors",
    "random_states_0.safetensors", "training_config.yaml", "trainer_state.json",
]
ACCELERATE_FILES = [  # what accelerator.load_state would read, some of it with weights_only=False
    "custom_checkpoint_0.pkl", "random_states_0.pkl", "scheduler.bin", "optimizer.bin", "pytorch_model.bin",
    "model.safetensors", "sampler.bin", "scaler.pt", "random_states_1.safetensors",
]


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    from test_trainer import tiny_config

    from hf_dualmcmc.trainer import train

    out = tmp_path_factory.mktemp("ema-run")
    train(tiny_config(out, max_steps=2, checkpoint_every=2, use_ema=True))
    return out


def fresh_copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_the_payload_is_live(tmp_path):
    # the planted files below do run code when loaded with pickle: the tests that they do not are not vacuous
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.read_text() == "code ran"
    marker.unlink()
    torch.save(Payload(marker), tmp_path / "p.pt")
    torch.load(tmp_path / "p.pt", weights_only=False)
    assert marker.exists()


def test_checkpoint_files_hold_no_pickle_that_resume_would_run(ema_run):
    checkpoint = ema_run / "checkpoints" / "checkpoint-2"
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted(CHECKPOINT_FILES)
    assert not [p.name for p in checkpoint.iterdir() if p.suffix in (".pkl", ".bin")]


@pytest.mark.parametrize("name, format", [(n, "torch") for n in CHECKPOINT_FILES + ACCELERATE_FILES]
                         + [(n, "pickle") for n in CHECKPOINT_FILES])
def test_malicious_pickle_in_a_checkpoint_is_refused_without_running(ema_run, tmp_path, name, format):
    from test_trainer import tiny_config

    from hf_dualmcmc.trainer import CheckpointError, train

    run = fresh_copy(ema_run, tmp_path)
    marker = tmp_path / "marker"
    planted = run / "checkpoints" / "checkpoint-2" / name
    if format == "torch":
        torch.save(Payload(marker), planted)
    else:
        planted.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    expected = (rf"{name}: cannot be read|{name}: not a trainer state|unexpected file\(s\) \['{name}'\] that this "
                r"trainer did not write")
    with pytest.raises(CheckpointError, match=expected):
        train(tiny_config(run, max_steps=3, use_ema=True), resume_from_checkpoint="latest")
    assert not marker.exists()


def test_yaml_tags_in_a_checkpoint_config_do_not_run(ema_run, tmp_path):
    from test_trainer import tiny_config

    from hf_dualmcmc.trainer import CheckpointError, train

    run = fresh_copy(ema_run, tmp_path)
    marker = tmp_path / "marker"
    config = run / "checkpoints" / "checkpoint-2" / "training_config.yaml"
    config.write_text(config.read_text() + f"extra: !!python/object/apply:exec [\"open('{marker}', 'w').write('x')\"]\n")
    with pytest.raises(CheckpointError, match=r"training_config.yaml: cannot be read \(ConstructorError"):
        train(tiny_config(run, max_steps=3, use_ema=True), resume_from_checkpoint="latest")
    assert not marker.exists()
    with pytest.raises(yaml.constructor.ConstructorError):  # (what safe_load refuses, a full loader would run)
        yaml.safe_load(config.read_text())

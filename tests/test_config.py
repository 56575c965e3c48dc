"""Tests for ``hf_dualmcmc.training_config``: settings accepted at the edges, YAML rules, "did you mean" (issue #22).

The refusals are rows of tests/test_bad_inputs.py (bad_inputs_config_data.py); here what is accepted, and how.
"""

from pathlib import Path

import pytest
import yaml

from hf_dualmcmc.trainer import build_models
from hf_dualmcmc.training_config import (
    MAX_YAML_BYTES,
    ConfigError,
    TrainConfig,
    load_config,
    network_configs,
    safe_load_yaml,
)


def raw(**run):
    return {
        "data": {"source": "sklearn:digits", "image_size": 8, "num_channels": 1},
        "model": {"latent_dim": 4, "ngf": 8, "ndf": 8, "nif": 4},
        "run": {"report_to": "none", **run},
    }


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "c.yaml").write_text(text)
    return tmp_path / "c.yaml"


def test_mixed_precision_no_as_yaml_reads_it(tmp_path):
    path = write(tmp_path, yaml.safe_dump(raw()) + "\n")
    assert load_config(path, ["run.mixed_precision=no"]).run.mixed_precision == "no"
    assert load_config(path, ["run.mixed_precision='no'"]).run.mixed_precision == "no"
    assert TrainConfig.from_dict(raw(mixed_precision=False)).run.mixed_precision == "no"
    assert TrainConfig.from_dict(raw(mixed_precision=None)).run.mixed_precision is None
    assert TrainConfig.from_dict(raw(mixed_precision="bf16")).to_dict()["run"]["mixed_precision"] == "bf16"


def test_settings_at_the_edges_are_accepted():
    for run in (
        {"seed": 0},
        {"seed": 2**31 - 1},
        {"report_to": "tensorboard"},
        {"report_to": "all"},
        {"max_steps": 2**63 - 1},
    ):
        TrainConfig.from_dict(raw(**run))
    cifar = {"source": "uoft-cs/cifar10", "image_size": 32, "num_channels": 3}  # a paper template, its image shape
    TrainConfig.from_dict({**raw(card_template="cifar10", dataset_name="uoft-cs/cifar10"), "data": cifar})
    for size in (4, 8, 16, 32, 64, 128):
        TrainConfig.from_dict(
            {
                "data": {"source": "digits", "image_size": size, "num_channels": 1},
                "model": {"latent_dim": 4, "ngf": 32, "ndf": 32, "nif": 4},
            }
        )
    config = TrainConfig.from_dict({**raw(), "teaching": {"noise_scale": 0, "use_temp": False}})
    assert config.teaching.temperature == 1.0


def test_network_configs_are_what_the_trainer_builds():
    config = TrainConfig.from_dict(raw())
    for cfg, model in zip(network_configs(config.data, config.model), build_models(config.data, config.model)):
        assert cfg.to_dict() == model.config.to_dict()


@pytest.mark.parametrize(
    "key, suggestion",
    [
        ("run.max_step", "max_steps"),
        ("run.sed", "seed"),
        ("teaching.stepsize", "step_size"),
        ("sampler.bnstats", "bn_stats"),
    ],
)
def test_did_you_mean(key, suggestion):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=f"^{key}: unknown key; did you mean '{suggestion}'\\? expected one of"):
        TrainConfig.from_dict({**raw(), section: {name: 1}})
    with pytest.raises(ConfigError, match="^run.zzzzzz: unknown key; expected one of"):  # nothing close: no guess
        TrainConfig.from_dict(raw(zzzzzz=1))


def test_safe_load_yaml_reads_plain_yaml(tmp_path):
    assert safe_load_yaml("a: [1, 2]\nb: {c: x}\n") == {"a": [1, 2], "b": {"c": "x"}}
    assert safe_load_yaml(b"a: 1") == {"a": 1}
    assert safe_load_yaml(write(tmp_path, "run: {seed: 3}\n")) == {"run": {"seed": 3}}
    assert safe_load_yaml(write(tmp_path, "# " + "x" * (MAX_YAML_BYTES - 3) + "\n")) is None  # exactly the limit
    with pytest.raises(ConfigError, match=r"^c.yaml: not valid YAML \(anchors and aliases"):
        safe_load_yaml("a: &x 1\nb: *x\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml: larger than 1048576 bytes"):
        safe_load_yaml(write(tmp_path, "#" * (MAX_YAML_BYTES + 1)))
    with pytest.raises(ConfigError, match="cannot read the config file"):
        safe_load_yaml(tmp_path / "missing.yaml")


def test_a_saved_config_loads_back(tmp_path):
    config = TrainConfig.from_dict(raw(mixed_precision="no", seed=7))
    path = write(tmp_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
    assert load_config(path) == config

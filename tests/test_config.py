"""Tests for ``hf_dualmcmc.training_config``: the schema (one per concept), settings accepted at the edges, YAML
rules, "did you mean", ``--help_config`` and ``run.mixed_precision: auto``.

The refusals are rows of tests/test_bad_inputs.py (bad_inputs_config_data.py); here what is accepted, and how.
"""

import dataclasses
import logging
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, load_module

from hf_dualmcmc.configuration_dualmcmc import OFFICIAL_SAMPLER, OFFICIAL_TRAINING, configs_for_image_size
from hf_dualmcmc.trainer import build_models, resolve_mixed_precision
from hf_dualmcmc.training_config import (
    MAX_YAML_BYTES,
    RESUMABLE_KEYS,
    SECTIONS,
    ConfigError,
    DataConfig,
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
    assert TrainConfig.from_dict(raw()).run.mixed_precision == "auto"  # the default, as the shipped configs use it
    assert all(load_config(p).run.mixed_precision == "auto" for p in (REPO_ROOT / "configs").glob("*.yaml"))
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


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_where_the_hardware_has_it(monkeypatch, caplog, native):
    import accelerate.state

    from hf_dualmcmc import performance

    monkeypatch.setattr(performance, "bf16_is_native", lambda device: native)
    monkeypatch.setattr(accelerate.state, "is_initialized", lambda: False)  # as in a fresh process
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    with caplog.at_level(logging.INFO):
        assert resolve_mixed_precision("auto") == ("bf16" if native else "no")
    assert f"run.mixed_precision auto: {'bf16' if native else 'no'} (" in caplog.text
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # accelerate launch --mixed_precision fp16 decides
    assert resolve_mixed_precision("auto") == "fp16"
    assert [resolve_mixed_precision(p) for p in ("no", "bf16", None)] == ["no", "bf16", None]  # given: as given


def test_model_section_feeds_the_network_configs():
    model = {"latent_dim": 4, "ngf": 8, "ndf": 16, "nif": 4, "observation_std": 0.5, "spectral_norm": False}
    config = TrainConfig.from_dict({**raw(), "model": model})
    energy, generator, encoder = network_configs(config.data, config.model)
    assert (energy.base_channels, energy.spectral_norm, energy.image_size, energy.num_channels) == (16, False, 8, 1)
    assert (generator.base_channels, generator.latent_dim, generator.observation_std) == (8, 4, 0.5)
    assert (encoder.base_channels, encoder.latent_dim) == (4, 4)
    same = configs_for_image_size(8, 1, **dataclasses.asdict(config.model))  # the one builder, called directly
    models = build_models(config.data, config.model)
    assert (
        [c.to_dict() for c in same]
        == [m.config.to_dict() for m in models]
        == [energy.to_dict(), generator.to_dict(), encoder.to_dict()]
    )


def test_the_authors_constants_are_the_defaults_and_the_shipped_configs():
    defaults = TrainConfig(DataConfig(source="x"))
    for section in ("model", "teaching", "sampler", "run"):
        for key, value in OFFICIAL_TRAINING["cifar10"][section].items():
            assert getattr(getattr(defaults, section), key) == value, f"{section}.{key}"
    assert dataclasses.asdict(defaults.sampler) == OFFICIAL_SAMPLER
    for name in ("cifar10", "celeba64"):
        config = load_config(REPO_ROOT / "configs" / f"{name}.yaml")
        for section, values in OFFICIAL_TRAINING[name].items():
            for key, value in values.items():
                assert getattr(getattr(config, section), key) == value, f"configs/{name}.yaml {section}.{key}"


def test_sampler_is_checked_by_the_pipeline_and_resumable():
    config = TrainConfig.from_dict({**raw(), "sampler": {"step_size": "1e-4", "num_latent_steps": 3}})
    assert (config.sampler.step_size, config.sampler.num_latent_steps) == (1e-4, 3)  # YAML 1.1's number strings
    with pytest.raises(ConfigError, match=r"^sampler.step_size: must be a finite number > 0, got -1.0"):
        TrainConfig.from_dict({**raw(), "sampler": {"step_size": -1}})
    with pytest.raises(ConfigError, match=r"^sampler.num_inference_steps: must be an integer >= 0, got -2"):
        TrainConfig.from_dict({**raw(), "sampler": {"num_inference_steps": -2}})
    assert RESUMABLE_KEYS["sampler"] == set(OFFICIAL_SAMPLER) and RESUMABLE_KEYS["teaching"] == {"explode_threshold"}
    assert RESUMABLE_KEYS["model"] == set() and {"max_steps", "output_dir"} <= RESUMABLE_KEYS["run"]
    assert not {"seed", "batch_size", "use_ema"} & RESUMABLE_KEYS["run"]


def test_help_config_lists_every_key_with_its_default_and_meaning(capsys):
    script = load_module("scripts/train.py", "train_script")
    for flag in ("--help_config", "--help-config"):  # no --config needed; the old spelling works too
        with pytest.raises(SystemExit) as stop:
            script.main([flag])
        assert stop.value.code == 0
        text = capsys.readouterr().out
        listed = yaml.safe_load(text.replace("<required>", "null"))
        defaults = TrainConfig(DataConfig(source="x")).to_dict()
        defaults["data"]["source"] = None
        assert listed == defaults  # every key of every section, with its default
        lines, section = {}, None
        for line in text.splitlines():
            section = line[:-1] if line.endswith(":") and not line.startswith(" ") else section
            lines[section, line.split(":")[0].strip()] = line
        for section, cls in SECTIONS.items():
            for f in dataclasses.fields(cls):
                line = lines[section, f.name]
                assert f.metadata["help"] in line and ("[resumable]" in line) == (f.name in RESUMABLE_KEYS[section])


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

"""The training configuration: the five sections of a YAML config file, validated before anything is built.

```yaml
data:     {source: sklearn:digits, image_size: 8, num_channels: 1}    # DataConfig
model:    {latent_dim: 16, ngf: 32, ndf: 32, nif: 16}                 # ModelSettings: the three networks' configs
teaching: {num_steps: 30, step_size: 0.5, noise_scale: 0.001}         # TeachingConfig (one iteration's constants)
sampler:  {num_inference_steps: 70, step_size: 0.4}                   # SamplerSettings: the exported pipeline's
run:      {output_dir: outputs/digits, batch_size: 64, epochs: 40}    # RunSettings
```

Each key is a dataclass field with its default (the authors' constants: ``configuration_dualmcmc.OFFICIAL_TRAINING``),
meaning and rule (``train.py --help_config`` lists them); a bad value raises :class:`ConfigError` naming its key."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .configuration_dualmcmc import OFFICIAL_TRAINING, SAMPLER_SETTINGS, ModelSettings, setting
from .langevin import mcmc_temperature

TEACHING_METHODS = ("dual_mcmc", "short_run", "cooperative", "inference_only")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16", None)
RESIZE_POLICIES = ("resize", "pad", "center_crop")
MAX_YAML_BYTES = 2**20  # a config is a few KB
MAX_INT = 2**63 - 1  # torch / numpy int64
MAX_SEED = 2**31 - 1  # accelerate seeds numpy (< 2**32) with seed + process index
MAX_STEP_SIZE = 1e150  # Langevin squares step sizes
PAPER_IMAGES = {"cifar10": (32, 3), "celeba64": (64, 3), "celebahq256": (256, 3), "church64": (64, 3)}
_DATA, _TEACHING, _RUN = (OFFICIAL_TRAINING["cifar10"][name] for name in ("data", "teaching", "run"))


class ConfigError(ValueError):
    """A bad configuration value; ``str(err)`` is one line starting with the ``section.key`` at fault."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(key, message)


def _did_you_mean(word, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"did you mean {close[0]!r}? " if close else ""


@dataclass
class DataConfig:
    """Where the training images come from and how they become ``[C, image_size, image_size]``
    (:func:`hf_dualmcmc.data.load_image_dataset`; ``source`` grammar: :func:`hf_dualmcmc.data.load_source`)."""

    source: str = setting(meaning="sklearn:digits, mnist[:<dir>], an images .npz, a folder, file, glob or Hub dataset")
    split: str = setting("train", "dataset split (train / test / all for digits and MNIST)")
    image_column: str | None = setting(None, "the image column (null: found by feature type)")
    image_size: int = setting(_DATA["image_size"], "output height = width (the networks need 4 * 2**k)", ">= 1")
    num_channels: int = setting(_DATA["num_channels"], "1 (grayscale) or 3 (RGB)")
    resize: str = setting("resize", "resize (bilinear), pad (centred on black) or center_crop", RESIZE_POLICIES)
    crop_box: tuple[int, int, int, int] | None = setting(None, "PIL (left, upper, right, lower) box cut out first")
    random_flip: bool = setting(False, "random horizontal flips (p = 0.5)")
    max_images: int | None = setting(None, "keep only the first max_images images", ">= 1 (or null: all images)")
    max_in_memory_bytes: int = setting(4 * 2**30, "decode all images once when they fit, else on the fly", ">= 0", True)
    cache_dir: str | None = setting(None, "the datasets cache directory", resumable=True)

    def __post_init__(self):
        _validate(self, "data")
        _require(bool(self.source), "data.source", "must be a non-empty string")
        _require(bool(self.split), "data.split", "must be a non-empty string")
        _require(self.num_channels in (1, 3), "data.num_channels", f"expected 1 or 3, got {self.num_channels}")
        box = list(self.crop_box or (0, 0, 1, 1))
        if not (len(box) == 4 and 0 <= box[0] < box[2] and 0 <= box[1] < box[3]):
            raise ConfigError("data.crop_box", f"expected 4 integers (left, upper, right, lower) in order, got {box}")

    @property
    def mode(self) -> str:
        """The PIL mode images are converted to: ``"L"`` or ``"RGB"``."""
        return "L" if self.num_channels == 1 else "RGB"

    def image_nbytes(self, num_images: int) -> int:
        """Bytes of ``num_images`` decoded uint8 images ``[C, image_size, image_size]``."""
        return num_images * self.num_channels * self.image_size * self.image_size


def _weight(name: str, meaning: str):
    return setting(_TEACHING[name], meaning, ">= 0")


@dataclass
class TeachingConfig:
    """Constants of one Dual-MCMC iteration (:mod:`hf_dualmcmc.training`); defaults: the authors' CIFAR-10 values
    (their names in parentheses)."""

    num_steps: int = setting(_TEACHING["num_steps"], "x-chain Langevin steps per revision (e_l_steps)", ">= 0")
    step_size: float = setting(_TEACHING["step_size"], "x-chain step size delta (e_l_step_size)", "> 0")
    noise_scale: float = _weight("noise_scale", "x-chain noise sigma_n (e_n_step_size)")
    num_latent_steps: int = setting(_TEACHING["num_latent_steps"], "z-chain steps on the posterior (l_steps)", ">= 0")
    latent_step_size: float = setting(_TEACHING["latent_step_size"], "z-chain step size (l_step_size)", "> 0")
    latent_noise_scale: float = _weight("latent_noise_scale", "z-chain noise (n_step_size)")
    data_weight: float = _weight("data_weight", "weight of KL(Q~ || P_theta) and KL(Q~ || Q_phi) (Gfactor)")
    generator_teaching_weight: float = _weight("generator_teaching_weight", "weight of KL(P~ || P_theta) (Sfactor)")
    encoder_teaching_weight: float = _weight("encoder_teaching_weight", "weight of KL(P~ || Pi) (Ifactor)")
    use_temp: bool = setting(True, "divide the energy loss by mcmc_temp = (noise_scale / step_size)^2")
    use_noise: bool = setting(True, "the x-chain's Langevin noise (false: gradient descent on E)")
    rerun_chain_for_energy: bool = setting(True, "revise the updated generator's proposals for the energy (fine_tune)")
    lr_energy: float = _weight("lr_energy", "Adam learning rate of the energy")
    lr_generator: float = _weight("lr_generator", "Adam learning rate of the generator")
    lr_encoder: float = _weight("lr_encoder", "Adam learning rate of the encoder")
    betas: tuple[float, float] = setting(_TEACHING["betas"], "Adam betas")
    weight_decay_energy: float = _weight("weight_decay_energy", "Adam L2 weight decay (coupled, not AdamW)")
    weight_decay_generator: float = _weight("weight_decay_generator", "Adam L2 weight decay of the generator")
    weight_decay_encoder: float = _weight("weight_decay_encoder", "Adam L2 weight decay of the encoder")
    lr_decay: float = setting(_TEACHING["lr_decay"], "ExponentialLR gamma, once per epoch", "> 0")
    explode_threshold: float = setting(1e4, "divergence guard on |mean E(data) - mean E(samples)|", "> 0", True)
    method: str = setting("dual_mcmc", "dual_mcmc, or a baseline (hf_dualmcmc.training.METHODS)", TEACHING_METHODS)
    noise_init_range: float = setting(1.0, "noise-started chains start from Uniform[-r, r]", "> 0")
    # opt-in OOD-robust teaching (docs/EVALUATION.md); 0: the authors' algorithm, unchanged
    noise_negatives: float = setting(0.0, "extra energy negatives started from noise, a fraction of the batch", ">= 0")
    noise_negative_steps: int | None = setting(None, "their x-chain's steps (null: num_steps)", ">= 0")
    noise_negative_step_size: float | None = setting(None, "their x-chain's step size (null: step_size)", "> 0")
    noise_negative_loss: str = setting("pool", "pool: joined to the generator's negatives; hinge", ("pool", "hinge"))
    energy_magnitude_weight: float = setting(0.0, "weight of the IGEBM energy-magnitude penalty", ">= 0")

    def __post_init__(self):
        _validate(self, "teaching")
        if not (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ConfigError("teaching.betas", f"expected two numbers in [0, 1), got {list(self.betas)}")
        for name in ("step_size", "latent_step_size"):
            _require(getattr(self, name) < MAX_STEP_SIZE, f"teaching.{name}", f"must be < {MAX_STEP_SIZE:g}")
        ratio = self.noise_scale / self.step_size
        if self.use_temp and not 1 / MAX_STEP_SIZE < ratio < MAX_STEP_SIZE:
            bounds = "noise_scale / step_size must be in (1e-150, 1e150) (the energy loss is divided by its square)"
            fix = "or set teaching.use_temp: false"
            raise ConfigError("teaching.noise_scale", f"with teaching.use_temp, {bounds}, got {ratio:g}; {fix}")

    @property
    def temperature(self) -> float:
        """``mcmc_temp`` by which the energy loss is divided (1 when ``use_temp`` is off)."""
        return mcmc_temperature(self.step_size, self.noise_scale) if self.use_temp else 1.0

    @property
    def chain_noise(self) -> float:
        """The x-chain's noise: ``noise_scale``, or 0 without ``use_noise`` (gradient descent on ``E``)."""
        return self.noise_scale if self.use_noise else 0.0

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _check_sampler(self) -> None:
    """The sampler settings checked once, by the pipeline's own rules."""
    from .pipeline_dualmcmc import check_sampler_settings

    _validate(self, "sampler")
    try:
        checked = check_sampler_settings(**dataclasses.asdict(self))
    except ValueError as err:
        key = next((k for k in SAMPLER_SETTINGS if str(err).startswith(k + " ")), "sampler")
        raise ConfigError(f"sampler.{key}", str(err).removeprefix(key + " ")) from None
    vars(self).update(checked)


SamplerSettings = dataclasses.make_dataclass(
    "SamplerSettings",
    [(k, type(v), setting(v, meaning, resumable=True)) for k, (v, meaning) in SAMPLER_SETTINGS.items()],
    namespace={"__post_init__": _check_sampler, "__module__": __name__},
)
SamplerSettings.__doc__ = """The exported pipeline's sampler settings (:class:`~hf_dualmcmc.DualMCMCPipeline`'s
arguments, checked by its rules); defaults: the authors' FID sampler (``configuration_dualmcmc.SAMPLER_SETTINGS``)."""


@dataclass
class RunSettings:
    """Where and how long to train, logging, checkpoints, export (see docs/TRAINING.md). A "step" is one update of
    every network: ``gradient_accumulation_steps`` micro-batches of ``batch_size`` images per process."""

    output_dir: str = setting("outputs/run", "checkpoints, samples, logs and the exported pipeline", resumable=True)
    batch_size: int = setting(_RUN["batch_size"], "images per process and micro-batch", ">= 1")
    gradient_accumulation_steps: int = setting(1, "micro-batches per step", ">= 1")
    epochs: int = setting(_RUN["epochs"], "passes over the data (unless max_steps)", ">= 1", True)
    max_steps: int | None = setting(None, "steps to train", ">= 1 (or null: run.epochs decides)", True)
    max_minutes: float | None = setting(None, "wall-clock limit, checked after each step", ">= 0 (or null: off)", True)
    seed: int = setting(_RUN["seed"], "seed of the weights, the data order and the chains")
    mixed_precision: str | None = setting(
        "auto", "auto: bf16 where native, else no; null: accelerate's", MIXED_PRECISION, True
    )
    log_every: int = setting(10, "steps between tracker logs (history.jsonl has every step)", ">= 1", True)
    sample_every: int = setting(500, "steps between sample grids", ">= 0 (0: off)", True)
    num_sample_images: int = setting(64, "images per sample grid", ">= 1", True)
    checkpoint_every: int = setting(1000, "steps between checkpoints", ">= 0 (0: off)", True)
    checkpoints_total_limit: int = setting(3, "checkpoints kept, the newest", ">= 0 (0: off)", True)
    overwrite_output_dir: bool = setting(False, "a fresh run may replace another run's files", resumable=True)
    export_at_checkpoints: bool = setting(False, "every checkpoint holds a loadable pipeline", resumable=True)
    report_to: str = setting("tensorboard", "trackers: tensorboard, wandb, ..., all or none", resumable=True)
    num_workers: int = setting(0, "data loader processes", ">= 0 (0: off)", True)
    dataset_name: str | None = setting(None, "the data set the model card names (default: data.source)", resumable=True)
    card_template: str = setting("run", "model card: run, or a paper's (cifar10, celeba64, ...)", resumable=True)
    push_to_hub: bool = setting(False, "push the exported pipeline to run.hub_model_id", resumable=True)
    hub_model_id: str | None = setting(None, "Hub repository id, e.g. org/dualmcmc-digits", resumable=True)
    hub_private: bool = setting(False, "create the Hub repository private", resumable=True)
    hub_license: str = setting("apache-2.0", "the model card's license (a Hub license identifier)", resumable=True)
    channels_last: bool = setting(False, "NHWC models, data and chain states (dual_mcmc; docs/PERFORMANCE.md)")
    compile: bool = setting(False, "torch.compile the energy the x-chains call (dual_mcmc)")
    use_ema: bool = setting(False, "export an EMA of the energy's and generator's weights (diffusers EMAModel)")
    ema_decay: float = setting(0.9999, "EMA decay")
    ema_warmup: bool = setting(True, "EMA warm-up 1 - (1 + step)^-ema_power")
    ema_power: float = setting(0.75, "EMA warm-up power", "> 0")

    def __post_init__(self):
        if self.mixed_precision is False:  # YAML 1.1 reads accelerate's `no` as false
            self.mixed_precision = "no"
        _validate(self, "run")
        _require(bool(self.output_dir), "run.output_dir", "must be a non-empty path")
        _require(0 <= self.seed <= MAX_SEED, "run.seed", f"must be in [0, 2**31 - 1], got {self.seed}")
        _require(0 <= self.ema_decay <= 1, "run.ema_decay", f"must be in [0, 1], got {self.ema_decay}")
        if self.push_to_hub and not self.hub_model_id:
            raise ConfigError("run.hub_model_id", "run.push_to_hub needs it (e.g. --hub_model_id org/dualmcmc-digits)")
        from huggingface_hub.utils import validate_repo_id

        from .hub import check_license

        for key, check in (("hub_license", check_license), ("hub_model_id", validate_repo_id)):
            try:
                if getattr(self, key) is not None:
                    check(getattr(self, key))
            except ValueError as err:  # (huggingface_hub's HFValidationError is one)
                raise ConfigError(f"run.{key}", str(err)) from None
        if self.report_to not in ("none", "all"):  # else one tracker accelerate knows, whose package is installed
            import accelerate.utils

            name, known = self.report_to, ["none", *accelerate.utils.LoggerType.list()]
            hint = _did_you_mean(name.lower(), known)
            _require(name in known, "run.report_to", f"{hint}expected one of {known}, got {name!r}")
            if not getattr(accelerate.utils, f"is_{name}_available", lambda: True)():
                message = f"{name!r} needs the {name} package, which is not installed (pip install {name})"
                raise ConfigError("run.report_to", f"{message}; or use run.report_to=none")


SECTIONS = dict(data=DataConfig, model=ModelSettings, teaching=TeachingConfig, sampler=SamplerSettings, run=RunSettings)
# what a resumed run may change (the rest must equal the checkpoint's): where, how long, how often, what is logged and
# exported, nothing the training computes with (run.mixed_precision: the precision actually used is compared instead)
RESUMABLE_KEYS = {
    name: {f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")} for name, cls in SECTIONS.items()
}


def network_configs(data: DataConfig, model: ModelSettings):
    """The (energy, generator, encoder) configs for the data's image size and channels; a layout that does not fit
    ``data.image_size`` raises :class:`ConfigError` naming the ``model.*`` key."""
    try:
        return model.configs(data.image_size, data.num_channels)
    except ValueError as err:
        key, _, message = str(err).partition(": ")
        if key == "image_size":
            raise ConfigError("data.image_size", message) from None
        raise ConfigError(f"model.{key}", f"{message} (data.image_size {data.image_size})") from None


@dataclass
class TrainConfig:
    """A whole training configuration: one instance of each section."""

    data: DataConfig
    model: ModelSettings = field(default_factory=ModelSettings)
    teaching: TeachingConfig = field(default_factory=TeachingConfig)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self):
        _validate(self.model, "model")
        network_configs(self.data, self.model)
        # a paper's model card template names its own data set, whose image shape the run must have
        key, name, shape = "run.card_template", self.run.card_template, (self.data.image_size, self.data.num_channels)
        hint, known = _did_you_mean(name, PAPER_IMAGES), ["run", *PAPER_IMAGES]
        _require(name in known, key, f"{hint}expected one of {known}, got {name!r}")
        size, channels = PAPER_IMAGES.get(name, shape)
        if shape != (size, channels):
            paper = f"{name!r} describes the paper's {size}x{size} images with {channels} channels"
            raise ConfigError(key, f"{paper}; this run trains {shape[0]}x{shape[0]} with {shape[1]}: use {key}: run")
        if (self.run.channels_last or self.run.compile) and self.teaching.method != "dual_mcmc":
            message = "run.channels_last / run.compile are options of the dual_mcmc step, not of teaching.method"
            raise ConfigError("run.channels_last", f"{message}={self.teaching.method!r}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Build and validate a config from a nested dict (a parsed YAML file); raises :class:`ConfigError`."""
        if not isinstance(raw, dict):
            raise ConfigError("config", f"expected a mapping of sections {list(SECTIONS)}, got {type(raw).__name__}")
        for name in raw:
            hint = _did_you_mean(name, SECTIONS)
            _require(name in SECTIONS, str(name), f"unknown section; {hint}expected some of {list(SECTIONS)}")
        _require("data" in raw, "data", "missing section: the config needs at least `data: {source: ...}`")
        sections = {}
        for name, section_cls in SECTIONS.items():
            values = raw.get(name) or {}
            _require(isinstance(values, dict), name, f"expected a mapping of keys, got {values!r}")
            known = [f.name for f in dataclasses.fields(section_cls)]
            for key in values:
                hint = _did_you_mean(key, known)
                _require(key in known, f"{name}.{key}", f"unknown key; {hint}expected one of {known}")
            _require(name != "data" or "source" in values, "data.source", "missing: where the images come from")
            sections[name] = section_cls(**values)
        return cls(**sections)

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}


def _plain(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


_KINDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans")}
_KINDS[str], _BAD = ("a string", "strings"), object()


def _validate(section, name: str) -> None:
    """Each field of a config section converted to its annotated type and checked by its rule (``setting``)."""
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        key, check = f"{name}.{f.name}", f.metadata.get("check")
        value = _typed(key, getattr(section, f.name), hints[f.name])
        setattr(section, f.name, value)
        if value is not None and isinstance(check, tuple):
            _require(value in check, key, f"expected one of {list(check)}, got {value!r}")
        elif value is not None and check is not None:
            op, bound = check.split()[:2]
            ok = value >= float(bound) if op == ">=" else value > float(bound)
            _require(ok, key, f"must be {check}, got {value}")


def _typed(key: str, value, tp):
    """``value`` as ``tp`` (``X``, ``X | None``, ``list[X]``, ``tuple[X, ...]``) wants it; else :class:`ConfigError`."""
    optional = type(None) in typing.get_args(tp)
    if optional and value is None:
        return None
    tp = next(a for a in typing.get_args(tp) if a is not type(None)) if optional else tp
    origin, item = typing.get_origin(tp), (typing.get_args(tp) or (tp,))[0]
    items = [_scalar(v, item) for v in value] if origin and isinstance(value, (list, tuple)) else [_BAD]
    out = (origin(items) if _BAD not in items else _BAD) if origin else _scalar(value, tp)
    if tp is int and out is not _BAD and abs(out) > MAX_INT:
        raise ConfigError(key, f"expected an integer of at most 2**63 - 1, got {out}")
    what = f"a list of {_KINDS[item][1]}" if origin else _KINDS[tp][0]
    _require(out is not _BAD, key, f"expected {what}{' or null' if optional else ''}, got {value!r}")
    return out


def _scalar(value, tp):
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            value = float(value)
        except ValueError:
            return _BAD
    if tp is str and isinstance(value, os.PathLike):
        return os.fspath(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, tp) and isinstance(value, bool) == (tp is bool) and (tp is not float or math.isfinite(value))
    return value if ok else _BAD


class _PlainYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors / aliases (and so without ``<<`` merges) and without duplicate keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            problem = "anchors and aliases (& and *) are not allowed"
            raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key) if isinstance(key, typing.Hashable) else None
        return super().construct_mapping(node, deep=deep)


def safe_load_yaml(source: str | bytes | os.PathLike, what: str | None = None) -> Any:
    """YAML text (``str`` / ``bytes``) or a file (a path object) as plain data: no anchors or aliases (a 1 KB alias
    bomb expands to gigabytes), no duplicate keys, at most ``MAX_YAML_BYTES``; else :class:`ConfigError` ``what``."""
    what = what or (os.fspath(source) if isinstance(source, os.PathLike) else "YAML")
    if isinstance(source, os.PathLike):
        try:
            with open(source, "rb") as f:
                source = f.read(MAX_YAML_BYTES + 1)
        except OSError as err:
            raise ConfigError(what, f"cannot read the config file ({err.strerror or err})") from err
    if len(source) > MAX_YAML_BYTES:
        raise ConfigError(what, f"larger than {MAX_YAML_BYTES} bytes; not a config file")
    try:
        text = source.decode("utf-8") if isinstance(source, bytes) else source
        return yaml.load(text, Loader=_PlainYamlLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(what, f"not a text file ({err.reason})") from err
    except yaml.YAMLError as err:
        raise ConfigError(what, f"not valid YAML ({' '.join(str(err).split())})") from err
    except RecursionError:
        raise ConfigError(what, "not valid YAML (nested too deeply)") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``section.key=value`` strings (values parsed as YAML) applied onto a raw config dict."""
    for item in overrides:
        key, sep, value = item.partition("=")
        section, _, name = key.partition(".")
        _require(all((sep, section, name)), item, "an override must look like section.key=value (e.g. run.max_steps=9)")
        try:
            parsed = safe_load_yaml(value, key)
        except ConfigError as err:
            raise ConfigError(key, f"cannot parse {value!r} as a YAML value: {err.message}") from None
        raw[section] = {} if raw.get(section) is None else raw[section]
        _require(isinstance(raw[section], dict), section, f"expected a mapping of keys, got {raw[section]!r}")
        raw[section][name] = parsed
    return raw


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config file (:func:`safe_load_yaml`), apply ``section.key=value`` overrides, validate everything."""
    raw = safe_load_yaml(Path(path), str(path))
    if not isinstance(raw, (dict, type(None))):
        raise ConfigError(str(path), f"expected a YAML mapping of sections {list(SECTIONS)}, got {type(raw).__name__}")
    return TrainConfig.from_dict(apply_overrides(raw or {}, overrides or []))

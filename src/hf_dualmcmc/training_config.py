"""The training configuration: the five sections of a YAML config file, validated before anything is built.

```yaml
data:     {source: sklearn:digits, image_size: 8, num_channels: 1}    # hf_dualmcmc.data.DataConfig
model:    {latent_dim: 16, ngf: 32, ndf: 32, nif: 16}                 # ModelSettings
teaching: {num_steps: 30, step_size: 0.5, noise_scale: 0.001}         # TeachingConfig (one iteration's constants)
sampler:  {num_inference_steps: 70, step_size: 0.4}                   # SamplerSettings (the exported pipeline's)
run:      {output_dir: outputs/digits, batch_size: 64, epochs: 40}    # RunSettings
```

Chain settings use one name set everywhere: ``num_steps`` / ``step_size`` / ``noise_scale`` for the x-chain on the
energy (``num_inference_steps`` in the pipeline and ``sampler``, as diffusers names it), ``num_latent_steps`` /
``latent_step_size`` / ``latent_noise_scale`` for the z-chain on the generator posterior.

:func:`load_config` reads a file and ``section.key=value`` overrides; every key is checked against the schema
(unknown keys, wrong types, out-of-range values) and a bad one raises :class:`ConfigError`, whose message starts
with the offending ``section.key`` (an unknown key or section gets a "did you mean"). Cross-section settings (the
networks for ``data.image_size``, the model card template, trackers) are checked too, so that a config that builds
does not fail after training started. Keys renamed since the first release are accepted with a ``FutureWarning``.

YAML is read by :func:`safe_load_yaml` (configs and the configs stored in checkpoints): plain YAML only, no anchors or
aliases (a 1 KB alias bomb expands to gigabytes), no duplicate keys (one would silently replace the other), at most
``MAX_YAML_BYTES``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .configuration_dualmcmc import (
    DualMCMCEncoderConfig,
    DualMCMCEnergyConfig,
    DualMCMCGeneratorConfig,
    _check_image_size,
    default_encoder_layout,
    default_energy_layout,
    default_generator_mults,
)
from .langevin import mcmc_temperature

TEACHING_METHODS = ("dual_mcmc", "short_run", "cooperative", "inference_only")
BN_STATS = ("batch", "running")
MIXED_PRECISION = (None, "no", "bf16", "fp16")
RESIZE_POLICIES = ("resize", "pad", "center_crop")
MAX_YAML_BYTES = 2**20  # a config is a few KB
MAX_INT = 2**63 - 1  # torch / numpy int64
MAX_SEED = 2**31 - 1  # accelerate seeds numpy (< 2**32) with seed + process index
MAX_STEP_SIZE = 1e150  # Langevin squares step sizes


class ConfigError(ValueError):
    """A bad configuration value; ``str(err)`` is one line starting with the ``section.key`` at fault."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(key, message)


def _did_you_mean(word, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"did you mean {close[0]!r}? " if close else ""


# ----------------------------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Where the training images come from and how they are brought to ``[C, image_size, image_size]``
    (:func:`hf_dualmcmc.data.load_image_dataset`).

    Args:
        source: one grammar for training and evaluation (:func:`hf_dualmcmc.data.load_source`):
            ``"sklearn:digits"`` (alias ``"digits"``), ``"mnist"`` / ``"mnist:<dir>"``, an images ``.npz``, a
            directory (``datasets.load_dataset`` infers imagefolder / parquet; or a ``save_to_disk`` directory), a
            data file or glob (e.g. ``"data/*.parquet"``), or a Hub dataset name (e.g. ``"uoft-cs/cifar10"``).
        split: dataset split (``"train"``, ``"test"``, ``"all"`` for the digits / MNIST partitions; any name for a
            data file or glob).
        image_column: image column; ``None`` finds it by feature type (``datasets.Image``, uint8 arrays).
        image_size: output height = width.
        num_channels: 1 (PIL ``"L"``) or 3 (PIL ``"RGB"``).
        resize: ``"resize"`` (bilinear, antialiased, aspect ratio not kept), ``"pad"`` (center on a black
            ``image_size`` canvas; images larger than ``image_size`` raise) or ``"center_crop"`` (shorter side
            resized to ``image_size``, then center crop).
        crop_box: PIL ``(left, upper, right, lower)`` box applied first (official CelebA: ``(15, 40, 163, 188)``).
        random_flip: random horizontal flip (probability 0.5) at ``__getitem__`` time, torch global RNG.
        max_images: keep only the first ``max_images`` images of the split.
        max_in_memory_bytes: decode everything once into a uint8 tensor when ``N * C * H * W`` fits, else decode on
            the fly.
        cache_dir: ``datasets`` cache directory for ``load_dataset``.
    """

    source: str
    split: str = "train"
    image_column: str | None = None
    image_size: int = 32
    num_channels: int = 3
    resize: str = "resize"
    crop_box: tuple[int, int, int, int] | None = None
    random_flip: bool = False
    max_images: int | None = None
    max_in_memory_bytes: int = 4 * 2**30
    cache_dir: str | None = None

    def __post_init__(self):
        _validate_types(self, "data")
        self.source = os.fspath(self.source)
        _require(bool(self.source), "data.source", "must be a non-empty string")
        _require(bool(self.split), "data.split", "must be a non-empty string")
        _require(self.image_size >= 1, "data.image_size", f"must be >= 1, got {self.image_size}")
        _require(self.num_channels in (1, 3), "data.num_channels", f"expected 1 or 3, got {self.num_channels}")
        _require(
            self.resize in RESIZE_POLICIES,
            "data.resize",
            f"expected one of {list(RESIZE_POLICIES)}, got {self.resize!r}",
        )
        if self.crop_box is not None:
            _require(
                len(self.crop_box) == 4,
                "data.crop_box",
                f"expected 4 integers (left, upper, right, lower), got {list(self.crop_box)}",
            )
            left, upper, right, lower = self.crop_box
            _require(
                0 <= left < right and 0 <= upper < lower,
                "data.crop_box",
                f"expected 0 <= left < right and 0 <= upper < lower, got {list(self.crop_box)}",
            )
            self.crop_box = tuple(self.crop_box)
        _require(
            self.max_images is None or self.max_images >= 1,
            "data.max_images",
            f"must be >= 1 (or null: all images), got {self.max_images}",
        )
        _require(
            self.max_in_memory_bytes >= 0, "data.max_in_memory_bytes", f"must be >= 0, got {self.max_in_memory_bytes}"
        )

    @property
    def mode(self) -> str:
        """The PIL mode images are converted to: ``"L"`` or ``"RGB"``."""
        return "L" if self.num_channels == 1 else "RGB"

    def image_nbytes(self, num_images: int) -> int:
        """Bytes of ``num_images`` decoded uint8 images ``[C, image_size, image_size]``."""
        return num_images * self.num_channels * self.image_size * self.image_size


@dataclass
class TeachingConfig:
    """Constants of one Dual-MCMC iteration; defaults are the authors' CIFAR-10 values.

    Attributes:
        num_steps / step_size / noise_scale: the x-chain on the energy (``e_l_steps`` 30, ``e_l_step_size`` delta
            0.5 (CelebA 0.3), ``e_n_step_size`` sigma_n 0.001). ``num_steps`` counts Langevin steps per revision,
            not training iterations (``run.max_steps``).
        num_latent_steps / latent_step_size / latent_noise_scale: the z-chain on the generator posterior
            (``l_steps`` 10, ``l_step_size`` 0.1, ``n_step_size`` 0.1).
        data_weight: weight of the two data-side terms, ``KL(Q~ || P_theta)`` in the generator loss and
            ``KL(Q~ || Q_phi)`` in the encoder loss (the authors' ``Gfactor``, 1).
        generator_teaching_weight: weight of ``KL(P~ || P_theta)``, the generator regressing onto its EBM-revised
            samples (``Sfactor``, 50; CelebA 70).
        encoder_teaching_weight: weight of ``KL(P~ || Pi)``, the encoder inferring ``z`` from EBM-revised samples
            (``Ifactor``, 0.1).
        use_temp: divide the energy loss by ``mcmc_temp = (noise_scale / step_size)^2``.
        use_noise: add the Langevin noise in the x-chain (off: gradient descent on E).
        rerun_chain_for_energy: before the energy update, revise the *updated* generator's proposals with a second
            x-chain (the authors' ``fine_tune``); off, the energy contrasts data with the raw proposals.
        lr_* / betas / weight_decay_*: Adam (coupled L2 weight decay, not AdamW).
        lr_decay: ExponentialLR gamma, stepped once per epoch (lr = base * gamma^epoch).
        explode_threshold: the divergence guard's bound on ``|mean E(data) - mean E(samples)|``.
        method: the learning scheme (:mod:`hf_dualmcmc.baselines`): ``"dual_mcmc"`` (the default), or the paper's
            baselines ``"short_run"`` (EBM only, noise-initialised x-chain), ``"cooperative"`` (EBM + generator,
            CoopNets) and ``"inference_only"`` (generator + encoder, no EBM).
        noise_init_range: ``short_run`` only: the x-chain starts from ``Uniform[-r, r]``.
    """

    num_steps: int = 30
    step_size: float = 0.5
    noise_scale: float = 0.001
    num_latent_steps: int = 10
    latent_step_size: float = 0.1
    latent_noise_scale: float = 0.1
    data_weight: float = 1.0
    generator_teaching_weight: float = 50.0
    encoder_teaching_weight: float = 0.1
    use_temp: bool = True
    use_noise: bool = True
    rerun_chain_for_energy: bool = True
    lr_energy: float = 1e-4
    lr_generator: float = 3e-4
    lr_encoder: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    weight_decay_energy: float = 0.0
    weight_decay_generator: float = 5e-4
    weight_decay_encoder: float = 5e-4
    lr_decay: float = 0.998
    explode_threshold: float = 1e4
    method: str = "dual_mcmc"
    noise_init_range: float = 1.0

    def __post_init__(self):
        _validate_types(self, "teaching")
        self.betas = tuple(self.betas)
        for name in ("num_steps", "num_latent_steps"):
            _require(getattr(self, name) >= 0, f"teaching.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("step_size", "latent_step_size", "noise_init_range", "lr_decay", "explode_threshold"):
            _require(getattr(self, name) > 0, f"teaching.{name}", f"must be > 0, got {getattr(self, name)}")
        for name in (
            "noise_scale",
            "latent_noise_scale",
            "data_weight",
            "generator_teaching_weight",
            "encoder_teaching_weight",
            "lr_energy",
            "lr_generator",
            "lr_encoder",
            "weight_decay_energy",
            "weight_decay_generator",
            "weight_decay_encoder",
        ):
            _require(getattr(self, name) >= 0, f"teaching.{name}", f"must be >= 0, got {getattr(self, name)}")
        _require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "teaching.betas",
            f"expected two numbers in [0, 1), got {list(self.betas)}",
        )
        _require(
            self.method in TEACHING_METHODS,
            "teaching.method",
            f"expected one of {list(TEACHING_METHODS)}, got {self.method!r}",
        )
        for name in ("step_size", "latent_step_size"):
            _require(getattr(self, name) < MAX_STEP_SIZE, f"teaching.{name}", f"must be < {MAX_STEP_SIZE:g}")
        ratio = self.noise_scale / self.step_size
        _require(
            not self.use_temp or 1 / MAX_STEP_SIZE < ratio < MAX_STEP_SIZE,
            "teaching.noise_scale",
            f"with teaching.use_temp, noise_scale / step_size must be in (1e-150, 1e150) (the energy loss is "
            f"divided by its square), got {ratio:g}; or set teaching.use_temp: false",
        )

    @property
    def temperature(self) -> float:
        """``mcmc_temp`` by which the energy loss is divided (1 when ``use_temp`` is off)."""
        return mcmc_temperature(self.step_size, self.noise_scale) if self.use_temp else 1.0

    @property
    def chain_noise(self) -> float:
        """The x-chain's noise: ``noise_scale``, or 0 without ``use_noise`` (gradient descent on ``E``)."""
        return self.noise_scale if self.use_noise else 0.0

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["betas"] = list(out["betas"])
        return out


@dataclass
class ModelSettings:
    """Widths and layout of the three networks (``None`` layouts: the defaults of ``configs_for_image_size``)."""

    latent_dim: int = 128
    ngf: int = 512
    ndf: int = 512
    nif: int = 128
    generator_channel_mults: list[float] | None = None
    energy_channel_mults: list[float] | None = None
    energy_downsample: list[bool] | None = None
    encoder_channel_mults: list[float] | None = None
    encoder_first_stride: int | None = None
    observation_std: float = 0.3
    prior_std: float = 1.0
    spectral_norm: bool = True

    def __post_init__(self):
        _validate_types(self, "model")
        for name in ("latent_dim", "ngf", "ndf", "nif"):
            _require(getattr(self, name) >= 1, f"model.{name}", f"must be >= 1, got {getattr(self, name)}")
        for name in ("observation_std", "prior_std"):
            _require(getattr(self, name) > 0, f"model.{name}", f"must be > 0, got {getattr(self, name)}")
        for name in ("generator_channel_mults", "energy_channel_mults", "energy_downsample", "encoder_channel_mults"):
            _require(
                getattr(self, name) is None or len(getattr(self, name)) > 0,
                f"model.{name}",
                "must not be empty (null: the default layout for data.image_size)",
            )
        _require(
            self.encoder_first_stride in (None, 1, 2),
            "model.encoder_first_stride",
            f"expected 1, 2 or null, got {self.encoder_first_stride!r}",
        )


def network_configs(data: DataConfig, settings: ModelSettings):
    """The (energy, generator, encoder) configs for the data's image size and channels; a layout that does not fit
    ``data.image_size`` raises :class:`ConfigError` naming the ``model.*`` key."""
    size, ch = data.image_size, data.num_channels
    try:
        _check_image_size(size, "networks")
    except ValueError as err:
        raise ConfigError("data.image_size", str(err).removeprefix("networks: ")) from None
    e_mults, e_down = default_energy_layout(size)
    i_mults, i_stride = default_encoder_layout(size)
    builders = {  # the keys a layout error is reported under: the first one set, else the width
        ("energy_channel_mults", "energy_downsample", "ndf"): lambda: DualMCMCEnergyConfig(
            image_size=size,
            num_channels=ch,
            base_channels=settings.ndf,
            spectral_norm=settings.spectral_norm,
            channel_mults=settings.energy_channel_mults or e_mults,
            downsample=settings.energy_downsample or e_down,
        ),
        ("generator_channel_mults", "ngf"): lambda: DualMCMCGeneratorConfig(
            latent_dim=settings.latent_dim,
            image_size=size,
            num_channels=ch,
            base_channels=settings.ngf,
            channel_mults=settings.generator_channel_mults or default_generator_mults(size),
            observation_std=settings.observation_std,
            prior_std=settings.prior_std,
        ),
        ("encoder_channel_mults", "encoder_first_stride", "nif"): lambda: DualMCMCEncoderConfig(
            image_size=size,
            num_channels=ch,
            latent_dim=settings.latent_dim,
            base_channels=settings.nif,
            channel_mults=settings.encoder_channel_mults or i_mults,
            first_stride=settings.encoder_first_stride or i_stride,
        ),
    }
    configs = []
    for keys, build in builders.items():
        try:
            configs.append(build())
        except ValueError as err:
            key = next((k for k in keys[:-1] if getattr(settings, k) is not None), keys[-1])
            raise ConfigError(f"model.{key}", f"{err} (data.image_size {size})") from None
    return tuple(configs)


@dataclass
class SamplerSettings:
    """Sampler defaults written into the exported pipeline (the authors' FID sampler by default); the names are the
    :class:`~hf_dualmcmc.DualMCMCPipeline` arguments."""

    num_inference_steps: int = 70
    step_size: float = 0.4
    noise_scale: float = 0.001
    bn_stats: str = "batch"
    num_latent_steps: int = 10
    latent_step_size: float = 0.1
    latent_noise_scale: float = 0.1

    def __post_init__(self):
        _validate_types(self, "sampler")
        for name in ("num_inference_steps", "num_latent_steps"):
            _require(getattr(self, name) >= 0, f"sampler.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("step_size", "latent_step_size"):
            _require(getattr(self, name) > 0, f"sampler.{name}", f"must be > 0, got {getattr(self, name)}")
        for name in ("noise_scale", "latent_noise_scale"):
            _require(getattr(self, name) >= 0, f"sampler.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("step_size", "latent_step_size"):
            _require(getattr(self, name) < MAX_STEP_SIZE, f"sampler.{name}", f"must be < {MAX_STEP_SIZE:g}")
        _require(
            self.bn_stats in BN_STATS, "sampler.bn_stats", f"expected one of {list(BN_STATS)}, got {self.bn_stats!r}"
        )


@dataclass
class RunSettings:
    """Where and how long to train, logging, checkpoints, export (see docs/TRAINING.md).

    A "step" is one update of every network: ``gradient_accumulation_steps`` micro-batches of ``batch_size`` images
    per process. ``overwrite_output_dir`` lets a fresh run replace another run's files in ``output_dir`` (they are
    set aside until the new run's first checkpoint). ``use_ema`` keeps an exponential moving average of the energy's
    and the generator's weights (``diffusers.training_utils.EMAModel``: decay ``ema_decay``, with ``ema_warmup`` the
    warm-up ``1 - (1 + step)^-ema_power``) and exports it as the pipeline's weights.
    """

    output_dir: str = "outputs/run"
    batch_size: int = 100  # per process and micro-batch
    gradient_accumulation_steps: int = 1
    epochs: int = 301
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget: stop (checkpoint + export) after the step that exceeds it
    seed: int = 1234
    mixed_precision: str | None = None  # None: whatever `accelerate launch` / the accelerate config says; YAML no: "no"
    log_every: int = 10
    sample_every: int = 500
    num_sample_images: int = 64
    checkpoint_every: int = 1000
    checkpoints_total_limit: int = 3
    overwrite_output_dir: bool = False
    export_at_checkpoints: bool = False
    report_to: str = "tensorboard"
    num_workers: int = 0
    dataset_name: str | None = None  # for the model card (e.g. "uoft-cs/cifar10")
    card_template: str = "run"
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    hub_license: str = "apache-2.0"  # the model card's license (a Hub license identifier)
    channels_last: bool = False  # NHWC models, data and chain states (same math; see docs/PERFORMANCE.md)
    compile: bool = False  # torch.compile the energy network the x-chains call (CUDA graphs on GPU; opt-in)
    use_ema: bool = False
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    ema_power: float = 0.75

    def __post_init__(self):
        if self.mixed_precision is False:  # YAML 1.1 reads accelerate's `no` as false
            self.mixed_precision = "no"
        _validate_types(self, "run")
        _require(bool(self.output_dir), "run.output_dir", "must be a non-empty path")
        _require(0 <= self.seed <= MAX_SEED, "run.seed", f"must be in [0, 2**31 - 1], got {self.seed}")
        for name in ("batch_size", "gradient_accumulation_steps", "epochs", "num_sample_images", "log_every"):
            _require(getattr(self, name) >= 1, f"run.{name}", f"must be >= 1, got {getattr(self, name)}")
        _require(
            self.max_steps is None or self.max_steps >= 1,
            "run.max_steps",
            f"must be >= 1 (or null: run.epochs decides), got {self.max_steps}",
        )
        _require(
            self.max_minutes is None or self.max_minutes >= 0,
            "run.max_minutes",
            f"must be >= 0 (or null: no wall-clock budget), got {self.max_minutes}",
        )
        for name in ("sample_every", "checkpoint_every", "checkpoints_total_limit", "num_workers"):
            _require(getattr(self, name) >= 0, f"run.{name}", f"must be >= 0 (0: off), got {getattr(self, name)}")
        _require(
            self.mixed_precision in MIXED_PRECISION,
            "run.mixed_precision",
            f"expected one of {list(MIXED_PRECISION)}, got {self.mixed_precision!r}",
        )
        _require(
            not self.push_to_hub or bool(self.hub_model_id),
            "run.hub_model_id",
            "run.push_to_hub needs it (e.g. --hub_model_id org/dualmcmc-digits)",
        )
        from .hub import check_license

        try:
            check_license(self.hub_license)
        except ValueError as err:
            raise ConfigError("run.hub_license", str(err)) from None
        if self.hub_model_id is not None:
            from huggingface_hub.errors import HFValidationError
            from huggingface_hub.utils import validate_repo_id

            try:
                validate_repo_id(self.hub_model_id)
            except HFValidationError as err:
                raise ValueError(
                    f"run.hub_model_id: {self.hub_model_id!r} is not a valid repository id ({err})"
                ) from None
        _require(0 <= self.ema_decay <= 1, "run.ema_decay", f"must be in [0, 1], got {self.ema_decay}")
        _require(self.ema_power > 0, "run.ema_power", f"must be > 0, got {self.ema_power}")
        _check_report_to(self.report_to)

    def check_card(self, data: DataConfig) -> None:
        """The model card ``export_pipeline`` writes after training: a paper template names its own data set, whose
        image shape the run must have."""
        if self.card_template == "run":
            return
        from .hub import TEMPLATES

        _require(
            self.card_template in TEMPLATES,
            "run.card_template",
            f"{_did_you_mean(self.card_template, TEMPLATES)}expected one of {list(TEMPLATES)}, "
            f"got {self.card_template!r}",
        )
        size, channels = PAPER_IMAGES[self.card_template]
        _require(
            (data.image_size, data.num_channels) == (size, channels),
            "run.card_template",
            f"{self.card_template!r} describes the paper's {size}x{size} images with {channels} channels; this run "
            f"trains {data.image_size}x{data.image_size} with {data.num_channels}: use run.card_template: run",
        )


PAPER_IMAGES = {"cifar10": (32, 3), "celeba64": (64, 3), "celebahq256": (256, 3), "church64": (64, 3)}


def _check_report_to(report_to: str) -> None:
    """``run.report_to``: ``"none"``, ``"all"`` or one tracker accelerate knows, whose package is installed."""
    if report_to in ("none", "all"):
        return
    import accelerate.utils
    from accelerate.utils import LoggerType

    known = ["none", *LoggerType.list()]
    _require(
        report_to in known,
        "run.report_to",
        f"{_did_you_mean(report_to.lower(), known)}expected one of {known}, got {report_to!r}",
    )
    _require(
        bool(getattr(accelerate.utils, f"is_{report_to}_available", lambda: True)()),
        "run.report_to",
        f"{report_to!r} needs the {report_to} package, which is not installed (pip install {report_to}); "
        "or use run.report_to=none",
    )


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelSettings,
    "teaching": TeachingConfig,
    "sampler": SamplerSettings,
    "run": RunSettings,
}

# (section, old key) -> new key: names of the first release, accepted with a FutureWarning
RENAMED_KEYS: dict[tuple[str, str], str] = {
    ("teaching", "x_steps"): "num_steps",
    ("teaching", "x_step_size"): "step_size",
    ("teaching", "x_noise"): "noise_scale",
    ("teaching", "z_steps"): "num_latent_steps",
    ("teaching", "z_step_size"): "latent_step_size",
    ("teaching", "z_noise"): "latent_noise_scale",
    ("teaching", "g_factor"): "data_weight",
    ("teaching", "s_factor"): "generator_teaching_weight",
    ("teaching", "i_factor"): "encoder_teaching_weight",
    ("teaching", "fine_tune"): "rerun_chain_for_energy",
    ("sampler", "num_revision_steps"): "num_inference_steps",
}


@dataclass
class TrainConfig:
    """A whole training configuration: one instance of each section."""

    data: DataConfig
    model: ModelSettings = field(default_factory=ModelSettings)
    teaching: TeachingConfig = field(default_factory=TeachingConfig)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self):
        network_configs(self.data, self.model)
        self.run.check_card(self.data)
        _require(
            not (self.run.channels_last or self.run.compile) or self.teaching.method == "dual_mcmc",
            "run.channels_last",
            f"run.channels_last / run.compile are options of the dual_mcmc step, not of "
            f"teaching.method={self.teaching.method!r}",
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Build and validate a config from a nested dict (a parsed YAML file); raises :class:`ConfigError`."""
        if not isinstance(raw, dict):
            raise ConfigError("config", f"expected a mapping of sections {list(SECTIONS)}, got {type(raw).__name__}")
        for name in raw:
            _require(
                name in SECTIONS,
                str(name),
                f"unknown section; {_did_you_mean(name, SECTIONS)}expected some of {list(SECTIONS)}",
            )
        _require("data" in raw, "data", "missing section: the config needs at least `data: {source: ...}`")
        sections = {}
        for name, section_cls in SECTIONS.items():
            values = raw.get(name) or {}
            _require(isinstance(values, dict), name, f"expected a mapping of keys, got {values!r}")
            values = _renamed(name, dict(values))
            known = [f.name for f in dataclasses.fields(section_cls)]
            for key in values:
                _require(
                    key in known, f"{name}.{key}", f"unknown key; {_did_you_mean(key, known)}expected one of {known}"
                )
            if name == "data":
                _require("source" in values, "data.source", "missing: where the images come from")
            sections[name] = section_cls(**values)
        return cls(**sections)

    def to_dict(self) -> dict[str, Any]:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        if out["data"].get("crop_box") is not None:
            out["data"]["crop_box"] = list(out["data"]["crop_box"])
        out["teaching"]["betas"] = list(out["teaching"]["betas"])
        return out


def _renamed(section: str, values: dict) -> dict:
    for (sec, old), new in RENAMED_KEYS.items():
        if sec != section or old not in values:
            continue
        _require(new not in values, f"{section}.{old}", f"renamed to {section}.{new}; give only {section}.{new}")
        warnings.warn(f"{section}.{old} is deprecated: use {section}.{new}", FutureWarning, stacklevel=4)
        values[new] = values.pop(old)
    return values


# ----------------------------------------------------------------------------------------------------------------
# Type checks from the dataclass annotations
# ----------------------------------------------------------------------------------------------------------------


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in args) + (" or null" if len(args) < len(typing.get_args(tp)) else "")
    if origin in (list, tuple):
        inner = typing.get_args(tp)
        return f"a list of {_describe(inner[0])}s" if inner else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _matches(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, (str, os.PathLike))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else True
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _as_float(value):
    """YAML 1.1 (PyYAML) reads ``1e-4`` and ``1.0e4`` as strings: a float field takes such a number string."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _validate_types(obj, section: str, cls: type | None = None) -> None:
    """Check every field of a section (a dataclass instance, or a dict of its future fields) against its annotation.
    Float fields take integers and number strings (``1e-4``) and store them as floats."""
    cls = cls or type(obj)
    hints = typing.get_type_hints(cls)
    items = obj.items() if isinstance(obj, dict) else ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(cls))
    for name, value in list(items):
        tp = hints[name]
        if _matches(1.5, tp):  # a float field (possibly optional)
            value = _as_float(value)
        _require(_matches(value, tp), f"{section}.{name}", f"expected {_describe(tp)}, got {value!r}")
        _require(
            not isinstance(value, int) or abs(value) <= MAX_INT,
            f"{section}.{name}",
            f"expected an integer of at most 2**63 - 1, got {value}",
        )
        if isinstance(obj, dict):
            obj[name] = value
        else:
            setattr(obj, name, value)


# ----------------------------------------------------------------------------------------------------------------
# Files and overrides
# ----------------------------------------------------------------------------------------------------------------


class _PlainYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors / aliases (and so without ``<<`` merges) and without duplicate keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (& and *) are not allowed", event.start_mark
            )
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
    """Parse YAML text (``str`` / ``bytes``) or a file (a path object) as plain data: no anchors or aliases, no
    duplicate keys, at most ``MAX_YAML_BYTES``; anything else raises :class:`ConfigError` keyed ``what`` (default:
    the file, or ``"YAML"``)."""
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
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            raise ConfigError(item, "an override must look like section.key=value (e.g. run.max_steps=100)")
        try:
            parsed = safe_load_yaml(value, key)
        except ConfigError as err:
            raise ConfigError(
                key, f"cannot parse {value!r} as a YAML value: {str(err).removeprefix(key + ': ')}"
            ) from err
        if raw.get(section) is None:
            raw[section] = {}
        if not isinstance(raw[section], dict):
            raise ConfigError(section, f"expected a mapping of keys, got {raw[section]!r}")
        raw[section][name] = parsed
    return raw


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config file (:func:`safe_load_yaml`), apply ``section.key=value`` overrides and validate everything."""
    raw = safe_load_yaml(Path(path), str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), f"expected a YAML mapping of sections {list(SECTIONS)}, got {type(raw).__name__}")
    return TrainConfig.from_dict(apply_overrides(raw, overrides or []))


__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelSettings",
    "RunSettings",
    "SamplerSettings",
    "TeachingConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "network_configs",
    "safe_load_yaml",
]

"""Configurations of the three Dual-MCMC networks (energy, generator, encoder): ``transformers.PretrainedConfig``s
(``config.json``, ``AutoConfig``) whose fields choose widths and depths, so the official CIFAR-10 (32 px) and
CelebA-64 networks are two settings of the same classes. :func:`configs_for_image_size` builds a consistent trio from
:class:`ModelSettings` for any ``image_size = 4 * 2**k`` (8, 16, 32, ...; 28x28 MNIST is padded to 32 by
``hf_dualmcmc.data``), with 1 or 3 channels. Also here: the authors' constants (``OFFICIAL_TRAINING``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from transformers import PretrainedConfig

BOTTOM_RESOLUTION = 4  # the generator starts from a 4x4 feature map, as in the official networks


def _check_image_size(image_size: int, what: str) -> int:
    if not isinstance(image_size, int) or image_size < BOTTOM_RESOLUTION:
        raise ValueError(f"{what}: image_size must be an integer >= {BOTTOM_RESOLUTION}, got {image_size!r}")
    k = math.log2(image_size / BOTTOM_RESOLUTION)
    if k != int(k):
        raise ValueError(
            f"{what}: image_size must be 4 * 2**k (8, 16, 32, 64, 128, 256, ...), got {image_size}. "
            "Pad or resize the data to such a size (28x28 MNIST is padded to 32 by hf_dualmcmc.data)."
        )
    return int(k)


class _DualMCMCConfig(PretrainedConfig):
    def _check_shape(self, image_size: int, num_channels: int) -> int:
        """The number of 2x steps between 4x4 and ``image_size``; ``ValueError`` for a shape the networks can't take."""
        k = _check_image_size(image_size, type(self).__name__)
        if num_channels not in (1, 3):
            raise ValueError(
                f"{type(self).__name__}: num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels!r}"
            )
        return k

    @property
    def channels(self) -> list[int]:
        """The widths, ``int(base_channels * m)`` for each ``m`` of ``channel_mults``."""
        return [int(self.base_channels * m) for m in self.channel_mults]


class DualMCMCGeneratorConfig(_DualMCMCConfig):
    r"""Configuration of the generator ``G(z)`` with ``p(x|z) = N(G(z), observation_std**2 I)``.

    Architecture: ``Linear(latent_dim -> 4*4*C0)`` -> residual up-blocks (BN-ReLU-upsample x2-conv3x3-BN-ReLU-conv3x3,
    shortcut upsample x2 then conv1x1) -> BN-ReLU-conv3x3 -> tanh. ``C_i = int(base_channels * channel_mults[i])``;
    ``channel_mults[0]`` is the 4x4 input width and each further entry is one up-block, so
    ``image_size = 4 * 2**(len(channel_mults) - 1)``.

    ``base_channels`` is the authors' ``ngf``, ``latent_dim`` their ``nz``; ``channel_mults=None``: the default pattern
    for the size; ``upsample_mode`` / ``align_corners``: bilinear with ``align_corners=True`` as the authors';
    ``observation_std`` is ``sigma`` of ``p(x|z)`` (used by the posterior z-chain), ``prior_std`` the std of ``p(z)``;
    BatchNorm ``eps`` / ``momentum``: PyTorch's defaults, as the authors'.
    """

    model_type = "dualmcmc_generator"

    def __init__(
        self,
        latent_dim: int = 128,
        image_size: int = 32,
        num_channels: int = 3,
        base_channels: int = 512,
        channel_mults: list[float] | None = None,
        upsample_mode: str = "bilinear",
        align_corners: bool = True,
        observation_std: float = 0.3,
        prior_std: float = 1.0,
        batch_norm_eps: float = 1e-5,
        batch_norm_momentum: float = 0.1,
        **kwargs,
    ):
        num_up = self._check_shape(image_size, num_channels)
        if channel_mults is None:  # up to 32 px CIFAR-10's constant width; from 64 px CelebA-64's, halving to the image
            channel_mults = [1.0 if image_size <= 32 else 1.0 / 2**i for i in range(num_up + 1)]
        channel_mults = [float(m) for m in channel_mults]
        if len(channel_mults) != num_up + 1:
            raise ValueError(
                f"DualMCMCGeneratorConfig: image_size {image_size} needs {num_up + 1} channel_mults "
                f"(4x4 input + {num_up} up-blocks), got {len(channel_mults)}: {channel_mults}"
            )
        if latent_dim < 1 or base_channels < 1 or any(int(base_channels * m) < 1 for m in channel_mults):
            raise ValueError(
                f"DualMCMCGeneratorConfig: latent_dim and base_channels * channel_mults must be >= 1, got "
                f"{latent_dim}, {base_channels} * {channel_mults}"
            )
        if observation_std <= 0 or prior_std <= 0:
            raise ValueError("DualMCMCGeneratorConfig: observation_std and prior_std must be > 0")
        self.latent_dim, self.image_size, self.num_channels = latent_dim, image_size, num_channels
        self.base_channels, self.channel_mults = base_channels, channel_mults
        self.upsample_mode, self.align_corners = upsample_mode, align_corners
        self.observation_std, self.prior_std = observation_std, prior_std
        self.batch_norm_eps, self.batch_norm_momentum = batch_norm_eps, batch_norm_momentum
        super().__init__(**kwargs)


class DualMCMCEnergyConfig(_DualMCMCConfig):
    r"""Configuration of the energy model ``E(x)`` (one scalar per image; lower energy = more likely).

    Architecture (SNGAN-style residual discriminator, all convs bias-free, spectral norm on every conv/linear):
    a start block ``conv3-ReLU-conv3-avgpool2`` (shortcut ``avgpool2-conv1x1``) to ``C0``, then one residual block
    per further entry of ``channel_mults`` (``ReLU-conv3-ReLU-conv3[-avgpool2]``, shortcut ``conv1x1[-avgpool2]``, the
    shortcut conv only where the width changes or the block downsamples), then ReLU, global average pooling and a
    bias-free ``Linear(C_last -> 1)``.

    ``base_channels`` is the authors' ``ndf``; ``channel_mults``: ``[start, block_1, ...]`` widths relative to it;
    ``downsample``: per residual block, whether it halves the resolution (``None``: the default layout for the size);
    ``spectral_norm``: ``torch.nn.utils.parametrizations.spectral_norm`` (power-iteration ``spectral_norm_eps``).
    """

    model_type = "dualmcmc_energy"

    def __init__(
        self,
        image_size: int = 32,
        num_channels: int = 3,
        base_channels: int = 512,
        channel_mults: list[float] | None = None,
        downsample: list[bool] | None = None,
        spectral_norm: bool = True,
        spectral_norm_eps: float = 1e-12,
        **kwargs,
    ):
        num_down = self._check_shape(image_size, num_channels)
        if channel_mults is None:  # to 32 px CIFAR-10's constant width, else CelebA-64's, doubling up to base_channels
            channel_mults = [1.0] * 4 if image_size <= 32 else [1.0 / 2**i for i in reversed(range(num_down + 1))]
        if downsample is None:  # start block /2, then 32 -> 16 -> 8 (CIFAR-10's) or /2 per block to 2x2 (CelebA-64's)
            downsample = [True, False, False] if image_size <= 32 else [True] * num_down
        channel_mults = [float(m) for m in channel_mults]
        downsample = [bool(d) for d in downsample]
        if len(downsample) != len(channel_mults) - 1:
            raise ValueError(
                "DualMCMCEnergyConfig: downsample needs one entry per residual block "
                f"(len(channel_mults) - 1 = {len(channel_mults) - 1}), got {len(downsample)}"
            )
        if image_size // 2 ** (1 + sum(downsample)) < 1:
            raise ValueError(
                f"DualMCMCEnergyConfig: {1 + sum(downsample)} halvings of image_size {image_size} leave no pixels"
            )
        if any(int(base_channels * m) < 1 for m in channel_mults):
            raise ValueError(f"DualMCMCEnergyConfig: base_channels * channel_mults must be >= 1, got {channel_mults}")
        self.image_size, self.num_channels, self.base_channels = image_size, num_channels, base_channels
        self.channel_mults, self.downsample = channel_mults, downsample
        self.spectral_norm, self.spectral_norm_eps = spectral_norm, spectral_norm_eps
        super().__init__(**kwargs)


class DualMCMCEncoderConfig(_DualMCMCConfig):
    r"""Configuration of the inference model ``q(z|x) = N(mu(x), diag exp(logvar(x)))``.

    Architecture: a first conv (``conv3x3 stride 1`` when ``first_stride=1``, as for CIFAR-10, or ``conv4x4 stride 2``
    when ``first_stride=2``, as for CelebA-64) to ``C0``, LeakyReLU(0.2), then bias-free ``conv4x4 stride 2`` layers
    to ``C_1, C_2, ...`` each followed by LeakyReLU(0.2), then two conv heads with bias (mean and log-variance) whose
    kernel covers the remaining feature map (4x4 in the official networks) and output ``latent_dim x 1 x 1``.
    """

    model_type = "dualmcmc_encoder"

    def __init__(
        self,
        image_size: int = 32,
        num_channels: int = 3,
        latent_dim: int = 128,
        base_channels: int = 128,
        channel_mults: list[float] | None = None,
        first_stride: int | None = None,
        negative_slope: float = 0.2,
        **kwargs,
    ):
        num = self._check_shape(image_size, num_channels)
        if channel_mults is None:  # stride-2 convs down to 4x4 after the first, widths growing to at most 8x
            channel_mults = [float(min(2**i, 8)) for i in range(num + (image_size <= 32))]
        if first_stride is None:  # conv3 s1 up to 32 px (CIFAR-10: 32 -> 32 -> 16 -> 8 -> 4), else conv4 s2 (CelebA-64)
            first_stride = 1 if image_size <= 32 else 2
        channel_mults = [float(m) for m in channel_mults]
        if first_stride not in (1, 2):
            raise ValueError(f"DualMCMCEncoderConfig: first_stride must be 1 or 2, got {first_stride!r}")
        if image_size // first_stride // 2 ** (len(channel_mults) - 1) < 1:
            raise ValueError(
                f"DualMCMCEncoderConfig: image_size {image_size} is too small for {len(channel_mults)} conv layers"
            )
        if latent_dim < 1 or any(int(base_channels * m) < 1 for m in channel_mults):
            raise ValueError("DualMCMCEncoderConfig: latent_dim and base_channels * channel_mults must be >= 1")
        self.image_size, self.num_channels, self.latent_dim = image_size, num_channels, latent_dim
        self.base_channels, self.channel_mults = base_channels, channel_mults
        self.first_stride, self.negative_slope = first_stride, negative_slope
        super().__init__(**kwargs)

    @property
    def final_resolution(self) -> int:
        return self.image_size // self.first_stride // 2 ** (len(self.channel_mults) - 1)


# The authors' constants (config.py of github.com/jcui1224/dual-MCMC and their FID sampler; their names in comments) as
# training-config sections: the defaults of hf_dualmcmc.training_config (CIFAR-10), the converter's pipelines and model
# cards, configs/cifar10.yaml and configs/celeba64.yaml (which give only what differs from the defaults).
SAMPLER_SETTINGS = {  # the pipeline's sampler settings, name: (the authors' value, meaning)
    "num_inference_steps": (70, "x-chain: Langevin steps revising the generator's proposals on the energy"),
    "step_size": (0.4, "x-chain step size"),
    "noise_scale": (0.001, "x-chain noise scale"),
    "bn_stats": ("batch", "generator BatchNorm while sampling: batch statistics (the authors') or running"),
    "num_latent_steps": (10, "z-chain (reconstruct): Langevin steps on the generator posterior"),
    "latent_step_size": (0.1, "z-chain step size"),
    "latent_noise_scale": (0.1, "z-chain noise scale"),
}
OFFICIAL_SAMPLER = {name: value for name, (value, _) in SAMPLER_SETTINGS.items()}
_CIFAR10 = {
    "data": {"image_size": 32, "num_channels": 3},
    "model": {"latent_dim": 128, "ngf": 512, "ndf": 512, "nif": 128, "observation_std": 0.3, "prior_std": 1.0},
    "teaching": {
        **dict(num_steps=30, step_size=0.5, noise_scale=0.001),  # e_l_steps, e_l_step_size, e_n_step_size
        **dict(num_latent_steps=10, latent_step_size=0.1, latent_noise_scale=0.1),  # l_steps, l_step_size, n_step_size
        **dict(data_weight=1.0, generator_teaching_weight=50.0, encoder_teaching_weight=0.1),  # G/S/Ifactor
        **dict(lr_energy=1e-4, lr_generator=3e-4, lr_encoder=1e-4, betas=(0.0, 0.9), lr_decay=0.998),
        **dict(weight_decay_energy=0.0, weight_decay_generator=5e-4, weight_decay_encoder=5e-4),
    },
    "sampler": OFFICIAL_SAMPLER,
    "run": {"batch_size": 100, "epochs": 301, "seed": 1234},
}
_CELEBA64 = {  # what differs from CIFAR-10 (the crop box cuts the faces out of the aligned 178x218 images)
    "data": {"image_size": 64, "crop_box": (15, 40, 163, 188), "random_flip": True},
    "model": {"ngf": 1024, "ndf": 1024},
    "teaching": {"step_size": 0.3, "generator_teaching_weight": 70.0},
}
OFFICIAL_TRAINING = {
    "cifar10": _CIFAR10,
    "celeba64": {name: {**values, **_CELEBA64.get(name, {})} for name, values in _CIFAR10.items()},
}


def setting(default=dataclasses.MISSING, meaning: str = "", check=None, resumable: bool = False):
    """A field of a config section: default, meaning (``--help_config``), rule (``">= 0"``, ``"> 0 (note)"``, a tuple
    of choices: checked by :mod:`hf_dualmcmc.training_config`) and whether a resumed run may change it."""
    return dataclasses.field(default=default, metadata={"help": meaning, "check": check, "resumable": resumable})


_MODEL = _CIFAR10["model"]


@dataclass
class ModelSettings:
    """The widths and layouts of the three networks: the ``model:`` section of a training config and the arguments
    of :func:`configs_for_image_size`. ``None`` layouts: the configs' defaults for the image size."""

    latent_dim: int = setting(_MODEL["latent_dim"], "size of z (the authors' nz)", ">= 1")
    ngf: int = setting(_MODEL["ngf"], "generator width (its base_channels)", ">= 1")
    ndf: int = setting(_MODEL["ndf"], "energy width", ">= 1")
    nif: int = setting(_MODEL["nif"], "encoder width", ">= 1")
    generator_channel_mults: list[float] | None = setting(None, "generator widths / ngf, the 4x4 input's first")
    energy_channel_mults: list[float] | None = setting(None, "energy widths / ndf, the start block's first")
    energy_downsample: list[bool] | None = setting(None, "one per energy residual block: halves the resolution")
    encoder_channel_mults: list[float] | None = setting(None, "encoder widths / nif")
    encoder_first_stride: int | None = setting(None, "1 (conv3x3, as CIFAR-10's) or 2 (conv4x4, as CelebA-64's)")
    observation_std: float = setting(_MODEL["observation_std"], "sigma of p(x|z) = N(G(z), sigma^2 I)", "> 0")
    prior_std: float = setting(_MODEL["prior_std"], "std of the Gaussian prior p(z)", "> 0")
    spectral_norm: bool = setting(True, "spectral norm on every conv / linear of the energy")

    def configs(self, image_size: int, num_channels: int = 3):
        """The (energy, generator, encoder) configs; a ``ValueError`` starts with the argument at fault (a layout
        that does not fit: the first layout argument given, else the width)."""
        _check_image_size(image_size, "image_size")
        fields = {**dataclasses.asdict(self), "image_size": image_size, "num_channels": num_channels}
        for key, value in fields.items():
            if value == []:
                raise ValueError(f"{key}: must not be empty (null: the default layout for the image size)")
        configs = []
        for net, config_class, width, same in (  # same: the fields the network's config names alike
            ("energy", DualMCMCEnergyConfig, "ndf", ["spectral_norm"]),
            ("generator", DualMCMCGeneratorConfig, "ngf", ["latent_dim", "observation_std", "prior_std"]),
            ("encoder", DualMCMCEncoderConfig, "nif", ["latent_dim"]),
        ):
            layout = {k.removeprefix(net + "_"): v for k, v in fields.items() if k.startswith(net + "_")}
            kwargs = {k: fields[k] for k in ("image_size", "num_channels", *same)}
            try:
                configs.append(config_class(base_channels=fields[width], **layout, **kwargs))
            except ValueError as err:
                key = next((f"{net}_{arg}" for arg, value in layout.items() if value is not None), width)
                raise ValueError(f"{key}: {err}") from None
        return tuple(configs)


def configs_for_image_size(
    image_size: int, num_channels: int = 3, **model
) -> tuple[DualMCMCEnergyConfig, DualMCMCGeneratorConfig, DualMCMCEncoderConfig]:
    """A consistent (energy, generator, encoder) trio for ``image_size``; ``model``: :class:`ModelSettings`
    (``latent_dim``, ``ngf``, ``ndf``, ``nif``, layouts, ``observation_std``, ``prior_std``, ``spectral_norm``)."""
    return ModelSettings(**model).configs(image_size, num_channels)


def official_configs(name: str) -> tuple[DualMCMCEnergyConfig, DualMCMCGeneratorConfig, DualMCMCEncoderConfig]:
    """The authors' networks: ``official_configs("cifar10")`` or ``official_configs("celeba64")``.

    Parameter counts (checked by the tests): CIFAR-10 G 16,024,579 / E 16,793,088 / I 15,208,064;
    CelebA-64 G 12,220,675 / E 19,536,768 / I 15,210,752.
    """
    if name not in OFFICIAL_TRAINING:
        raise ValueError(f"unknown official setting {name!r}; expected one of {sorted(OFFICIAL_TRAINING)}")
    return configs_for_image_size(OFFICIAL_TRAINING[name]["data"]["image_size"], 3, **OFFICIAL_TRAINING[name]["model"])

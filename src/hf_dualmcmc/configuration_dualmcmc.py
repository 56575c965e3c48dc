"""Configurations of the three Dual-MCMC networks (energy, generator, encoder).

Each config is a :class:`transformers.PretrainedConfig`, so it round-trips through ``config.json`` and is
registered with ``AutoConfig`` under its ``model_type``. Widths and depths are chosen by fields (not by new
classes): the official CIFAR-10 (32 px) and CelebA-64 networks are two settings of the same classes, and
:func:`configs_for_image_size` derives a consistent trio for any ``image_size = 4 * 2**k`` (8, 16, 32, 64, 128,
256, ...), with 1 or 3 channels. 28x28 data (MNIST) is padded to 32 by the data pipeline (see
``hf_dualmcmc.data``), so the networks only ever see powers of two.
"""

from __future__ import annotations

import math

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


def _check_channels(num_channels: int, what: str) -> None:
    if num_channels not in (1, 3):
        raise ValueError(f"{what}: num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels!r}")


class DualMCMCGeneratorConfig(PretrainedConfig):
    r"""Configuration of the generator ``G(z)`` with ``p(x|z) = N(G(z), observation_std**2 I)``.

    Architecture: ``Linear(latent_dim -> 4*4*C0)`` -> residual up-blocks (BN-ReLU-upsample x2-conv3x3-BN-ReLU-conv3x3,
    shortcut upsample x2 then conv1x1) -> BN-ReLU-conv3x3 -> tanh. ``C_i = int(base_channels * channel_mults[i])``;
    ``channel_mults[0]`` is the 4x4 input width and each further entry is one up-block, so
    ``image_size = 4 * 2**(len(channel_mults) - 1)``.

    Args:
        latent_dim: size of z (``nz``; 128 in the paper).
        image_size: output resolution.
        num_channels: 1 or 3.
        base_channels: ``ngf`` (512 for CIFAR-10, 1024 for CelebA-64).
        channel_mults: widths relative to ``base_channels``; ``None`` picks the official pattern for the size.
        upsample_mode / align_corners: the official blocks use bilinear with ``align_corners=True``.
        observation_std: ``sigma`` of ``p(x|z)`` (0.3 officially), used by the posterior z-chain.
        prior_std: std of the Gaussian prior ``p(z)`` (1.0).
        batch_norm_eps / batch_norm_momentum: generator BatchNorm settings (PyTorch defaults, as the authors).
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
        num_up = _check_image_size(image_size, "DualMCMCGeneratorConfig")
        _check_channels(num_channels, "DualMCMCGeneratorConfig")
        if channel_mults is None:
            channel_mults = default_generator_mults(image_size)
        channel_mults = [float(m) for m in channel_mults]
        if len(channel_mults) != num_up + 1:
            raise ValueError(
                f"DualMCMCGeneratorConfig: image_size {image_size} needs {num_up + 1} channel_mults "
                f"(4x4 input + {num_up} up-blocks), got {len(channel_mults)}: {channel_mults}"
            )
        if latent_dim < 1 or base_channels < 1:
            raise ValueError("DualMCMCGeneratorConfig: latent_dim and base_channels must be >= 1")
        if any(int(base_channels * m) < 1 for m in channel_mults):
            raise ValueError(
                f"DualMCMCGeneratorConfig: base_channels * channel_mults must be >= 1, got {channel_mults}"
            )
        if observation_std <= 0 or prior_std <= 0:
            raise ValueError("DualMCMCGeneratorConfig: observation_std and prior_std must be > 0")
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.num_channels = num_channels
        self.base_channels = base_channels
        self.channel_mults = channel_mults
        self.upsample_mode = upsample_mode
        self.align_corners = align_corners
        self.observation_std = observation_std
        self.prior_std = prior_std
        self.batch_norm_eps = batch_norm_eps
        self.batch_norm_momentum = batch_norm_momentum
        super().__init__(**kwargs)

    @property
    def channels(self) -> list[int]:
        return [int(self.base_channels * m) for m in self.channel_mults]


class DualMCMCEnergyConfig(PretrainedConfig):
    r"""Configuration of the energy model ``E(x)`` (one scalar per image; lower energy = more likely).

    Architecture (SNGAN-style residual discriminator, all convs bias-free, spectral norm on every conv/linear):
    a start block ``conv3-ReLU-conv3-avgpool2`` (shortcut ``avgpool2-conv1x1``) to ``C0``, then one residual block
    per further entry of ``channel_mults`` (``ReLU-conv3-ReLU-conv3[-avgpool2]``, shortcut ``conv1x1[-avgpool2]``, the
    shortcut conv only where the width changes or the block downsamples), then ReLU, global average pooling and a
    bias-free ``Linear(C_last -> 1)``.

    Args:
        image_size / num_channels: input resolution and 1 or 3 channels.
        base_channels: ``ndf`` (512 for CIFAR-10, 1024 for CelebA-64).
        channel_mults: ``[start, block_1, ...]`` widths relative to ``base_channels``.
        downsample: one bool per residual block (after the start block), whether it halves the resolution.
        spectral_norm: wrap every conv/linear with ``torch.nn.utils.parametrizations.spectral_norm``.
        spectral_norm_eps: eps of the spectral-norm power iteration (PyTorch default 1e-12).
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
        _check_image_size(image_size, "DualMCMCEnergyConfig")
        _check_channels(num_channels, "DualMCMCEnergyConfig")
        if channel_mults is None or downsample is None:
            default_mults, default_down = default_energy_layout(image_size)
            channel_mults = default_mults if channel_mults is None else channel_mults
            downsample = default_down if downsample is None else downsample
        channel_mults = [float(m) for m in channel_mults]
        downsample = [bool(d) for d in downsample]
        if len(downsample) != len(channel_mults) - 1:
            raise ValueError(
                "DualMCMCEnergyConfig: downsample needs one entry per residual block "
                f"(len(channel_mults) - 1 = {len(channel_mults) - 1}), got {len(downsample)}"
            )
        final = image_size // 2 ** (1 + sum(downsample))
        if final < 1:
            raise ValueError(
                f"DualMCMCEnergyConfig: {1 + sum(downsample)} halvings of image_size {image_size} leave no pixels"
            )
        if any(int(base_channels * m) < 1 for m in channel_mults):
            raise ValueError(f"DualMCMCEnergyConfig: base_channels * channel_mults must be >= 1, got {channel_mults}")
        self.image_size = image_size
        self.num_channels = num_channels
        self.base_channels = base_channels
        self.channel_mults = channel_mults
        self.downsample = downsample
        self.spectral_norm = spectral_norm
        self.spectral_norm_eps = spectral_norm_eps
        super().__init__(**kwargs)

    @property
    def channels(self) -> list[int]:
        return [int(self.base_channels * m) for m in self.channel_mults]


class DualMCMCEncoderConfig(PretrainedConfig):
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
        _check_image_size(image_size, "DualMCMCEncoderConfig")
        _check_channels(num_channels, "DualMCMCEncoderConfig")
        if channel_mults is None or first_stride is None:
            default_mults, default_stride = default_encoder_layout(image_size)
            channel_mults = default_mults if channel_mults is None else channel_mults
            first_stride = default_stride if first_stride is None else first_stride
        channel_mults = [float(m) for m in channel_mults]
        if first_stride not in (1, 2):
            raise ValueError(f"DualMCMCEncoderConfig: first_stride must be 1 or 2, got {first_stride!r}")
        final = image_size // first_stride // 2 ** (len(channel_mults) - 1)
        if final < 1:
            raise ValueError(
                f"DualMCMCEncoderConfig: image_size {image_size} is too small for {len(channel_mults)} conv layers"
            )
        if latent_dim < 1 or any(int(base_channels * m) < 1 for m in channel_mults):
            raise ValueError("DualMCMCEncoderConfig: latent_dim and base_channels * channel_mults must be >= 1")
        self.image_size = image_size
        self.num_channels = num_channels
        self.latent_dim = latent_dim
        self.base_channels = base_channels
        self.channel_mults = channel_mults
        self.first_stride = first_stride
        self.negative_slope = negative_slope
        super().__init__(**kwargs)

    @property
    def channels(self) -> list[int]:
        return [int(self.base_channels * m) for m in self.channel_mults]

    @property
    def final_resolution(self) -> int:
        return self.image_size // self.first_stride // 2 ** (len(self.channel_mults) - 1)


# ----------------------------------------------------------------------------------------------------------------
# Default layouts. Up to 32 px: the CIFAR-10 pattern (constant width); from 64 px: the CelebA-64 pattern (widths
# halve towards the image).
# ----------------------------------------------------------------------------------------------------------------


def default_generator_mults(image_size: int) -> list[float]:
    num_up = _check_image_size(image_size, "generator")
    if image_size <= 32:
        return [1.0] * (num_up + 1)
    return [1.0 / 2**i for i in range(num_up + 1)]


def default_energy_layout(image_size: int) -> tuple[list[float], list[bool]]:
    num_down = _check_image_size(image_size, "energy")
    if image_size <= 32:
        # start block (/2), one down block (/2), two same-size blocks: 32 -> 16 -> 8 (the CIFAR-10 network)
        return [1.0, 1.0, 1.0, 1.0], [True, False, False]
    # start block + (num_down) down blocks, widths doubling up to base_channels: 64 -> 32 -> ... -> 2 (CelebA-64)
    mults = [1.0 / 2**i for i in reversed(range(num_down + 1))]
    return mults, [True] * num_down


def default_encoder_layout(image_size: int) -> tuple[list[float], int]:
    num = _check_image_size(image_size, "encoder")
    if image_size <= 32:
        # conv3 s1 then stride-2 convs down to 4x4 (CIFAR-10: 32 -> 32 -> 16 -> 8 -> 4), at most 8x the width
        return [float(min(2**i, 8)) for i in range(num + 1)], 1
    # conv4 s2 then stride-2 convs down to 4x4 (CelebA-64: 64 -> 32 -> 16 -> 8 -> 4)
    return [float(min(2**i, 8)) for i in range(num)], 2


def configs_for_image_size(
    image_size: int,
    num_channels: int = 3,
    latent_dim: int = 128,
    ngf: int = 512,
    ndf: int = 512,
    nif: int = 128,
    **generator_kwargs,
) -> tuple[DualMCMCEnergyConfig, DualMCMCGeneratorConfig, DualMCMCEncoderConfig]:
    """A consistent (energy, generator, encoder) trio for ``image_size`` with the default layouts."""
    energy = DualMCMCEnergyConfig(image_size=image_size, num_channels=num_channels, base_channels=ndf)
    generator = DualMCMCGeneratorConfig(
        latent_dim=latent_dim, image_size=image_size, num_channels=num_channels, base_channels=ngf, **generator_kwargs
    )
    encoder = DualMCMCEncoderConfig(
        image_size=image_size, num_channels=num_channels, latent_dim=latent_dim, base_channels=nif
    )
    return energy, generator, encoder


# The authors' FID sampler (official-algorithm.md): 70 x-steps of size 0.4, noise 0.001, generator BatchNorm on
# batch statistics; their z-chain: 10 steps of size 0.1, noise 0.1.
OFFICIAL_SAMPLER = dict(
    num_inference_steps=70,
    step_size=0.4,
    noise_scale=0.001,
    bn_stats="batch",
    num_latent_steps=10,
    latent_step_size=0.1,
    latent_noise_scale=0.1,
)

OFFICIAL_SETTINGS = {
    # dataset: (image_size, ngf, ndf, nif, nz)
    "cifar10": (32, 512, 512, 128, 128),
    "celeba64": (64, 1024, 1024, 128, 128),
}


def official_configs(name: str) -> tuple[DualMCMCEnergyConfig, DualMCMCGeneratorConfig, DualMCMCEncoderConfig]:
    """The authors' networks: ``official_configs("cifar10")`` or ``official_configs("celeba64")``.

    Parameter counts (checked by the tests): CIFAR-10 G 16,024,579 / E 16,793,088 / I 15,208,064;
    CelebA-64 G 12,220,675 / E 19,536,768 / I 15,210,752.
    """
    if name not in OFFICIAL_SETTINGS:
        raise ValueError(f"unknown official setting {name!r}; expected one of {sorted(OFFICIAL_SETTINGS)}")
    image_size, ngf, ndf, nif, nz = OFFICIAL_SETTINGS[name]
    return configs_for_image_size(image_size, 3, latent_dim=nz, ngf=ngf, ndf=ndf, nif=nif)

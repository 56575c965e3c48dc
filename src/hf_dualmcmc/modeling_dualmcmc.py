"""The three Dual-MCMC networks as ``transformers.PreTrainedModel`` subclasses.

* :class:`DualMCMCEnergyModel` -- ``E(x)``, one energy per image (lower = more likely), spectral norm on every layer.
* :class:`DualMCMCGeneratorModel` -- ``G(z)``, images in ``[-1, 1]``; ``p(x|z) = N(G(z), sigma^2 I)``.
* :class:`DualMCMCEncoderModel` -- ``q(z|x) = N(mu(x), diag exp(logvar(x)))``.

Layer shapes and initialisation follow the authors' networks (github.com/jcui1224/dual-MCMC): xavier-normal conv
weights, PyTorch-default conv biases and linear layers, BatchNorm weight ~ N(0, 1), bias 0. Spectral norm (the
parametrization API) is refreshed after (re-)initialisation: a fresh model is already normalised.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput

from .configuration_dualmcmc import (
    BOTTOM_RESOLUTION,
    DualMCMCEncoderConfig,
    DualMCMCEnergyConfig,
    DualMCMCGeneratorConfig,
)

SPECTRAL_NORM_REFRESH_ITERATIONS = 50  # power iterations after (re-)initialisation (torch runs 15 on attach)


@dataclass
class EnergyOutput(ModelOutput):
    """``energy``: ``[batch]`` energies (lower = more likely)."""

    energy: torch.Tensor | None = None


@dataclass
class GeneratorOutput(ModelOutput):
    """``sample``: ``[batch, channels, size, size]`` images in ``[-1, 1]``."""

    sample: torch.Tensor | None = None


@dataclass
class EncoderOutput(ModelOutput):
    """``mean`` and ``logvar``: ``[batch, latent_dim]`` parameters of ``q(z|x)``."""

    mean: torch.Tensor | None = None
    logvar: torch.Tensor | None = None

    def sample(self, generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
        """Reparameterised draw ``mean + exp(0.5 logvar) * eps``."""
        from diffusers.utils.torch_utils import randn_tensor

        eps = randn_tensor(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * eps


@torch.no_grad()
def refresh_spectral_norm(module: nn.Module, n_iterations: int = SPECTRAL_NORM_REFRESH_ITERATIONS) -> None:
    """Re-draw and iterate the power-iteration vectors of every spectral norm in ``module``: call after changing raw
    weights outside training (initialisation, loading raw weights), so that ``W / sigma`` has norm ~1 in eval mode."""
    for sub in module.modules():
        if not parametrize.is_parametrized(sub):
            continue
        for plist in sub.parametrizations.values():
            for p in plist:
                if hasattr(p, "_power_method") and hasattr(p, "_u"):
                    w = p._reshape_weight_to_matrix(plist.original)
                    p._u.copy_(F.normalize(torch.randn_like(p._u), dim=0, eps=p.eps))
                    p._v.copy_(F.normalize(torch.randn_like(p._v), dim=0, eps=p.eps))
                    p._power_method(w, n_iterations)


def _readable_safetensors(path: Path) -> bool:
    try:
        with safe_open(path, "pt"):
            return True
    except SafetensorError:
        return False


def _check_loaded(model: nn.Module, info: dict, folder: Path) -> None:
    """Strict loading: every tensor of the model came from the weights file, with its shape, and is finite."""
    problems = [
        f"{what} {sorted(str(k[0]) if isinstance(k, tuple) else str(k) for k in info[key])[:5]}"
        for key, what in (
            ("missing_keys", "missing tensors"),
            ("unexpected_keys", "unexpected tensors"),
            ("mismatched_keys", "tensors of another shape"),
        )
        if info.get(key)
    ]
    if problems:
        raise ValueError(f"{folder}: the weights do not match {type(model).__name__}'s config: {'; '.join(problems)}")
    tensors = (*model.named_parameters(), *model.named_buffers())
    bad = [name for name, t in tensors if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{folder}: the weights hold NaN or inf in {bad[:5]}{' ...' if len(bad) > 5 else ''}")


class _DualMCMCPreTrainedModel(PreTrainedModel):
    """Common base: the authors' initialisation, respecting weights that were loaded from a checkpoint."""

    base_model_prefix = "model"
    main_input_name = "pixel_values"
    _no_split_modules: list[str] = []

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False) -> None:
        # not transformers' "all direct parameters loaded" test (a spectral-normalised conv has none): _init_weights
        # only uses transformers.initialization functions, which skip loaded tensors
        if getattr(module, "_is_hf_initialized", False):
            return
        self._init_weights(module)
        module._is_hf_initialized = True

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            sn = parametrize.is_parametrized(module)
            weight = module.parametrizations.weight.original if sn else module.weight
            fresh = not getattr(weight, "_is_hf_initialized", False)
            if isinstance(module, nn.Conv2d):
                hf_init.xavier_normal_(weight)
            else:  # PyTorch's default Linear initialisation, as the authors leave it
                hf_init.kaiming_uniform_(weight, a=math.sqrt(5))
            if module.bias is not None:  # PyTorch's default bias initialisation
                fan_in = weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                hf_init.uniform_(module.bias, -bound, bound)
            if fresh and sn:
                refresh_spectral_norm(module)
        elif isinstance(module, nn.BatchNorm2d):
            hf_init.normal_(module.weight, 0.0, 1.0)
            hf_init.zeros_(module.bias)
            hf_init.zeros_(module.running_mean)
            hf_init.ones_(module.running_var)
            hf_init.zeros_(module.num_batches_tracked)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, strict: bool = True, **kwargs):
        """``PreTrainedModel.from_pretrained`` with errors naming the file (a missing or corrupt ``config.json`` or
        ``*.safetensors``: ``OSError``, invalid values: ``ValueError``). ``strict`` (default): weights that do not match
        the config or hold NaN / inf raise ``ValueError`` naming the tensors (``strict=False``: transformers' warning
        and fresh tensors). Tensors get aligned storage (bit-identical results: odd offsets change CPU rounding)."""
        folder = Path(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        config_file = folder / "config.json"
        if folder.is_dir() and kwargs.get("config") is None:  # transformers would fall back to a default config
            if not config_file.is_file():
                raise FileNotFoundError(f"{config_file} is missing: expected the model's config (save_pretrained)")
            try:
                cls.config_class.from_json_file(config_file)
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as err:  # not a JSON object
                raise OSError(f"{config_file} is not a valid JSON config object: {err}") from err
            except ValueError as err:  # the config class rejects a value
                raise ValueError(f"{config_file}: {err}") from err
        wants_info = kwargs.pop("output_loading_info", False)
        if strict:
            kwargs.setdefault("ignore_mismatched_sizes", True)  # reported below, by name
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        except SafetensorError as err:
            broken = [f for f in sorted(folder.glob("*.safetensors")) if not _readable_safetensors(f)]
            raise OSError(
                f"{', '.join(map(str, broken)) or folder}: not a readable safetensors file (empty or truncated?): {err}"
            ) from err
        if strict:
            _check_loaded(model, info, folder)
        loaded = (model, info) if wants_info else model
        with torch.no_grad():
            for tensor in (*model.parameters(), *model.buffers()):
                if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
                    tensor.data = tensor.data.clone()
        return loaded

    @property
    def num_parameters_total(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _maybe_sn(layer: nn.Module, enabled: bool, eps: float) -> nn.Module:
    return spectral_norm(layer, eps=eps) if enabled else layer


class EnergyStartBlock(nn.Module):
    """``conv3-ReLU-conv3-avgpool2`` + shortcut ``avgpool2-conv1x1`` (the first block sees raw pixels: no pre-ReLU)."""

    def __init__(self, in_ch: int, out_ch: int, sn: bool, eps: float):
        super().__init__()
        self.conv1 = _maybe_sn(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), sn, eps)
        self.conv2 = _maybe_sn(nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False), sn, eps)
        self.shortcut = _maybe_sn(nn.Conv2d(in_ch, out_ch, 1, 1, 0, bias=False), sn, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


class EnergyBlock(nn.Module):
    """``ReLU-conv3-ReLU-conv3[-avgpool2]`` + shortcut ``conv1x1[-avgpool2]`` (identity when shapes are kept)."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, sn: bool, eps: float):
        super().__init__()
        self.downsample = downsample
        self.conv1 = _maybe_sn(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), sn, eps)
        self.conv2 = _maybe_sn(nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False), sn, eps)
        learnable = downsample or in_ch != out_ch
        self.shortcut = _maybe_sn(nn.Conv2d(in_ch, out_ch, 1, 1, 0, bias=False), sn, eps) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        s = self.shortcut(x) if self.shortcut is not None else x
        if self.downsample:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class DualMCMCEnergyModel(_DualMCMCPreTrainedModel):
    r"""Energy ``E(x)``: ``pixel_values`` in ``[-1, 1]`` of shape ``[B, C, H, W]`` -> ``energy`` of shape ``[B]``.

    The EBM density is ``pi(x) ∝ exp(-E(x))`` (the paper's ``f = -E``).

    Example:

    ```python
    >>> from hf_dualmcmc import DualMCMCEnergyConfig, DualMCMCEnergyModel
    >>> model = DualMCMCEnergyModel(DualMCMCEnergyConfig(image_size=16, base_channels=32))
    >>> model(torch.zeros(2, 3, 16, 16)).energy.shape
    torch.Size([2])
    ```
    """

    config_class = DualMCMCEnergyConfig

    def __init__(self, config: DualMCMCEnergyConfig):
        super().__init__(config)
        ch = config.channels
        sn, eps = config.spectral_norm, config.spectral_norm_eps
        self.start = EnergyStartBlock(config.num_channels, ch[0], sn, eps)
        self.blocks = nn.ModuleList(
            EnergyBlock(ch[i], ch[i + 1], config.downsample[i], sn, eps) for i in range(len(ch) - 1)
        )
        self.head = _maybe_sn(nn.Linear(ch[-1], 1, bias=False), sn, eps)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None) -> EnergyOutput | tuple:
        h = self.start(pixel_values)
        for block in self.blocks:
            h = block(h)
        h = F.relu(h).mean(dim=(2, 3))
        energy = self.head(h).squeeze(-1)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return EnergyOutput(energy=energy) if return_dict else (energy,)

    def energy(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Per-sample energies ``[B]`` (shortcut for ``self(x).energy``)."""
        return self.forward(pixel_values, return_dict=False)[0]


class GeneratorBlock(nn.Module):
    """``BN-ReLU-up2-conv3-BN-ReLU-conv3`` + shortcut ``up2-conv1x1``."""

    def __init__(self, in_ch: int, out_ch: int, config: DualMCMCGeneratorConfig):
        super().__init__()
        bn = dict(eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.norm1 = nn.BatchNorm2d(in_ch, **bn)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.norm2 = nn.BatchNorm2d(out_ch, **bn)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, 1, 0)
        self.mode = config.upsample_mode
        self.align_corners = config.align_corners if config.upsample_mode in ("bilinear", "bicubic") else None

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=self.align_corners)

    def forward(self, x: torch.Tensor, norm=None) -> torch.Tensor:
        norm = norm or (lambda bn, t: bn(t))
        h = self.conv1(self._up(F.relu(norm(self.norm1, x))))
        h = self.conv2(F.relu(norm(self.norm2, h)))
        return h + self.shortcut(self._up(x))


class DualMCMCGeneratorModel(_DualMCMCPreTrainedModel):
    r"""Generator ``G(z)``: ``latents`` ``[B, latent_dim]`` (or ``[B, latent_dim, 1, 1]``) -> images in ``[-1, 1]``.
    BatchNorm follows the module's mode (train: batch statistics, running statistics updated, as the authors train);
    :meth:`batch_norm_stats` forces ``"batch"`` statistics with the running ones untouched (the authors' sampler:
    their networks stay in train mode) or ``"running"`` statistics."""

    config_class = DualMCMCGeneratorConfig
    main_input_name = "latents"

    def __init__(self, config: DualMCMCGeneratorConfig):
        super().__init__(config)
        ch = config.channels
        self.input_proj = nn.Linear(config.latent_dim, BOTTOM_RESOLUTION * BOTTOM_RESOLUTION * ch[0])
        self.blocks = nn.ModuleList(GeneratorBlock(ch[i], ch[i + 1], config) for i in range(len(ch) - 1))
        self.norm_out = nn.BatchNorm2d(ch[-1], eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.conv_out = nn.Conv2d(ch[-1], config.num_channels, 3, 1, 1)
        self._bn_stats: str | None = None
        self.post_init()

    @contextmanager
    def batch_norm_stats(self, mode: str | None):
        """Temporarily choose BatchNorm statistics: ``"batch"`` (the current batch's, running statistics untouched),
        ``"running"`` or ``None`` (follow ``self.training``)."""
        if mode not in (None, "batch", "running"):
            raise ValueError(f"batch-norm statistics must be 'batch', 'running' or None, got {mode!r}")
        previous, self._bn_stats = self._bn_stats, mode
        try:
            yield self
        finally:
            self._bn_stats = previous

    def _norm(self, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        if self._bn_stats is None:
            return bn(x)
        if self._bn_stats == "batch":
            return F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    def forward(self, latents: torch.Tensor, return_dict: bool | None = None) -> GeneratorOutput | tuple:
        if latents.dim() == 4:
            latents = latents.flatten(1)
        if latents.dim() != 2 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"latents must have shape [batch, {self.config.latent_dim}] (or [batch, {self.config.latent_dim}, 1, 1]),"
                f" got {tuple(latents.shape)}"
            )
        h = self.input_proj(latents).view(latents.shape[0], -1, BOTTOM_RESOLUTION, BOTTOM_RESOLUTION)
        for block in self.blocks:
            h = block(h, self._norm)
        h = self.conv_out(F.relu(self._norm(self.norm_out, h)))
        sample = torch.tanh(h)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return GeneratorOutput(sample=sample) if return_dict else (sample,)

    def generate(self, latents: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` for ``latents`` (shortcut for ``self(z).sample``)."""
        return self.forward(latents, return_dict=False)[0]


class DualMCMCEncoderModel(_DualMCMCPreTrainedModel):
    r"""Inference model ``q(z|x)``: ``pixel_values`` in ``[-1, 1]`` -> ``mean``, ``logvar`` of shape ``[B, latent_dim]``."""

    config_class = DualMCMCEncoderConfig

    def __init__(self, config: DualMCMCEncoderConfig):
        super().__init__(config)
        ch = config.channels
        kernel, stride = (3, 1) if config.first_stride == 1 else (4, 2)
        stem = nn.Conv2d(config.num_channels, ch[0], kernel, stride, 1, bias=False)
        layers: list[nn.Module] = [stem, nn.LeakyReLU(config.negative_slope)]
        for i in range(len(ch) - 1):
            layers += [nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1, bias=False), nn.LeakyReLU(config.negative_slope)]
        self.features = nn.Sequential(*layers)
        k = config.final_resolution
        self.mean_head = nn.Conv2d(ch[-1], config.latent_dim, k, 1, 0)
        self.logvar_head = nn.Conv2d(ch[-1], config.latent_dim, k, 1, 0)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None) -> EncoderOutput | tuple:
        h = self.features(pixel_values)
        mean = self.mean_head(h).flatten(1)
        logvar = self.logvar_head(h).flatten(1)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return EncoderOutput(mean=mean, logvar=logvar) if return_dict else (mean, logvar)


__all__ = [
    "DualMCMCEncoderModel",
    "DualMCMCEnergyModel",
    "DualMCMCGeneratorModel",
    "EncoderOutput",
    "EnergyOutput",
    "GeneratorOutput",
    "refresh_spectral_norm",
]

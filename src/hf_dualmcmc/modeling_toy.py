"""MLP siblings of the three Dual-MCMC networks for low-dimensional (2-D toy) data.

They are :class:`transformers.PreTrainedModel` s with their own configs (registered with ``AutoConfig`` /
``AutoModel``) and offer exactly the interface the teaching step uses: the energy's ``.energy(x)`` and
``forward(x, return_dict)``, the generator's ``.generate(z)``, ``forward(z, return_dict)`` and
``config.latent_dim`` / ``config.observation_std`` / ``config.prior_std``, the encoder's ``forward(x, return_dict)``
returning ``(mean, logvar)``. So :func:`hf_dualmcmc.training.dual_mcmc_step` and the baselines of
:mod:`hf_dualmcmc.baselines` run on them unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN

from .modeling_dualmcmc import EncoderOutput, EnergyOutput, GeneratorOutput


def _check_mlp(what: str, data_dim: int, hidden_dim: int, num_layers: int, activation: str) -> None:
    for name, value in (("data_dim", data_dim), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what}: {name} must be an integer >= 1, got {value!r}")
    if activation not in ACT2FN:
        raise ValueError(
            f"{what}: activation must be a transformers ACT2FN name (e.g. 'silu', 'relu'), got {activation!r}"
        )


class DualMCMCToyEnergyConfig(PretrainedConfig):
    """MLP energy ``E(x)``: ``data_dim -> hidden_dim (x num_layers) -> 1``, activation after every hidden layer.

    Args:
        data_dim: dimension of ``x`` (2 for the toys).
        hidden_dim / num_layers: width and number of hidden layers.
        activation: a ``transformers.activations.ACT2FN`` name (``"silu"``: smooth, as EBMs on toys usually use).
        spectral_norm: wrap every linear layer with spectral normalisation (off by default for the toys).
    """

    model_type = "dualmcmc_toy_energy"

    def __init__(
        self,
        data_dim: int = 2,
        hidden_dim: int = 128,
        num_layers: int = 3,
        activation: str = "silu",
        spectral_norm: bool = False,
        **kwargs,
    ):
        _check_mlp("DualMCMCToyEnergyConfig", data_dim, hidden_dim, num_layers, activation)
        self.data_dim = data_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.activation = activation
        self.spectral_norm = spectral_norm
        super().__init__(**kwargs)


class DualMCMCToyGeneratorConfig(PretrainedConfig):
    """MLP generator ``G(z)``: ``latent_dim -> hidden_dim (x num_layers) -> data_dim`` (linear output, no tanh: toy
    data are not confined to ``[-1, 1]``), with ``p(x|z) = N(G(z), observation_std^2 I)`` and ``p(z) = N(0,
    prior_std^2 I)``."""

    model_type = "dualmcmc_toy_generator"

    def __init__(
        self,
        latent_dim: int = 8,
        data_dim: int = 2,
        hidden_dim: int = 128,
        num_layers: int = 3,
        activation: str = "leaky_relu",
        observation_std: float = 0.3,
        prior_std: float = 1.0,
        **kwargs,
    ):
        _check_mlp("DualMCMCToyGeneratorConfig", data_dim, hidden_dim, num_layers, activation)
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"DualMCMCToyGeneratorConfig: latent_dim must be an integer >= 1, got {latent_dim!r}")
        if observation_std <= 0 or prior_std <= 0:
            raise ValueError("DualMCMCToyGeneratorConfig: observation_std and prior_std must be > 0")
        self.latent_dim = latent_dim
        self.data_dim = data_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.activation = activation
        self.observation_std = observation_std
        self.prior_std = prior_std
        super().__init__(**kwargs)


class DualMCMCToyEncoderConfig(PretrainedConfig):
    """MLP inference model ``q(z|x) = N(mu(x), diag exp(logvar(x)))``: a shared trunk and two linear heads."""

    model_type = "dualmcmc_toy_encoder"

    def __init__(
        self,
        data_dim: int = 2,
        latent_dim: int = 8,
        hidden_dim: int = 128,
        num_layers: int = 3,
        activation: str = "leaky_relu",
        **kwargs,
    ):
        _check_mlp("DualMCMCToyEncoderConfig", data_dim, hidden_dim, num_layers, activation)
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"DualMCMCToyEncoderConfig: latent_dim must be an integer >= 1, got {latent_dim!r}")
        self.data_dim = data_dim
        self.latent_dim = latent_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.activation = activation
        super().__init__(**kwargs)


def _mlp(in_dim: int, hidden_dim: int, num_layers: int, activation: str, sn: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers):
        linear = nn.Linear(dim, hidden_dim)
        layers += [nn.utils.parametrizations.spectral_norm(linear) if sn else linear, ACT2FN[activation]]
        dim = hidden_dim
    return nn.Sequential(*layers)


class _ToyPreTrainedModel(PreTrainedModel):
    base_model_prefix = "model"
    supports_gradient_checkpointing = False
    _no_split_modules: list[str] = []

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's default Linear initialisation (kaiming-uniform weights, fan-in uniform biases)
        if isinstance(module, nn.Linear):
            weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
            if getattr(weight, "_is_hf_initialized", False):
                return
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(weight.shape[1])
                nn.init.uniform_(module.bias, -bound, bound)

    def _check_input(self, x: torch.Tensor, dim: int, name: str) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(f"{type(self).__name__}: {name} must have shape [batch, {dim}], got {tuple(x.shape)}")
        return x


class DualMCMCToyEnergyModel(_ToyPreTrainedModel):
    """Energy ``E(x)`` of ``[B, data_dim]`` points -> ``[B]`` energies (lower = more likely)."""

    config_class = DualMCMCToyEnergyConfig
    main_input_name = "inputs"

    def __init__(self, config: DualMCMCToyEnergyConfig):
        super().__init__(config)
        self.trunk = _mlp(
            config.data_dim, config.hidden_dim, config.num_layers, config.activation, config.spectral_norm
        )
        head = nn.Linear(config.hidden_dim, 1)
        self.head = nn.utils.parametrizations.spectral_norm(head) if config.spectral_norm else head
        self.post_init()

    def forward(self, inputs: torch.Tensor, return_dict: bool | None = None) -> EnergyOutput | tuple:
        energy = self.head(self.trunk(self._check_input(inputs, self.config.data_dim, "inputs"))).squeeze(-1)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return EnergyOutput(energy=energy) if return_dict else (energy,)

    def energy(self, inputs: torch.Tensor) -> torch.Tensor:
        """Per-sample energies ``[B]``."""
        return self.forward(inputs, return_dict=False)[0]


class DualMCMCToyGeneratorModel(_ToyPreTrainedModel):
    """Generator ``G(z)``: ``[B, latent_dim]`` -> ``[B, data_dim]``."""

    config_class = DualMCMCToyGeneratorConfig
    main_input_name = "latents"

    def __init__(self, config: DualMCMCToyGeneratorConfig):
        super().__init__(config)
        self.trunk = _mlp(config.latent_dim, config.hidden_dim, config.num_layers, config.activation)
        self.out = nn.Linear(config.hidden_dim, config.data_dim)
        self.post_init()

    def forward(self, latents: torch.Tensor, return_dict: bool | None = None) -> GeneratorOutput | tuple:
        sample = self.out(self.trunk(self._check_input(latents, self.config.latent_dim, "latents")))
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return GeneratorOutput(sample=sample) if return_dict else (sample,)

    def generate(self, latents: torch.Tensor) -> torch.Tensor:
        """Points ``[B, data_dim]`` for ``latents``."""
        return self.forward(latents, return_dict=False)[0]


class DualMCMCToyEncoderModel(_ToyPreTrainedModel):
    """Inference model: ``[B, data_dim]`` -> ``mean``, ``logvar`` of shape ``[B, latent_dim]``."""

    config_class = DualMCMCToyEncoderConfig
    main_input_name = "inputs"

    def __init__(self, config: DualMCMCToyEncoderConfig):
        super().__init__(config)
        self.trunk = _mlp(config.data_dim, config.hidden_dim, config.num_layers, config.activation)
        self.mean_head = nn.Linear(config.hidden_dim, config.latent_dim)
        self.logvar_head = nn.Linear(config.hidden_dim, config.latent_dim)
        self.post_init()

    def forward(self, inputs: torch.Tensor, return_dict: bool | None = None) -> EncoderOutput | tuple:
        h = self.trunk(self._check_input(inputs, self.config.data_dim, "inputs"))
        mean, logvar = self.mean_head(h), self.logvar_head(h)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return EncoderOutput(mean=mean, logvar=logvar) if return_dict else (mean, logvar)


def toy_models(
    data_dim: int = 2,
    latent_dim: int = 8,
    hidden_dim: int = 128,
    num_layers: int = 3,
    observation_std: float = 0.3,
    prior_std: float = 1.0,
) -> tuple[DualMCMCToyEnergyModel, DualMCMCToyGeneratorModel, DualMCMCToyEncoderModel]:
    """A fresh (energy, generator, encoder) trio of MLPs with consistent sizes."""
    energy = DualMCMCToyEnergyModel(
        DualMCMCToyEnergyConfig(data_dim=data_dim, hidden_dim=hidden_dim, num_layers=num_layers)
    )
    generator = DualMCMCToyGeneratorModel(
        DualMCMCToyGeneratorConfig(
            latent_dim=latent_dim,
            data_dim=data_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            observation_std=observation_std,
            prior_std=prior_std,
        )
    )
    encoder = DualMCMCToyEncoderModel(
        DualMCMCToyEncoderConfig(data_dim=data_dim, latent_dim=latent_dim, hidden_dim=hidden_dim, num_layers=num_layers)
    )
    return energy, generator, encoder


__all__ = [
    "DualMCMCToyEncoderConfig",
    "DualMCMCToyEncoderModel",
    "DualMCMCToyEnergyConfig",
    "DualMCMCToyEnergyModel",
    "DualMCMCToyGeneratorConfig",
    "DualMCMCToyGeneratorModel",
    "toy_models",
]

"""2-D toy suite of ``benchmarks/reproduce.py --suite toy``: MLP siblings of the three networks, pinned data sets,
exact (grid-normalised) evaluation of the EBM density, MMD, plots, and a small training loop around the same
per-iteration step as the trainer (:func:`hf_dualmcmc.training.teaching_step`).

The MLPs are :class:`transformers.PreTrainedModel` s with their own configs (not registered with ``AutoConfig`` /
``AutoModel``: load them with ``DualMCMCToyEnergyModel.from_pretrained``) and offer exactly the interface the
teaching step uses (``.energy(x)``, ``.generate(z)``, the encoder's ``(mean, logvar)``), so
:func:`hf_dualmcmc.training.dual_mcmc_step` and the baselines run on them unchanged.

Data sets (``TOY_DATASETS``; the definitions of the FFJORD toy generator, Grathwohl et al. 2019, which the
"Flow Contrastive Estimation" paper, Gao et al. 2020, also uses; ``25gaussians`` is the grid of Gulrajani et al.
2017). ``N(m, s)`` is a Gaussian with mean ``m`` and standard deviation ``s``:

* ``8gaussians``: centres ``4 * (cos k pi/4, sin k pi/4)``, ``k = 0..7``, chosen uniformly; ``x = (c + N(0, 0.5)) /
  1.414``. Modes at radius 2.83 with std 0.354.
* ``25gaussians``: centres ``(2i, 2j)``, ``i, j in {-2..2}``, chosen uniformly; ``x = (c + N(0, 0.05)) / 2.828``.
  Modes 1.414 apart with std 0.0177 (finer than the evaluation grid: see ``TOY_BOUNDS``).
* ``rings``: four concentric circles of radii ``3, 2.25, 1.5, 0.75`` (``3 * (1, 0.75, 0.5, 0.25)``), a quarter of
  the points each, equally spaced in angle, plus ``N(0, 0.08)`` noise; the evaluation draws the angle uniformly.
* ``checkerboard``: ``x1 ~ U[-2, 2)``, ``x2 = U[0, 1) - 2 * Bernoulli(0.5) + (floor(x1) mod 2)``, then ``2 * (x1,
  x2)``: uniform on 8 of the 16 2x2 squares of ``[-4, 4]^2``.
* ``pinwheel``: 5 arms, ``f = (N(1, 0.3), N(0, 0.1))``, rotated by ``2 pi k / 5 + 0.25 * exp(f_1)``, times 2.
* ``swissroll``: ``sklearn.datasets.make_swiss_roll(noise=1.0)``, coordinates ``(0, 2)``, divided by 5.

Exact evaluation. With ``use_temp`` the x-chain ``x <- x - delta^2/2 grad E + sigma_n N(0, I)`` is Langevin for
``exp(-E/T)``, ``T = (sigma_n / delta)^2``, and the energy loss ``(mean E(data) - mean E(samples)) / T`` is the
maximum-likelihood gradient of exactly that density. So the model density evaluated here is ``p(x) = exp(-E(x)/T) /
Z`` with ``T = TeachingConfig.temperature`` (``T = 1`` when ``use_temp`` is off: the loss is then the ML gradient of
``exp(-E)``). ``Z`` is the midpoint-rule integral over a ``resolution x resolution`` grid on ``[-b, b]^2`` (``log Z =
logsumexp(-E/T) + log(cell area)``; mass outside the box is ignored, the box covers the data). Reported:

* ``kl``: ``KL(data || model)`` between cell masses: data masses from a histogram of 10^6 fresh data points, model
  masses ``softmax(-E(centres)/T)`` (a discretised KL: a lower bound of the continuous one, equal for all methods);
* ``nll``: held-out ``-mean log p(x)`` in nats (continuous density, 5,000 fresh points);
* ``mmd``: unbiased ``MMD^2`` with an RBF kernel ``exp(-||a - b||^2 / (2 h^2))``, ``h`` = median pairwise distance
  of the pooled samples (median heuristic), between model samples and fresh data.
"""

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN

from hf_dualmcmc.atomic import atomic_write
from hf_dualmcmc.langevin import energy_langevin, posterior_langevin
from hf_dualmcmc.modeling_dualmcmc import EncoderOutput, EnergyOutput, GeneratorOutput
from hf_dualmcmc.training import METHODS, NETWORKS, make_optimizers, teaching_step
from hf_dualmcmc.training_config import TeachingConfig

# ----------------------------------------------------------------------------------------------------------------
# MLP networks
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Data sets
# ----------------------------------------------------------------------------------------------------------------


def _eight_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    s = 1.0 / math.sqrt(2)
    centres = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    x = rng.normal(size=(n, 2)) * 0.5 + centres[rng.integers(0, 8, n)]
    return x / 1.414


def _twentyfive_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    grid = np.array([(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)])
    x = rng.normal(size=(n, 2)) * 0.05 + grid[rng.integers(0, 25, n)]
    return x / 2.828


def _rings(rng: np.random.Generator, n: int) -> np.ndarray:
    radii = 3.0 * np.array([1.0, 0.75, 0.5, 0.25])
    which = rng.integers(0, 4, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    x = np.stack([np.cos(angle), np.sin(angle)], 1) * radii[which, None]
    return x + rng.normal(size=(n, 2)) * 0.08


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    x1 = rng.uniform(0, 1, n) * 4 - 2
    x2 = rng.uniform(0, 1, n) - rng.integers(0, 2, n) * 2
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], 1) * 2


def _pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
    num_classes, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = rng.normal(size=(n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = rng.integers(0, num_classes, n)
    angles = rads[labels] + rate * np.exp(features[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    rotations = np.stack([c, -s, s, c], 1).reshape(n, 2, 2)
    return 2 * np.einsum("ti,tij->tj", features, rotations)


def _swissroll(rng: np.random.Generator, n: int) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    x = make_swiss_roll(n_samples=n, noise=1.0, random_state=int(rng.integers(0, 2**31 - 1)))[0]
    return x[:, [0, 2]] / 5.0


TOY_DATASETS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "8gaussians": _eight_gaussians,
    "25gaussians": _twentyfive_gaussians,
    "rings": _rings,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "swissroll": _swissroll,
}
"""name -> ``sampler(rng, n) -> [n, 2]`` float64 array."""

TOY_BOUNDS: dict[str, float] = {
    "8gaussians": 4.5,
    "25gaussians": 2.0,
    "rings": 4.0,
    "checkerboard": 4.0,
    "pinwheel": 4.5,
    "swissroll": 4.0,
}
"""Half-width ``b`` of the evaluation box ``[-b, b]^2`` (covers > 99.9 % of each data set's mass)."""


def sample_toy(name: str, n: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``n`` points ``[n, 2]`` (float32) of toy ``name`` with a numpy RNG (a seed or a ``Generator``)."""
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy data set {name!r}; expected one of {sorted(TOY_DATASETS)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return TOY_DATASETS[name](rng, n).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Exact evaluation on a grid
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class GridDensity:
    """A density normalised on the cell centres of a ``resolution x resolution`` grid over ``[-bound, bound]^2``.

    Attributes:
        log_density: ``[resolution, resolution]`` log densities at the cell centres, indexed ``[i_x, i_y]``.
        log_z: ``log Z`` of ``exp(-E/T)`` (``logsumexp(-E/T) + log(cell area)``).
        centres: ``[resolution]`` coordinates of the cell centres (the same on both axes).
        cell_area: area of one cell.
        temperature: ``T``.
    """

    log_density: torch.Tensor
    log_z: float
    centres: torch.Tensor
    cell_area: float
    temperature: float
    bound: float

    @property
    def log_mass(self) -> torch.Tensor:
        """Log probability mass of every cell (``log_density + log(cell area)``; sums to one)."""
        return self.log_density + math.log(self.cell_area)

    def log_prob(self, energies: torch.Tensor) -> torch.Tensor:
        """Normalised log densities ``-E/T - log Z`` for energies ``E`` of arbitrary points."""
        return -energies.double() / self.temperature - self.log_z


def _energies(energy_fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, chunk: int = 16384):
    with torch.no_grad():
        return torch.cat([energy_fn(points[i : i + chunk]).double() for i in range(0, points.shape[0], chunk)])


def grid_density(
    energy_fn: Callable[[torch.Tensor], torch.Tensor], bound: float, resolution: int = 256, temperature: float = 1.0
) -> GridDensity:
    """Normalise ``exp(-E(x)/T)`` on a ``resolution^2`` grid over ``[-bound, bound]^2`` (midpoint rule).

    ``energy_fn`` maps ``[N, 2]`` float32 points to ``[N]`` energies (e.g. ``DualMCMCToyEnergyModel.energy``).
    """
    if not bound > 0 or not temperature > 0:
        raise ValueError(f"bound and temperature must be > 0, got {bound} and {temperature}")
    if not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    width = 2 * bound / resolution
    centres = torch.linspace(-bound + width / 2, bound - width / 2, resolution, dtype=torch.float64)
    gx, gy = torch.meshgrid(centres, centres, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).float()
    logits = -_energies(energy_fn, points) / temperature
    area = width * width
    log_z = (torch.logsumexp(logits, 0) + math.log(area)).item()
    log_density = (logits - log_z).reshape(resolution, resolution)
    return GridDensity(log_density, log_z, centres, area, temperature, bound)


def histogram_mass(points: np.ndarray, bound: float, resolution: int) -> np.ndarray:
    """Cell masses ``[resolution, resolution]`` (indexed ``[i_x, i_y]``) of the points inside the box, summing to 1."""
    edges = np.linspace(-bound, bound, resolution + 1)
    hist, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=[edges, edges])
    total = hist.sum()
    if total == 0:
        raise ValueError(f"no point falls inside [-{bound}, {bound}]^2")
    return hist / total


@lru_cache(maxsize=16)
def _data_mass(name: str, bound: float, resolution: int, n: int, seed: int) -> np.ndarray:
    return histogram_mass(sample_toy(name, n, seed), bound, resolution)


def kl_from_mass(data_mass: np.ndarray, model_log_mass: torch.Tensor | np.ndarray) -> float:
    """``sum_c p_c (log p_c - log q_c)`` over the cells with ``p_c > 0`` (``q`` given as log masses)."""
    log_q = np.asarray(model_log_mass, dtype=np.float64)
    p = np.asarray(data_mass, dtype=np.float64)
    if p.shape != log_q.shape:
        raise ValueError(f"data and model masses must have the same grid shape, got {p.shape} and {log_q.shape}")
    nz = p > 0
    return float(np.sum(p[nz] * (np.log(p[nz]) - log_q[nz])))


def mmd_rbf(
    x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, bandwidth: float | None = None
) -> tuple[float, float]:
    """Unbiased ``MMD^2`` between samples ``x [n, d]`` and ``y [m, d]`` with ``k(a, b) = exp(-|a-b|^2 / (2 h^2))``.

    ``h`` defaults to the median pairwise distance of the pooled samples (median heuristic). Returns ``(mmd2, h)``.
    """
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64).flatten(1)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float64).flatten(1)
    if x.shape[0] < 2 or y.shape[0] < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"need >= 2 samples of equal dimension on each side, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    pooled = torch.cat([x, y])
    d2 = torch.cdist(pooled, pooled).pow(2)
    if bandwidth is None:
        off = d2[~torch.eye(d2.shape[0], dtype=torch.bool)]
        bandwidth = float(off.sqrt().median())
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    k = torch.exp(-d2 / (2 * bandwidth**2))
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    mmd2 = (
        (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        - 2 * kxy.mean()
    )
    return float(mmd2), bandwidth


# ----------------------------------------------------------------------------------------------------------------
# Training and evaluation of one run
# ----------------------------------------------------------------------------------------------------------------


def toy_teaching_config(**overrides) -> TeachingConfig:
    """The teaching constants of the toy suite (the same for every method; see ``docs/RESULTS.md``).

    The authors' iteration and loss weights (``data_weight`` / ``generator_teaching_weight`` /
    ``encoder_teaching_weight`` 1 / 50 / 0.1, Adam betas (0, 0.9), weight decay 5e-4 on G and I), with a z-chain of 10 steps of 0.05 / noise 0.05 (the authors' 0.1 diverged on the toys), a warm x-chain,
    ``step_size = noise_scale = 0.2`` (``T = 1``: the chain is exact Langevin with step ``0.5 * 0.2^2 = 0.02`` on ``E``,
    so the learned ``E`` is a usable density model), 30 x-steps, learning rates 1e-3 and no learning-rate decay.
    """
    base = dict(
        num_steps=30,
        step_size=0.2,
        noise_scale=0.2,
        latent_step_size=0.05,
        latent_noise_scale=0.05,
        lr_energy=1e-3,
        lr_generator=1e-3,
        lr_encoder=1e-3,
        lr_decay=1.0,
    )
    base.update(overrides)
    return TeachingConfig(**base)


@dataclass
class ToyRun:
    """A trained toy run: the networks of its method (others ``None``), its settings and its cost."""

    toy: str
    method: str
    seed: int
    teaching: TeachingConfig
    energy: torch.nn.Module | None
    generator: torch.nn.Module | None
    encoder: torch.nn.Module | None
    iterations: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def train_toy(
    toy: str,
    method: str,
    seed: int = 0,
    *,
    iterations: int = 1000,
    batch_size: int = 200,
    teaching: TeachingConfig | None = None,
    max_seconds: float | None = None,
    latent_dim: int = 8,
    hidden_dim: int = 128,
    num_layers: int = 3,
    observation_std: float = 0.5,
    log_every: int = 0,
) -> ToyRun:
    """Train ``method`` on toy ``toy``: fresh data every iteration, :func:`~hf_dualmcmc.training.teaching_step`.

    Stops after ``iterations`` steps or ``max_seconds`` of wall clock, whichever comes first (both are reported).
    For ``short_run`` the x-chain starts from ``Uniform[-b, b]^2`` with ``b = TOY_BOUNDS[toy]`` unless
    ``teaching.noise_init_range`` was set to something else than 1.
    """
    if toy not in TOY_DATASETS:
        raise ValueError(f"unknown toy data set {toy!r}; expected one of {sorted(TOY_DATASETS)}")
    teaching = TeachingConfig(**{**(teaching or toy_teaching_config()).to_dict(), "method": method})  # a copy
    if teaching.noise_init_range == 1.0:
        teaching.noise_init_range = TOY_BOUNDS[toy]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    nets = toy_models(2, latent_dim, hidden_dim, num_layers, observation_std)
    keep = METHODS[method].networks
    energy, generator, encoder = (m if n in keep else None for n, m in zip(NETWORKS, nets))
    optimizers = make_optimizers(energy, generator, encoder, teaching)
    history = []
    started = time.perf_counter()
    it = 0
    while it < iterations and (max_seconds is None or time.perf_counter() - started < max_seconds):
        data = torch.from_numpy(sample_toy(toy, batch_size, rng))
        out = teaching_step(data, energy, generator, encoder, optimizers, teaching)
        it += 1
        if not out.is_finite():
            raise FloatingPointError(f"{method} on {toy} (seed {seed}) diverged at iteration {it}: {out.as_dict()}")
        if log_every and it % log_every == 0:
            history.append({"iteration": it, **out.as_dict()})
    seconds = time.perf_counter() - started
    return ToyRun(toy, method, seed, teaching, energy, generator, encoder, it, seconds, history)


def evaluate_toy(
    run: ToyRun,
    *,
    num_samples: int = 2000,
    resolution: int = 256,
    num_data_hist: int = 1_000_000,
    num_test: int = 5000,
    eval_seed: int = 10_000,
) -> tuple[dict, dict]:
    """Metrics of a trained run, and the arrays for plots.

    Metrics: ``kl`` / ``nll`` of the energy (methods with an EBM), ``mmd_revised`` (x-chain samples: from generator
    proposals, or from uniform noise for ``short_run``, with the training chain settings), ``mmd_proposals``
    (generator samples), ``recon_mse_inf`` / ``recon_mse_inf_l`` (held-out per-coordinate squared error of
    ``G(mu(x))`` and of ``G(z~)`` after the training z-chain from ``mu(x)``; methods with an encoder), and the
    reference ``mmd_data`` (two independent data samples of the same size: the floor of the estimator).
    The evaluation data and chain noise come from ``eval_seed`` (the same for every method and run).
    """
    cfg, toy, bound = run.teaching, run.toy, TOY_BOUNDS[run.toy]
    test = torch.from_numpy(sample_toy(toy, num_test, eval_seed + 1))
    ref = sample_toy(toy, num_samples, eval_seed + 2)
    metrics: dict = {"temperature": cfg.temperature}
    arrays: dict = {"data": ref}
    gen = torch.Generator().manual_seed(eval_seed + 3)
    if run.energy is not None:
        e = run.energy.eval()
        density = grid_density(e.energy, bound, resolution, cfg.temperature)
        mass = _data_mass(toy, bound, resolution, num_data_hist, eval_seed)
        metrics["kl"] = kl_from_mass(mass, density.log_mass)
        with torch.no_grad():
            metrics["nll"] = float(-density.log_prob(e.energy(test)).mean())
        arrays["log_density"] = density.log_density.float().numpy()
        if run.generator is not None:
            x0 = _generate(run.generator, num_samples, gen)
        else:
            x0 = (torch.rand(num_samples, 2, generator=gen) * 2 - 1) * cfg.noise_init_range
        revised = energy_langevin(e, x0, cfg.num_steps, cfg.step_size, cfg.chain_noise, generator=gen).sample
        metrics["mmd_revised"], metrics["mmd_fine_revised"] = _mmds(revised, ref)
        arrays["revised"] = revised.numpy()
    if run.generator is not None:
        proposals = _generate(run.generator, num_samples, gen)
        metrics["mmd_proposals"], metrics["mmd_fine_proposals"] = _mmds(proposals, ref)
        arrays["proposals"] = proposals.numpy()
    if run.encoder is not None:
        g = run.generator.eval()
        x = test[:num_samples]
        with torch.no_grad():
            mean, _ = run.encoder.eval()(x, return_dict=False)
            inf = g.generate(mean)
        z = posterior_langevin(
            g,
            mean,
            x,
            cfg.num_latent_steps,
            cfg.latent_step_size,
            cfg.latent_noise_scale,
            g.config.observation_std,
            g.config.prior_std,
            generator=gen,
        ).sample
        with torch.no_grad():
            inf_l = g.generate(z)
        metrics["recon_mse_inf"] = float((inf - x).pow(2).mean())
        metrics["recon_mse_inf_l"] = float((inf_l - x).pow(2).mean())
    metrics["mmd_data"], metrics["mmd_fine_data"] = _mmds(sample_toy(toy, num_samples, eval_seed + 4), ref)
    return metrics, arrays


FINE_BANDWIDTH_FRACTION = 0.125


def _mmds(x, y) -> tuple[float, float]:
    """``MMD^2`` at the median-heuristic bandwidth ``h`` and at ``h / 8`` (mode-scale structure)."""
    mmd, h = mmd_rbf(x, y)
    return mmd, mmd_rbf(x, y, bandwidth=h * FINE_BANDWIDTH_FRACTION)[0]


def _generate(generator: torch.nn.Module, n: int, rng: torch.Generator) -> torch.Tensor:
    z = torch.randn(n, generator.config.latent_dim, generator=rng) * generator.config.prior_std
    with torch.no_grad():
        return generator.eval().generate(z).float()


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------


def plot_toy(toy: str, panels: dict[str, dict], path, bound: float | None = None) -> None:
    """One figure per toy: the data, then per method its density (``log_density``) and samples.

    ``panels`` maps a method name to the ``arrays`` of :func:`evaluate_toy` (``data`` taken from the first one).
    Written with matplotlib's Agg backend, atomically (:func:`hf_dualmcmc.atomic.atomic_write`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bound = bound or TOY_BOUNDS[toy]
    methods = list(panels)
    fig, axes = plt.subplots(2, len(methods) + 1, figsize=(2.2 * (len(methods) + 1), 4.4), squeeze=False)
    data = next(iter(panels.values()))["data"]
    kw = dict(s=1, alpha=0.4, rasterized=True)
    axes[0, 0].scatter(data[:, 0], data[:, 1], c="k", **kw)
    axes[0, 0].set_title("data", fontsize=8)
    axes[1, 0].axis("off")
    for j, m in enumerate(methods, start=1):
        arr = panels[m]
        top, bottom = axes[0, j], axes[1, j]
        if "log_density" in arr:
            top.imshow(
                np.exp(arr["log_density"]).T, origin="lower", extent=(-bound, bound, -bound, bound), cmap="viridis"
            )
            top.set_title(f"{m}: density", fontsize=8)
        else:
            top.axis("off")
            top.set_title(f"{m}: no EBM", fontsize=8)
        if "revised" in arr:
            if "proposals" in arr:
                bottom.scatter(arr["proposals"][:, 0], arr["proposals"][:, 1], c="tab:orange", **kw)
            bottom.scatter(arr["revised"][:, 0], arr["revised"][:, 1], c="tab:blue", **kw)
            bottom.set_title(f"{m}: revised" + (" (orange: G)" if "proposals" in arr else ""), fontsize=8)
        elif "proposals" in arr:
            bottom.scatter(arr["proposals"][:, 0], arr["proposals"][:, 1], c="tab:orange", **kw)
            bottom.set_title(f"{m}: G(z)", fontsize=8)
    for ax in axes.flat:
        ax.set_xlim(-bound, bound)
        ax.set_ylim(-bound, bound)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, png.getvalue())


__all__ = [
    "DualMCMCToyEncoderConfig",
    "DualMCMCToyEncoderModel",
    "DualMCMCToyEnergyConfig",
    "DualMCMCToyEnergyModel",
    "DualMCMCToyGeneratorConfig",
    "DualMCMCToyGeneratorModel",
    "toy_models",
    "GridDensity",
    "TOY_BOUNDS",
    "TOY_DATASETS",
    "ToyRun",
    "evaluate_toy",
    "grid_density",
    "histogram_mass",
    "kl_from_mass",
    "mmd_rbf",
    "plot_toy",
    "sample_toy",
    "toy_teaching_config",
    "train_toy",
]

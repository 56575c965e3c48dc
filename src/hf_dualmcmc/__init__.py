"""hf-dualmcmc: energy-based models learned via Dual-MCMC teaching (Cui & Han, NeurIPS 2023), Hugging Face-native.

Importing the package registers the models with ``transformers.AutoConfig`` / ``AutoModel`` and the pipeline with
``diffusers``, so ``DiffusionPipeline.from_pretrained(saved_dir)`` finds ``DualMCMCPipeline``.
"""

import diffusers
from transformers import AutoConfig, AutoModel

from .baselines import METHOD_NETWORKS, method_networks, teaching_step
from .configuration_dualmcmc import (
    DualMCMCEncoderConfig,
    DualMCMCEnergyConfig,
    DualMCMCGeneratorConfig,
    configs_for_image_size,
    official_configs,
)
from .langevin import (
    LangevinOutput,
    chain_mode,
    energy_langevin,
    mcmc_temperature,
    posterior_langevin,
    posterior_potential,
)
from .modeling_dualmcmc import (
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    EncoderOutput,
    EnergyOutput,
    GeneratorOutput,
    refresh_spectral_norm,
)
from .modeling_toy import (
    DualMCMCToyEncoderConfig,
    DualMCMCToyEncoderModel,
    DualMCMCToyEnergyConfig,
    DualMCMCToyEnergyModel,
    DualMCMCToyGeneratorConfig,
    DualMCMCToyGeneratorModel,
)
from .pipeline_dualmcmc import DualMCMCPipeline, DualMCMCPipelineOutput

__version__ = "0.1.0"

for _config, _model in (
    (DualMCMCEnergyConfig, DualMCMCEnergyModel),
    (DualMCMCGeneratorConfig, DualMCMCGeneratorModel),
    (DualMCMCEncoderConfig, DualMCMCEncoderModel),
    (DualMCMCToyEnergyConfig, DualMCMCToyEnergyModel),
    (DualMCMCToyGeneratorConfig, DualMCMCToyGeneratorModel),
    (DualMCMCToyEncoderConfig, DualMCMCToyEncoderModel),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
# DiffusionPipeline.from_pretrained looks model_index.json's "_class_name" up as an attribute of the diffusers module
diffusers.DualMCMCPipeline = DualMCMCPipeline

__all__ = [
    "METHOD_NETWORKS",
    "DualMCMCToyEncoderConfig",
    "DualMCMCToyEncoderModel",
    "DualMCMCToyEnergyConfig",
    "DualMCMCToyEnergyModel",
    "DualMCMCToyGeneratorConfig",
    "DualMCMCToyGeneratorModel",
    "method_networks",
    "teaching_step",
    "DualMCMCPipeline",
    "DualMCMCPipelineOutput",
    "LangevinOutput",
    "chain_mode",
    "energy_langevin",
    "mcmc_temperature",
    "posterior_langevin",
    "posterior_potential",
    "DualMCMCEncoderConfig",
    "DualMCMCEncoderModel",
    "DualMCMCEnergyConfig",
    "DualMCMCEnergyModel",
    "DualMCMCGeneratorConfig",
    "DualMCMCGeneratorModel",
    "EncoderOutput",
    "EnergyOutput",
    "GeneratorOutput",
    "configs_for_image_size",
    "official_configs",
    "refresh_spectral_norm",
]

"""hf-dualmcmc: energy-based models learned via Dual-MCMC teaching (Cui & Han, NeurIPS 2023), Hugging Face-native.

Importing the package registers the models with ``transformers.AutoConfig`` / ``AutoModel`` and the pipeline with
``diffusers``, so ``DiffusionPipeline.from_pretrained(saved_dir)`` finds ``DualMCMCPipeline``."""

import diffusers
from transformers import AutoConfig, AutoModel

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
from .pipeline_dualmcmc import DualMCMCPipeline, DualMCMCPipelineOutput
from .training import METHODS, teaching_step

__version__ = "0.1.0"

for _model in (DualMCMCEnergyModel, DualMCMCGeneratorModel, DualMCMCEncoderModel):
    AutoConfig.register(_model.config_class.model_type, _model.config_class, exist_ok=True)
    AutoModel.register(_model.config_class, _model, exist_ok=True)
# DiffusionPipeline.from_pretrained looks model_index.json's "_class_name" up as an attribute of the diffusers module
diffusers.DualMCMCPipeline = DualMCMCPipeline

__all__ = [
    "METHODS",
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

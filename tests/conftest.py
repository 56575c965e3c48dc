import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_DUALMCMC_SHARED", REPO_ROOT.parent / "shared"))
MNIST = SHARED / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"


def load_module(relative_path: str, name: str):
    """A script of the repository (``benchmarks/reproduce.py``, ...) imported as module ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_untrained_pipeline(path, image_size: int, latent_dim: int = 4) -> Path:
    """A randomly initialised 1-channel pipeline (ngf = ndf = 8, nif = 4, torch seed 0) saved at ``path``."""
    from hf_dualmcmc import (
        DualMCMCEncoderModel,
        DualMCMCEnergyModel,
        DualMCMCGeneratorModel,
        DualMCMCPipeline,
        configs_for_image_size,
    )

    torch.manual_seed(0)
    e, g, i = configs_for_image_size(image_size, 1, latent_dim=latent_dim, ngf=8, ndf=8, nif=4)
    DualMCMCPipeline(DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i)).save_pretrained(path)
    return Path(path)


@pytest.fixture
def tiny_configs():
    from hf_dualmcmc import configs_for_image_size

    return configs_for_image_size(16, 3, latent_dim=8, ngf=16, ndf=16, nif=8)


@pytest.fixture
def tiny_pipeline(tiny_configs):
    from hf_dualmcmc import (
        DualMCMCEncoderModel,
        DualMCMCEnergyModel,
        DualMCMCGeneratorModel,
        DualMCMCPipeline,
    )

    torch.manual_seed(0)
    e, g, i = tiny_configs
    pipe = DualMCMCPipeline(
        DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i), num_inference_steps=4
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent (looked for {SHARED}); set HF_DUALMCMC_SHARED to run this test")
    return SHARED

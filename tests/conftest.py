import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
if (_MNIST_DIR := Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist").is_dir():  # development data
    os.environ.setdefault("HF_DUALMCMC_MNIST_DIR", str(_MNIST_DIR))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _no_tqdm_monitor() -> None:
    """tqdm's monitor thread takes tqdm's write lock every few seconds; a process forked while it holds it (the kill
    tests fork training runs) would wait for that lock forever. Tests need no monitor."""
    import tqdm

    tqdm.tqdm.monitor_interval = 0


_no_tqdm_monitor()


def after_fork() -> None:
    """First thing in a forked child: a lock that another thread of the parent held at the fork stays held in the
    child forever; give tqdm (whose bars the trainer and the data loader open) fresh locks."""
    import threading

    from tqdm import tqdm
    from tqdm.std import TqdmDefaultWriteLock

    TqdmDefaultWriteLock.th_lock = threading.RLock()
    tqdm.set_lock(TqdmDefaultWriteLock())


REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_DUALMCMC_SHARED", REPO_ROOT.parent / "shared"))
MNIST = Path(os.environ.get("HF_DUALMCMC_MNIST_DIR") or "/nonexistent") / "t10k-images-idx3-ubyte.gz"


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
    from hf_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel, DualMCMCPipeline

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
        pytest.skip(
            f"the shared reference folder is absent (looked for {SHARED}); set HF_DUALMCMC_SHARED to run this test"
        )
    return SHARED


# ----------------------------------------------------------------------------------------------------------------
# A local Hub (tests/hub_server.py) that huggingface_hub's real client talks to over HTTP
# ----------------------------------------------------------------------------------------------------------------

# Modules that copy a huggingface_hub setting into a global of their own at import (found by grepping the installed
# diffusers / transformers / huggingface_hub for "from huggingface_hub.constants import" and for HF_ENDPOINT /
# HF_MODULES_CACHE read from os.environ): ``online_hub`` imports them first, so that it patches (and monkeypatch
# later restores) their copies instead of letting a lazy import during the test freeze the patched values.
HUB_SETTING_COPIES = (
    "huggingface_hub.utils._cache_manager",  # HF_HUB_CACHE (scan_cache_dir's default)
    "diffusers.utils.constants",  # HUGGINGFACE_CO_RESOLVE_ENDPOINT (error messages), HF_MODULES_CACHE
    "diffusers.utils",
    "diffusers.utils.dynamic_modules_utils",  # HF_MODULES_CACHE (custom pipeline code)
    "diffusers.utils.hub_utils",  # HF_HUB_OFFLINE, HF_HUB_DISABLE_TELEMETRY (user agent)
    "diffusers.configuration_utils",
    "diffusers.loaders.lora_base",  # HF_HUB_OFFLINE (LoRA loading)
    "diffusers.models.attention_dispatch",  # HF_HUB_OFFLINE (kernels)
    "transformers.utils.hub",  # HF_MODULES_CACHE
    "transformers.dynamic_module_utils",  # HF_MODULES_CACHE (trust_remote_code)
)


@pytest.fixture
def local_hub():
    """A started :class:`hub_server.LocalHub` (in-memory, on 127.0.0.1), stopped after the test. Nothing points
    at it: use ``online_hub`` in-process, or ``hub_server.hub_subprocess_env(hub, tmp_path)`` for a child."""
    from hub_server import LocalHub

    with LocalHub() as hub:
        yield hub


@pytest.fixture
def online_hub(local_hub, tmp_path, monkeypatch):
    """``local_hub``, with this process's already imported huggingface_hub (and diffusers / transformers) online and
    pointed at it, for the duration of the test (monkeypatch restores everything after). It sets:

    * ``huggingface_hub.constants``: ``ENDPOINT`` = ``local_hub.endpoint``; ``HUGGINGFACE_CO_URL_TEMPLATE`` =
      ``ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}"`` (``hf_hub_url``); ``HF_HUB_OFFLINE`` = False (read by
      ``is_offline_mode()`` on every request); ``HF_HOME`` = ``tmp_path/hf_home`` and under it ``HF_HUB_CACHE`` /
      ``HUGGINGFACE_HUB_CACHE`` (``hub``), ``HF_ASSETS_CACHE``, ``HF_XET_CACHE``, ``HF_TOKEN_PATH``,
      ``HF_STORED_TOKENS_PATH``; ``HF_HUB_DISABLE_TELEMETRY`` = True (no telemetry requests); ``HF_HUB_DISABLE_XET`` =
      True (``upload_folder`` takes its single ``create_commit`` path, not the Xet pipeline).
    * ``huggingface_hub.hf_api.api.endpoint``: the ``HfApi()`` instance that module-level functions such as
      ``huggingface_hub.model_info`` / ``create_repo`` / ``upload_folder`` are bound to read ``ENDPOINT`` when
      huggingface_hub was imported (an attribute of an object, no function is replaced).
    * the copies of those settings in the modules of ``HUB_SETTING_COPIES``: ``HF_HUB_OFFLINE``,
      ``HF_HUB_DISABLE_TELEMETRY``, ``HF_HUB_CACHE``, ``HUGGINGFACE_CO_RESOLVE_ENDPOINT`` (= ``ENDPOINT``),
      ``HF_MODULES_CACHE`` (= ``tmp_path/hf_home/modules``), wherever such a module-global exists.
    * ``os.environ``: ``hub_server.hub_env`` (``HF_ENDPOINT``, ``HF_HUB_OFFLINE=0``, ``HF_TOKEN=hf_fake``, caches,
      ``NO_PROXY``, ...) so that code reading the environment at call time and child processes agree; the token
      is read from ``HF_TOKEN`` by ``huggingface_hub.get_token()`` on every call.
    * ``huggingface_hub.utils.close_session()`` before and after, so the shared HTTP client is recreated with
      that environment (proxies) and no connection to this hub outlives it.

    Limits: values copied at import by modules not listed above are not patched; ``sys.path`` keeps the temporary
    ``HF_MODULES_CACHE`` that remote-code loading appends. Code that loads remote code, or that needs the Hub
    settings read at import, is better tested in a child process with ``hub_server.hub_subprocess_env``.
    """
    import importlib

    from hub_server import hub_env
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import close_session

    for key, value in hub_env(local_hub, tmp_path).items():
        monkeypatch.delenv(key, raising=False) if value is None else monkeypatch.setenv(key, value)
    home = tmp_path / "hf_home"
    endpoint = local_hub.endpoint
    settings = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_XET": True,
        "HUGGINGFACE_CO_RESOLVE_ENDPOINT": endpoint,
        "HF_MODULES_CACHE": str(home / "modules"),
    }
    modules = [constants]
    for name in HUB_SETTING_COPIES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass
    for module in modules:
        for name, value in settings.items():
            if name in vars(module):
                monkeypatch.setattr(module, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    close_session()
    yield local_hub
    close_session()


# ---- shared builders (import them: `from conftest import tiny_config`) ----


def tiny_config(output_dir, **run):
    """A training config that runs in a second: 48 digits at 8x8, widths 4-8, 2-step chains."""
    from hf_dualmcmc.training_config import TrainConfig

    raw = {
        "data": {"source": "sklearn:digits", "image_size": 8, "num_channels": 1, "max_images": 48},
        "model": {"latent_dim": 4, "ngf": 8, "ndf": 8, "nif": 4},
        "teaching": {"num_steps": 2, "num_latent_steps": 2},
        "sampler": {"num_inference_steps": 2, "num_latent_steps": 1},
        "run": {
            "output_dir": str(output_dir),
            "batch_size": 8,
            "epochs": 1,
            "log_every": 1,
            "sample_every": 0,
            "checkpoint_every": 3,
            "checkpoints_total_limit": 2,
            "report_to": "none",
            "num_sample_images": 4,
            "mixed_precision": "no",  # float32 on every CPU (run.mixed_precision "auto" picks bf16 on some)
            **run,
        },
    }
    return TrainConfig.from_dict(raw)


def state_of(pipeline_dir):
    """Every weight of a saved pipeline, keyed ``component.parameter``."""
    from hf_dualmcmc import DualMCMCPipeline

    pipe = DualMCMCPipeline.from_pretrained(pipeline_dir)
    return {
        f"{n}.{k}": v
        for n in ("energy_model", "generator_model", "encoder")
        for k, v in getattr(pipe, n).state_dict().items()
    }


def tree(folder):
    """Every file under ``folder`` with its bytes (hidden entries included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


class MarkerPayload:
    """Unpickling this calls ``open(marker, "w")``: the marker file exists if and only if the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class SystemPayload:
    """Unpickling this calls ``os.system("touch <marker>")``: the command only creates the marker file."""

    def __init__(self, marker: Path):
        self.command = f"touch '{marker}'"

    def __reduce__(self):
        return (os.system, (self.command,))

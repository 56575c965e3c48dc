"""Model cards, remote-code export (loaded where hf_dualmcmc is not importable) and the Hub upload path."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from huggingface_hub import ModelCard  # noqa: E402
from huggingface_hub.errors import OfflineModeIsEnabled  # noqa: E402

import hf_dualmcmc.hub as hub  # noqa: E402
from hf_dualmcmc import (  # noqa: E402
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    configs_for_image_size,
)
from hf_dualmcmc.hub import (  # noqa: E402
    available_templates,
    export_for_hub,
    generate_remote_code,
    push_pipeline_to_hub,
    write_model_card,
)

REPO = Path(__file__).resolve().parents[1]


def tiny_pipeline(encoder: bool = True) -> DualMCMCPipeline:
    torch.manual_seed(0)
    e, g, i = configs_for_image_size(8, 3, latent_dim=8, ngf=8, ndf=8, nif=8)
    return DualMCMCPipeline(
        DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i) if encoder else None,
        num_inference_steps=3, step_size=0.3,
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[DualMCMCPipeline, Path]:
    pipe = tiny_pipeline()
    path = tmp_path_factory.mktemp("hub") / "saved"
    pipe.save_pretrained(path)
    return pipe, path


# ----------------------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------------------


def test_templates_ship_in_the_package_and_top_level_dir_is_the_same():
    assert set(available_templates()) == {"run", "cifar10", "celeba64", "celebahq256", "church64"}
    top = REPO / "model_cards"
    assert top.resolve() == hub.TEMPLATES_DIR.resolve(), "model_cards/ must be the package template directory"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"model_cards/*.md"' in pyproject


def test_run_card_metadata_and_content(saved):
    pipe, path = saved
    from PIL import Image

    Image.new("RGB", (16, 16)).save(path / "samples.png")
    readme = write_model_card(
        path, dataset="mnist", training_config={"lr_energy": 1e-4, "epochs": 3, "out": path},
        metrics={"FID": 123.456, "IS": 2.5}, sample_grid="samples.png", hub_model_id="someone/dualmcmc-mnist",
        extra_tags=["my-run"],
    )
    assert readme == path / "README.md"
    card = ModelCard.load(readme)
    data = card.data.to_dict()
    assert data["library_name"] == "diffusers"
    assert data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "unconditional-image-generation"
    for tag in ("energy-based-model", "unconditional-image-generation", "dual-mcmc", "mnist", "my-run"):
        assert tag in data["tags"]
    assert data["datasets"] == ["ylecun/mnist"]
    results = card.data.eval_results
    assert {(r.metric_type, r.metric_value) for r in results} == {("fid", 123.456), ("is", 2.5)}
    assert all(r.task_type == "unconditional-image-generation" and r.dataset_type == "ylecun/mnist" for r in results)
    assert card.data.model_name == "someone/dualmcmc-mnist"
    text = card.text
    assert "![Samples](samples.png)" in text
    assert 'DualMCMCPipeline.from_pretrained("someone/dualmcmc-mnist")' in text
    assert "| x-chain Langevin steps (`num_inference_steps`) | 3 |" in text
    assert "| x-chain step size delta (`step_size`) | 0.3 |" in text
    assert f"| {pipe.energy_model.num_parameters_total:,} |" in text
    assert f"| {pipe.generator_model.num_parameters_total:,} |" in text
    assert "lr_energy: 0.0001" in text and "epochs: 3" in text
    assert "| FID | 123.456 |" in text
    assert "arXiv" in text and "2312.02469" in text and "Cui, Jiali and Han, Tian" in text
    assert "user training run" in text
    assert not list(path.glob(".README.md.*")), "atomic write left a temporary file"


@pytest.mark.parametrize(
    "template, fid, hub_id", [("cifar10", "9.26", "uoft-cs/cifar10"), ("celeba64", "5.15", None),
                              ("celebahq256", "15.89", None), ("church64", "4.56", None)]
)
def test_paper_dataset_templates_render(saved, template, fid, hub_id):
    _, path = saved
    card = ModelCard.load(write_model_card(path, template=template))
    assert template in card.data.tags
    assert card.data.datasets == ([hub_id] if hub_id else None)
    assert card.data.eval_results is None  # nothing measured: no model-index
    assert f"FID {fid}" in card.text and "not re-measured here" in card.text
    assert "No metrics were measured" in card.text


def test_card_errors(saved, tmp_path):
    _, path = saved
    with pytest.raises(ValueError, match="unknown model card template 'svhn'"):
        write_model_card(path, template="svhn")
    with pytest.raises(ValueError, match="template 'cifar10' describes the cifar10 data set"):
        write_model_card(path, template="cifar10", dataset="mnist")
    with pytest.raises(ValueError, match="sample_grid 'nope.png' does not exist"):
        write_model_card(path, sample_grid="nope.png")
    with pytest.raises(ValueError, match="relative to output_dir"):
        write_model_card(path, sample_grid="../x.png")
    with pytest.raises(ValueError, match="metric 'fid': expected a finite number"):
        write_model_card(path, metrics={"fid": float("nan")})
    with pytest.raises(ValueError, match="metric 'fid': expected a number or a string"):
        write_model_card(path, metrics={"fid": [1.0]})
    with pytest.raises(ValueError, match="model_index.json"):
        write_model_card(tmp_path)


def test_card_without_encoder(tmp_path):
    tiny_pipeline(encoder=False).save_pretrained(tmp_path)
    text = ModelCard.load(write_model_card(tmp_path)).text
    assert "pipe.reconstruct" not in text
    assert "`encoder`" not in text


# ----------------------------------------------------------------------------------------------------------------
# Remote code
# ----------------------------------------------------------------------------------------------------------------


def test_generated_code_is_self_contained():
    for module in ("pipeline_dualmcmc", "modeling_dualmcmc"):
        code = generate_remote_code(module)
        compile(code, module, "exec")
        for line in code.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert "hf_dualmcmc" not in stripped and not stripped.startswith("from ."), line
    modeling = generate_remote_code("modeling_dualmcmc")
    assert "class DualMCMCEnergyConfig" in modeling and "class DualMCMCEnergyModel" in modeling
    pipeline = generate_remote_code("pipeline_dualmcmc")
    assert "class DualMCMCPipeline" in pipeline and "def energy_langevin" in pipeline


LOADER = r"""
import json, sys
sys.path[:0] = json.loads(sys.argv[3])
try:
    import hf_dualmcmc
except ImportError:
    pass
else:
    sys.exit("hf_dualmcmc is importable in the isolated interpreter: " + hf_dualmcmc.__file__)
import numpy as np, torch
from diffusers import DiffusionPipeline
from transformers import AutoModel

pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
assert type(pipe).__name__ == "DualMCMCPipeline" and not type(pipe).__module__.startswith("hf_dualmcmc")
images = pipe(batch_size=4, generator=torch.Generator().manual_seed(7), output_type="np").images
recon = pipe.reconstruct(pixel_values=torch.zeros(2, 3, 8, 8), generator=3, output_type="np").images
energy = AutoModel.from_pretrained(sys.argv[1] + "/energy_model", trust_remote_code=True)
e = energy(torch.zeros(2, 3, 8, 8)).energy.detach().numpy()
np.savez(sys.argv[2], images=images, recon=recon, energy=e)
"""


def run_isolated(exported: Path, out: Path, tmp: Path) -> subprocess.CompletedProcess:
    """python -I -S: no user site, no PYTHON* variables and no .pth files (so not the editable hf_dualmcmc);
    only the environment's site-packages directories are put on sys.path."""
    paths = [p for p in site.getsitepackages() if not (Path(p) / "hf_dualmcmc").exists()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf_home"), HF_MODULES_CACHE=str(tmp / "hf_modules"))
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOADER, str(exported), str(out), json.dumps(paths)],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=300,
    )


def test_export_loads_without_the_package_and_samples_identically(saved, tmp_path):
    pipe, path = saved
    write_model_card(path)
    exported = export_for_hub(path, tmp_path / "exported")
    index = json.loads((exported / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_dualmcmc", "DualMCMCPipeline"]
    assert index["energy_model"] == ["modeling_dualmcmc", "DualMCMCEnergyModel"]
    assert index["num_inference_steps"] == 3
    config = json.loads((exported / "energy_model" / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_dualmcmc.DualMCMCEnergyModel"
    assert "trust_remote_code=True" in (exported / "README.md").read_text()

    result = run_isolated(exported, tmp_path / "remote.npz", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    remote = np.load(tmp_path / "remote.npz")
    images = pipe(batch_size=4, generator=torch.Generator().manual_seed(7), output_type="np").images
    recon = pipe.reconstruct(pixel_values=torch.zeros(2, 3, 8, 8), generator=3, output_type="np").images
    np.testing.assert_allclose(remote["images"], images, rtol=0, atol=1e-6)
    np.testing.assert_allclose(remote["recon"], recon, rtol=0, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(remote["energy"], pipe.energy_model.energy(torch.zeros(2, 3, 8, 8)).numpy(),
                                   rtol=1e-6, atol=1e-7)

    # with the package installed, the exported layout still loads (trust_remote_code needed for the .py files)
    again = DualMCMCPipeline.from_pretrained(exported, trust_remote_code=True)
    np.testing.assert_allclose(
        again(batch_size=4, generator=torch.Generator().manual_seed(7), output_type="np").images, images, atol=1e-6
    )


def test_export_from_pipeline_object_and_errors(tmp_path):
    out = export_for_hub(tiny_pipeline(encoder=False), tmp_path / "exp")
    index = json.loads((out / "model_index.json").read_text())
    assert index["encoder"] == [None, None]
    assert not (out / "encoder").exists()
    assert (out / "pipeline_dualmcmc.py").is_file() and (out / "generator_model" / "modeling_dualmcmc.py").is_file()
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        export_for_hub(tmp_path / "exp", tmp_path / "exp")
    assert export_for_hub(tmp_path / "exp", tmp_path / "exp", overwrite=True) == tmp_path / "exp"  # idempotent
    with pytest.raises(ValueError, match="not a saved pipeline directory"):
        export_for_hub(tmp_path / "nothing", tmp_path / "exp2")
    with pytest.raises(ValueError, match="needs a DualMCMCPipeline or a saved pipeline directory"):
        export_for_hub(42, tmp_path / "exp3")
    assert not (tmp_path / "exp2").exists() and not list(tmp_path.glob(".exp*")), "failed exports must not leave files"


def test_export_cli(saved, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_cli", REPO / "scripts" / "export_for_hub.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    _, path = saved
    assert cli.main([str(path), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "pipeline_dualmcmc.py").is_file()
    assert cli.main([str(path), str(tmp_path / "out")]) == 2


# ----------------------------------------------------------------------------------------------------------------
# Upload
# ----------------------------------------------------------------------------------------------------------------


def test_push_refuses_in_offline_mode(saved, monkeypatch):
    _, path = saved
    calls = []
    monkeypatch.setattr(hub, "HfApi", lambda **kw: calls.append(kw))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineModeIsEnabled, match="offline mode is enabled"):
        push_pipeline_to_hub(path, "someone/dualmcmc")
    assert calls == [], "no HfApi may be created in offline mode"


def test_push_calls_create_repo_and_upload_folder(saved, monkeypatch):
    _, path = saved

    class FakeApi:
        instances = []

        def __init__(self, token=None):
            self.token, self.calls = token, []
            FakeApi.instances.append(self)

        def create_repo(self, **kwargs):
            self.calls.append(("create_repo", kwargs))
            return type("RepoUrl", (), {"repo_id": kwargs["repo_id"]})()

        def upload_folder(self, **kwargs):
            self.calls.append(("upload_folder", kwargs))
            return "commit-info"

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    monkeypatch.setattr(hub, "_offline", lambda: False)
    result = push_pipeline_to_hub(path, "someone/dualmcmc", private=True, token="hf_x", commit_message="msg")
    assert result == "commit-info"
    (api,) = FakeApi.instances
    assert api.token == "hf_x"
    (name1, create), (name2, upload) = api.calls
    assert name1 == "create_repo" and create == dict(repo_id="someone/dualmcmc", repo_type="model", private=True,
                                                     exist_ok=True)
    assert name2 == "upload_folder"
    assert upload["repo_id"] == "someone/dualmcmc" and upload["folder_path"] == str(path)
    assert upload["commit_message"] == "msg" and upload["repo_type"] == "model"


def test_push_argument_errors(saved, tmp_path):
    _, path = saved
    with pytest.raises(ValueError, match="not a saved pipeline directory"):
        push_pipeline_to_hub(tmp_path, "someone/x")
    with pytest.raises(ValueError, match="not a valid repository id"):
        push_pipeline_to_hub(path, "bad id with spaces")


def test_atomic_directory_keeps_previous_content_on_failure(tmp_path):
    from hf_dualmcmc.hub import atomic_directory

    target = tmp_path / "pipeline"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("half-written")
            raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "first"
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline"]  # no temporary or old folders left

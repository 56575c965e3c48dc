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

from conftest import REPO_ROOT, load_module  # noqa: E402
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
    TEMPLATES,
    export_for_hub,
    push_pipeline_to_hub,
    self_contained_source,
    write_model_card,
)


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


def test_template_ships_in_the_package_and_top_level_dir_is_the_same():
    assert TEMPLATES == ("run", "cifar10", "celeba64", "celebahq256", "church64")
    top = REPO_ROOT / "model_cards"
    assert top.resolve() == hub.TEMPLATE_PATH.parent, "model_cards/ must be the package template directory"
    assert sorted(p.name for p in top.glob("*.md")) == ["model_card.md"]  # one template: ModelCard.from_template
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
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
    assert "user training run" in text and "Face images" not in text and "not re-measured" not in text
    assert "trust_remote_code" not in text  # a save_pretrained directory has no remote code
    assert "\n\n\n" not in readme.read_text()
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
    assert "No metrics were measured" in card.text and "user training run" not in card.text
    assert ("Face images" in card.text) == template.startswith("celeba")
    assert "Training data: **" in card.text and "images scaled to" not in card.text  # the data set's own text


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
    legacy = json.loads((path / "model_index.json").read_text())
    legacy["num_revision_steps"] = legacy.pop("num_inference_steps")  # the first release's key
    (tmp_path / "model_index.json").write_text(json.dumps(legacy))
    with pytest.raises(ValueError, match="has no 'num_inference_steps'"):
        write_model_card(tmp_path)


def test_card_without_encoder(tmp_path):
    tiny_pipeline(encoder=False).save_pretrained(tmp_path)
    text = ModelCard.load(write_model_card(tmp_path)).text
    assert "pipe.reconstruct" not in text
    assert "`encoder`" not in text


# ----------------------------------------------------------------------------------------------------------------
# Remote code
# ----------------------------------------------------------------------------------------------------------------


def test_self_contained_source_inlines_relative_imports_in_dependency_order(tmp_path):
    from diffusers.utils.dynamic_modules_utils import get_relative_imports

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "c.py").write_text('"""c."""\nfrom __future__ import annotations\n\nC = 1\n')
    (pkg / "b.py").write_text("from __future__ import annotations\n\nfrom .c import C\n\nB = C + 1\n")
    (pkg / "a.py").write_text('"""a."""\nfrom __future__ import annotations\n\nimport math\n\nfrom .b import B\n'
                              "from .c import C\n\nA = B + C + math.floor(0.5)\n")
    code = self_contained_source(pkg / "a.py")
    assert code.startswith('"""a."""\nfrom __future__ import annotations\n')
    assert code.count("from __future__") == 1 and code.count("C = 1") == 1
    namespace = {}
    exec(compile(code, "a.py", "exec"), namespace)
    assert (namespace["A"], namespace["B"], namespace["C"]) == (3, 2, 1)

    (pkg / "bad.py").write_text("from ..up import x\n")
    with pytest.raises(ValueError, match="bad.py line 1: only `from .module import name`"):
        self_contained_source(pkg / "bad.py")
    (pkg / "alias.py").write_text("from .c import C as D\n")
    with pytest.raises(ValueError, match="alias.py line 1"):
        self_contained_source(pkg / "alias.py")
    (pkg / "lazy.py").write_text("def f():\n    from .c import C\n    return C\n")
    with pytest.raises(ValueError, match="lazy.py line 2: a relative import inside a block"):
        self_contained_source(pkg / "lazy.py")

    modeling = tmp_path / "modeling_dualmcmc.py"
    modeling.write_text(self_contained_source(Path(hub.__file__).with_name("modeling_dualmcmc.py")))
    assert get_relative_imports(modeling) == []  # what diffusers would otherwise try to copy along
    text = modeling.read_text()
    assert "class DualMCMCEnergyConfig" in text and "class DualMCMCEnergyModel" in text


LOADER = r"""
import json, shutil, sys, types
from pathlib import Path
sys.path[:0] = json.loads(sys.argv[3])
try:
    import hf_dualmcmc
except ImportError:
    pass
else:
    sys.exit("hf_dualmcmc is importable in the isolated interpreter: " + hf_dualmcmc.__file__)
import numpy as np, torch
import diffusers.pipelines.pipeline_utils as pipeline_utils
import diffusers.utils.dynamic_modules_utils as dynamic_modules_utils
from diffusers import DiffusionPipeline
from diffusers.utils.constants import HF_MODULES_CACHE
from huggingface_hub.utils import filter_repo_objects
from transformers import AutoModel

exported, repo_id = Path(sys.argv[1]), "someone/dualmcmc-remote"
snapshot = Path(sys.argv[2]).parent / "snapshot"
files = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file())
downloaded = []

def hf_hub_download(name, filename, subfolder=None, **kwargs):  # one snapshot folder per revision, like the cache
    assert name == repo_id, name
    rel = f"{subfolder}/{filename}" if subfolder else filename
    if rel not in files:
        raise FileNotFoundError(f"{rel} is not in the repository")
    (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported / rel, snapshot / rel)
    downloaded.append(rel)
    return str(snapshot / rel)

def snapshot_download(name, allow_patterns=None, ignore_patterns=None, **kwargs):
    for rel in filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
        hf_hub_download(name, rel)
    return str(snapshot)

def model_info(name, **kwargs):
    assert name == repo_id, name
    return types.SimpleNamespace(sha="0" * 40, siblings=[types.SimpleNamespace(rfilename=f) for f in files])

pipeline_utils.model_info = dynamic_modules_utils.model_info = model_info
pipeline_utils.hf_hub_download = dynamic_modules_utils.hf_hub_download = hf_hub_download
pipeline_utils.snapshot_download = snapshot_download
pipeline_utils._resolve_revision = lambda name, revision=None, **kwargs: revision

def sample(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe(batch_size=4, generator=torch.Generator().manual_seed(7), output_type="np").images

hub_pipe = DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)
assert type(hub_pipe).__name__ == "DualMCMCPipeline" and not type(hub_pipe).__module__.startswith("hf_dualmcmc")
hub_images = sample(hub_pipe)

shutil.rmtree(Path(HF_MODULES_CACHE) / "diffusers_modules")  # the local load starts from an empty module cache
for name in [m for m in sys.modules if m.startswith("diffusers_modules")]:
    del sys.modules[name]
pipe = DiffusionPipeline.from_pretrained(exported, trust_remote_code=True)
recon = pipe.reconstruct(pixel_values=torch.zeros(2, 3, 8, 8), generator=3, output_type="np").images
models = {name: AutoModel.from_pretrained(exported / name, trust_remote_code=True) for name in sys.argv[4].split(",")}
assert all(type(m).__name__ == type(getattr(pipe, n)).__name__ for n, m in models.items())
energy = models["energy_model"](torch.zeros(2, 3, 8, 8)).energy.detach().numpy()
json.dump(downloaded, open(Path(sys.argv[2]).with_suffix(".json"), "w"))
np.savez(sys.argv[2], hub_images=hub_images, images=sample(pipe), recon=recon, energy=energy)
"""


def run_isolated(exported: Path, out: Path, tmp: Path, components: str) -> subprocess.CompletedProcess:
    """python -I -S: no user site, no PYTHON* variables and no .pth files (so not the editable hf_dualmcmc);
    only the environment's site-packages directories are put on sys.path."""
    paths = [p for p in site.getsitepackages() if not (Path(p) / "hf_dualmcmc").exists()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf_home"), HF_MODULES_CACHE=str(tmp / "hf_modules"))
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOADER, str(exported), str(out), json.dumps(paths), components],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=300,
    )


def test_export_loads_without_the_package_locally_and_from_a_hub_repo(saved, tmp_path):
    pipe, path = saved
    write_model_card(path)
    exported = export_for_hub(path, tmp_path / "exported")
    package = Path(hub.__file__).parent
    # the pipeline file and langevin.py (no relative imports) are plain copies; modeling has its configuration inlined
    assert (exported / "pipeline_dualmcmc.py").read_bytes() == (package / "pipeline_dualmcmc.py").read_bytes()
    assert (exported / "langevin.py").read_bytes() == (package / "langevin.py").read_bytes()
    assert not list(exported.rglob("configuration_dualmcmc.py"))
    index = json.loads((exported / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_dualmcmc", "DualMCMCPipeline"]
    assert index["energy_model"] == ["modeling_dualmcmc", "DualMCMCEnergyModel"]
    assert index["num_inference_steps"] == 3
    for name in ("energy_model", "generator_model", "encoder"):
        config = json.loads((exported / name / "config.json").read_text())
        assert config["auto_map"] == {"AutoConfig": f"modeling_dualmcmc.{type(getattr(pipe, name)).config_class.__name__}",
                                      "AutoModel": f"modeling_dualmcmc.{index[name][1]}"}
        assert (exported / name / "modeling_dualmcmc.py").read_text() == (exported / "modeling_dualmcmc.py").read_text()
    readme = (exported / "README.md").read_text()
    assert readme.count("## Loading without hf-dualmcmc") == 1 and "user training run" in readme  # card kept

    result = run_isolated(exported, tmp_path / "remote.npz", tmp_path, "energy_model,generator_model,encoder")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the simulated Hub served each component folder's config, weights and code file only (diffusers' allow list)
    downloaded = set(json.loads((tmp_path / "remote.json").read_text()))
    assert {"pipeline_dualmcmc.py", "langevin.py", "modeling_dualmcmc.py", "energy_model/modeling_dualmcmc.py"} <= downloaded
    assert {p for p in downloaded if p.startswith("energy_model/")} == {
        "energy_model/config.json", "energy_model/model.safetensors", "energy_model/modeling_dualmcmc.py"}
    remote = np.load(tmp_path / "remote.npz")
    images = pipe(batch_size=4, generator=torch.Generator().manual_seed(7), output_type="np").images
    recon = pipe.reconstruct(pixel_values=torch.zeros(2, 3, 8, 8), generator=3, output_type="np").images
    np.testing.assert_allclose(remote["images"], images, rtol=0, atol=1e-6)
    np.testing.assert_allclose(remote["hub_images"], images, rtol=0, atol=1e-6)
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
    card = ModelCard.load(out / "README.md")  # no card in the source: one is written, with the remote-code section
    assert "energy-based-model" in card.data.tags
    assert 'DiffusionPipeline.from_pretrained("exp", trust_remote_code=True)' in card.text
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        export_for_hub(tmp_path / "exp", tmp_path / "exp")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert export_for_hub(tmp_path / "exp", tmp_path / "exp", overwrite=True) == tmp_path / "exp"
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # idempotent
    with pytest.raises(ValueError, match="not a saved pipeline directory"):
        export_for_hub(tmp_path / "nothing", tmp_path / "exp2")
    with pytest.raises(ValueError, match="needs a DualMCMCPipeline or a saved pipeline directory"):
        export_for_hub(42, tmp_path / "exp3")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    with pytest.raises(ValueError, match="_class_name must be 'DualMCMCPipeline', got 'DDPMPipeline'"):
        export_for_hub(tmp_path / "other", tmp_path / "exp4")
    assert not any((tmp_path / n).exists() for n in ("exp2", "exp3", "exp4"))
    assert not list(tmp_path.glob(".exp*")), "failed exports must not leave files"


def test_export_cli(saved, tmp_path):
    cli = load_module("scripts/export_for_hub.py", "export_cli")
    _, path = saved
    assert cli.main([str(path), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "pipeline_dualmcmc.py").is_file()
    assert cli.main([str(path), str(tmp_path / "out")]) == 2


# ----------------------------------------------------------------------------------------------------------------
# Upload
# ----------------------------------------------------------------------------------------------------------------


class FakeApi:
    """``HfApi`` stand-in: records the calls and what the uploaded folder held at upload time."""

    instances: list = []

    def __init__(self, token=None):
        self.token, self.calls, self.uploaded = token, [], {}
        FakeApi.instances.append(self)

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        return type("RepoUrl", (), {"repo_id": kwargs["repo_id"]})()

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        folder = Path(kwargs["folder_path"])
        self.uploaded = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        return "commit-info"


@pytest.fixture
def fake_api(monkeypatch):
    FakeApi.instances = []
    monkeypatch.setattr(hub, "HfApi", FakeApi)
    return FakeApi


def test_pipeline_push_to_hub_uploads_this_projects_card(fake_api):
    pipe = tiny_pipeline()
    result = pipe.push_to_hub("someone/dualmcmc", private=True, token="hf_x", metrics={"FID": 12.5},
                              training_config={"epochs": 3})
    assert result == "commit-info"
    (api,) = fake_api.instances
    assert api.token == "hf_x"
    (name1, create), (name2, upload) = api.calls
    assert name1 == "create_repo" and create == dict(repo_id="someone/dualmcmc", repo_type="model", private=True,
                                                     exist_ok=True)
    assert name2 == "upload_folder" and upload["repo_id"] == "someone/dualmcmc" and upload["create_pr"] is False
    files = api.uploaded
    assert {"model_index.json", "README.md", "energy_model/model.safetensors", "generator_model/model.safetensors",
            "encoder/model.safetensors", "energy_model/config.json"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "diffusers" and card.data.license == "apache-2.0"
    assert {"energy-based-model", "dual-mcmc", "unconditional-image-generation"} <= set(card.data.tags)
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [("FID", 12.5)]
    assert 'DualMCMCPipeline.from_pretrained("someone/dualmcmc")' in card.text and "epochs: 3" in card.text
    assert f"| {pipe.energy_model.num_parameters_total:,} |" in card.text
    assert card.text.lstrip().startswith("# Dual-MCMC EBM: someone/dualmcmc\n")  # not diffusers' generic card


def test_save_pretrained_push_to_hub_goes_through_our_card(fake_api, tmp_path):
    pipe = tiny_pipeline(encoder=False)
    pipe.save_pretrained(tmp_path / "my-ebm", push_to_hub=True, commit_message="msg", create_pr=True)
    assert (tmp_path / "my-ebm" / "model_index.json").is_file()
    (api,) = fake_api.instances
    (_, create), (_, upload) = api.calls
    assert create["repo_id"] == "my-ebm" and upload["commit_message"] == "msg" and upload["create_pr"] is True
    card = ModelCard(api.uploaded["README.md"].decode())
    assert "energy-based-model" in card.data.tags and 'from_pretrained("my-ebm")' in card.text
    assert "encoder/model.safetensors" not in api.uploaded
    pipe.save_pretrained(tmp_path / "plain")  # push_to_hub=False: nothing is uploaded
    assert len(fake_api.instances) == 1


def test_push_in_offline_mode_raises_before_anything_is_sent(saved):
    from huggingface_hub import constants

    pipe, path = saved
    assert constants.HF_HUB_OFFLINE, "tests run with HF_HUB_OFFLINE=1"
    with pytest.raises(OfflineModeIsEnabled, match="offline mode is enabled"):
        pipe.push_to_hub("someone/dualmcmc")
    with pytest.raises(OfflineModeIsEnabled, match="offline mode is enabled"):
        push_pipeline_to_hub(path, "someone/dualmcmc")


def test_push_pipeline_to_hub_uploads_the_directory(saved, fake_api):
    _, path = saved
    write_model_card(path)
    result = push_pipeline_to_hub(path, "someone/dualmcmc", token="hf_x", commit_message="msg")
    assert result == "commit-info"
    (api,) = fake_api.instances
    (_, create), (_, upload) = api.calls
    assert create == dict(repo_id="someone/dualmcmc", repo_type="model", private=None, exist_ok=True)
    assert upload["folder_path"] == str(path) and upload["commit_message"] == "msg" and upload["repo_type"] == "model"
    assert api.uploaded["README.md"] == (path / "README.md").read_bytes()


def test_push_argument_errors(saved, tmp_path, fake_api):
    pipe, path = saved
    with pytest.raises(ValueError, match="not a saved pipeline directory with a model card: expected model_index.json"):
        push_pipeline_to_hub(tmp_path, "someone/x")
    pipe.save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match="expected README.md in it"):
        push_pipeline_to_hub(tmp_path / "bare", "someone/x")
    with pytest.raises(ValueError, match="not a valid repository id"):
        push_pipeline_to_hub(path, "bad id with spaces")
    with pytest.raises(ValueError, match="repo_id 'bad id' is not a valid repository id"):
        pipe.push_to_hub("bad id")
    with pytest.raises(ValueError, match="unknown model card template 'svhn'"):
        pipe.push_to_hub("someone/x", template="svhn")
    assert fake_api.instances == [], "nothing may be sent after a bad argument"


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

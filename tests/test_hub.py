"""Model cards, remote-code export (loaded where hf_dualmcmc is not importable) and the Hub upload path."""

from __future__ import annotations

import json
import os
import re
import site
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from conftest import REPO_ROOT, load_module  # noqa: E402
from hub_server import hub_subprocess_env  # noqa: E402
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
from hf_dualmcmc.hub import TEMPLATES, export_for_hub, push_pipeline_to_hub, self_contained_source, write_model_card  # noqa: E402


def tiny_pipeline(encoder: bool = True, seed: int = 0) -> DualMCMCPipeline:
    torch.manual_seed(seed)
    e, g, i = configs_for_image_size(8, 3, latent_dim=8, ngf=8, ndf=8, nif=8)
    return DualMCMCPipeline(
        DualMCMCEnergyModel(e),
        DualMCMCGeneratorModel(g),
        DualMCMCEncoderModel(i) if encoder else None,
        num_inference_steps=3,
        step_size=0.3,
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
    # one template (ModelCard.from_template) and the section an export appends to a card
    assert sorted(p.name for p in top.glob("*.md")) == ["model_card.md", "remote_code.md"]
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"model_cards/*.md"' in pyproject


def test_run_card_metadata_and_content(saved):
    pipe, path = saved
    from PIL import Image

    Image.new("RGB", (16, 16)).save(path / "samples.png")
    readme = write_model_card(
        path,
        dataset="mnist",
        training_config={"lr_energy": 1e-4, "epochs": 3, "out": path},
        metrics={"FID": 123.456, "IS": 2.5},
        sample_grid="samples.png",
        hub_model_id="someone/dualmcmc-mnist",
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
    "template, fid, hub_id",
    [
        ("cifar10", "9.26", "uoft-cs/cifar10"),
        ("celeba64", "5.15", None),
        ("celebahq256", "15.89", None),
        ("church64", "4.56", None),
    ],
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


def test_card_license_base_model_and_hub_dataset(saved):
    from hf_dualmcmc.training_config import TrainConfig

    _, path = saved
    card = ModelCard.load(
        write_model_card(path, license="cc-by-nc-4.0", base_model="authors/dualmcmc-cifar10", dataset="someone/pixels")
    )
    assert card.data.license == "cc-by-nc-4.0" and card.data.base_model == "authors/dualmcmc-cifar10"
    assert card.data.datasets == ["someone/pixels"]
    assert ModelCard.load(write_model_card(path, dataset="sklearn:digits")).data.datasets is None  # not a Hub dataset
    assert ModelCard.load(write_model_card(path)).data.license == "apache-2.0"  # the stated default
    with pytest.raises(ValueError, match="base_model 'not a repo' is not a valid repository id"):
        write_model_card(path, base_model="not a repo")
    for bad in ({"hub_license": "Apache 2.0"}, {"hub_model_id": "bad id"}):
        with pytest.raises(ValueError, match=f"run.{next(iter(bad))}"):
            TrainConfig.from_dict({"data": {"source": "sklearn:digits"}, "run": bad})


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
    (pkg / "a.py").write_text(
        '"""a."""\nfrom __future__ import annotations\n\nimport math\n\nfrom .b import B\n'
        "from .c import C\n\nA = B + C + math.floor(0.5)\n"
    )
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


# ----------------------------------------------------------------------------------------------------------------
# Round trip through a local Hub (tests/hub_server.py): huggingface_hub's and diffusers' own code, no mocks
# ----------------------------------------------------------------------------------------------------------------

# Loads every repository of sys.argv[1] ({repo: pinned commit}) with diffusers' remote-code path, at main and at the
# pinned commit, and records what the loaders say for a repository without the flag / one that does not exist.
REMOTE_LOADER = r"""
import json, sys
import numpy as np, torch
from diffusers import DiffusionPipeline
from transformers import AutoModel

repos, out, errors = json.loads(sys.argv[1]), {}, {}
for repo, sha in repos.items():
    for label, kwargs in (("main", {}), ("pinned", {"revision": sha})):
        pipe = DiffusionPipeline.from_pretrained(repo, trust_remote_code=True, **kwargs)
        assert type(pipe).__name__ == "DualMCMCPipeline", type(pipe)
        out[f"{repo}@{label}"] = pipe(batch_size=4, generator=torch.Generator().manual_seed(7), output_type="np").images
    out[f"{repo}@module"] = np.array(type(pipe).__module__)
repo = next(iter(repos))
energy = AutoModel.from_pretrained(repo, subfolder="energy_model", trust_remote_code=True)
out["auto_model"] = np.array(type(energy).__name__)
for name, call in (("no_flag", lambda: DiffusionPipeline.from_pretrained(repo)),
                   ("no_flag_auto_model", lambda: AutoModel.from_pretrained(repo, subfolder="energy_model")),
                   ("missing_repo", lambda: DiffusionPipeline.from_pretrained("org/nope", trust_remote_code=True))):
    try:
        call()
        errors[name] = "loaded"
    except Exception as err:
        errors[name] = f"{type(err).__name__}: {err}"
np.savez(sys.argv[2], **out)
json.dump(errors, open(sys.argv[2] + ".json", "w"))
"""

# python -I -S: no user site, no PYTHON* variables and no .pth files (so not the editable hf_dualmcmc); only the
# environment's site-packages directories are put on sys.path, then the code in sys.argv[2] runs.
WITHOUT_PACKAGE = r"""
import json, sys
sys.path[:0] = json.loads(sys.argv.pop(1))
try:
    import hf_dualmcmc
except ImportError:
    pass
else:
    sys.exit("hf_dualmcmc is importable in the isolated interpreter: " + hf_dualmcmc.__file__)
code = sys.argv.pop(1)
exec(compile(code, "<snippet>", "exec"))
"""


def run_python(code: str, *args, env: dict, cwd, package: bool) -> subprocess.CompletedProcess:
    """Run ``code`` in a child interpreter with ``args`` as ``sys.argv[1:]``, with or without hf_dualmcmc."""
    if package:
        command = [sys.executable, "-c", code, *args]
    else:
        paths = [p for p in site.getsitepackages() if not (Path(p) / "hf_dualmcmc").exists()]
        env = {k: v for k, v in env.items() if not k.startswith("PYTHON")}
        command = [sys.executable, "-I", "-S", "-c", WITHOUT_PACKAGE, json.dumps(paths), code, *args]
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def sample(pipe) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    return pipe(batch_size=4, generator=torch.Generator().manual_seed(7), output_type="np").images


def test_every_upload_path_loads_back_with_every_loader(online_hub, tmp_path):
    from diffusers import DiffusionPipeline

    hub = online_hub
    first, pipe = tiny_pipeline(seed=1), tiny_pipeline()
    expected, expected_first = sample(pipe), sample(first)
    # 1. DualMCMCPipeline.push_to_hub (an earlier commit first: revision= must find it)
    pinned = {"org/pushed": first.push_to_hub("org/pushed", commit_message="first").oid}
    info = pipe.push_to_hub("org/pushed", license="mit", commit_message="second")
    assert hub.commits("org/pushed")[-2:] == [pinned["org/pushed"], info.oid]
    # 2. save_pretrained(push_to_hub=True)
    pipe.save_pretrained(tmp_path / "saved", push_to_hub=True, repo_id="org/saved")
    pinned["org/saved"] = hub.commits("org/saved")[-1]
    # 3. scripts/export_for_hub.py --push (from the save_pretrained folder, which has no card)
    cli = load_module("scripts/export_for_hub.py", "export_cli_push")
    assert cli.main([str(tmp_path / "saved"), str(tmp_path / "exported"), "--push", "org/exported"]) == 0
    pinned["org/exported"] = hub.commits("org/exported")[-1]

    for repo in pinned:
        files = hub.files(repo)
        assert {
            "model_index.json",
            "README.md",
            "pipeline_dualmcmc.py",
            "langevin.py",
            "modeling_dualmcmc.py",
            "energy_model/model.safetensors",
            "energy_model/config.json",
            "energy_model/modeling_dualmcmc.py",
            "encoder/modeling_dualmcmc.py",
        } <= set(files), sorted(files)
        assert json.loads(files["model_index.json"])["_class_name"] == ["pipeline_dualmcmc", "DualMCMCPipeline"]
        card = ModelCard(files["README.md"].decode())
        assert card.text.lstrip().startswith(f"# Dual-MCMC EBM: {repo}\n"), card.text[:200]
        assert f'DualMCMCPipeline.from_pretrained("{repo}")' in card.text
        assert f'DiffusionPipeline.from_pretrained("{repo}", trust_remote_code=True)' in card.text
        # with the package: no flag, nothing from the repository runs, the same samples bit for bit
        loaded = DualMCMCPipeline.from_pretrained(repo)
        assert type(loaded) is DualMCMCPipeline and loaded.config._name_or_path == repo
        np.testing.assert_array_equal(sample(loaded), expected)
        # without the flag diffusers' generic loader refuses the shipped code and says what to pass
        with pytest.raises(ValueError, match="trust_remote_code=True"):
            DiffusionPipeline.from_pretrained(repo)
    assert ModelCard(hub.files("org/pushed")["README.md"].decode()).data.license == "mit"
    np.testing.assert_array_equal(
        sample(DualMCMCPipeline.from_pretrained("org/pushed", revision=pinned["org/pushed"])), expected_first
    )

    env = hub_subprocess_env(hub, tmp_path)
    for package in (True, False):
        out = tmp_path / f"remote-{package}.npz"
        run_python(REMOTE_LOADER, json.dumps(pinned), str(out), env=env, cwd=tmp_path, package=package)
        remote, errors = np.load(out), json.loads(Path(f"{out}.json").read_text())
        for repo in pinned:
            np.testing.assert_array_equal(remote[f"{repo}@main"], expected)
            np.testing.assert_array_equal(
                remote[f"{repo}@pinned"], expected_first if repo == "org/pushed" else expected
            )
            assert str(remote[f"{repo}@module"]).startswith("diffusers_modules.")  # the repository's own code ran
        assert str(remote["auto_model"]) == "DualMCMCEnergyModel"
        assert "Pass `trust_remote_code=True`" in errors["no_flag"], errors
        assert "trust_remote_code=True" in errors["no_flag_auto_model"], errors
        # diffusers 0.42 treats a missing repository like a lost connection (falls back to the empty cache):
        # an OSError naming it; DualMCMCPipeline.from_pretrained says more (test_load_errors_name_what_is_missing)
        assert errors["missing_repo"].startswith("OSError: Cannot load model org/nope"), errors
    assert hub.unhandled == []


def test_train_push_to_hub_loads_back(online_hub, tmp_path):
    train_cli = load_module("scripts/train.py", "train_cli_push")
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"source": "sklearn:digits", "image_size": 8, "num_channels": 1, "max_images": 16},
                "model": {"latent_dim": 4, "ngf": 8, "ndf": 8, "nif": 4},
                "teaching": {"num_steps": 2, "num_latent_steps": 2},
                "sampler": {"num_inference_steps": 2, "num_latent_steps": 1},
                "run": {
                    "batch_size": 8,
                    "max_steps": 2,
                    "sample_every": 0,
                    "checkpoint_every": 0,
                    "report_to": "none",
                    "num_sample_images": 4,
                    "output_dir": str(tmp_path / "run"),
                },
            }
        )
    )
    assert (
        train_cli.main(
            ["--config", str(config), "--push_to_hub", "--hub_model_id", "org/trained", "--hub_license", "cc-by-4.0"]
        )
        == 0
    )
    local = DualMCMCPipeline.from_pretrained(tmp_path / "run" / "pipeline")
    hub_pipe = DualMCMCPipeline.from_pretrained("org/trained")
    np.testing.assert_array_equal(sample(hub_pipe), sample(local))
    from diffusers import DiffusionPipeline

    with pytest.raises(ValueError, match="trust_remote_code=True"):  # the layout of the other upload paths
        DiffusionPipeline.from_pretrained("org/trained")
    files = online_hub.files("org/trained")
    assert {"training_config.yaml", "pipeline_dualmcmc.py", "energy_model/modeling_dualmcmc.py"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert card.data.license == "cc-by-4.0" and "sklearn:digits" in card.data.tags and card.data.datasets is None
    assert card.text.lstrip().startswith("# Dual-MCMC EBM: org/trained\n")
    assert 'DualMCMCPipeline.from_pretrained("org/trained")' in card.text
    # the local card names the repository too (it was rendered for the destination)
    assert (
        'DualMCMCPipeline.from_pretrained("org/trained")' in (tmp_path / "run" / "pipeline" / "README.md").read_text()
    )
    assert online_hub.unhandled == []


CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_card_snippets_run_as_printed(online_hub, tmp_path):
    pipe = tiny_pipeline()
    pipe.push_to_hub("org/card", dataset="someone/pixel-art", metrics={"FID": 50.5})
    text = online_hub.files("org/card")["README.md"].decode()
    card = ModelCard(text)
    assert card.data.datasets == ["someone/pixel-art"] and card.data.license == "apache-2.0"
    assert card.data.model_name == "org/card" and card.data.eval_results[0].metric_value == 50.5
    usage, reconstruct, remote = CODE_BLOCK.findall(card.text)  # the remote-code section comes last
    assert usage.startswith(f"# {hub.install_line()}\n") and "pip install hf-dualmcmc" not in text
    assert remote.startswith("# pip install torch diffusers transformers safetensors\n")
    env = hub_subprocess_env(online_hub, tmp_path)
    check = "\nassert len(images) == 16 and images[0].size == (8, 8)\n"
    run_python(
        usage + reconstruct + check + "assert len(recon) == 4 and len(path) == 8\n", env=env, cwd=tmp_path, package=True
    )
    assert (tmp_path / "sample.png").is_file()  # the snippet saves it
    run_python(remote + check, env=env, cwd=tmp_path, package=False)
    assert online_hub.unhandled == []


def test_load_errors_name_what_is_missing(online_hub):
    pipe = tiny_pipeline(encoder=False)
    complete = pipe.push_to_hub("org/broken").oid
    online_hub.delete_file("org/broken", "energy_model/model.safetensors")
    with pytest.raises(OSError, match="model.safetensors"):
        DualMCMCPipeline.from_pretrained("org/broken")
    np.testing.assert_array_equal(
        sample(DualMCMCPipeline.from_pretrained("org/broken", revision=complete)), sample(pipe)
    )
    with pytest.raises(OSError, match="'org/nope' is not a local folder and the Hub .* has no repository of that name"):
        DualMCMCPipeline.from_pretrained("org/nope")
    with pytest.raises(OSError, match="the Hub repository 'org/broken' has no revision 'v9'"):
        DualMCMCPipeline.from_pretrained("org/broken", revision="v9")
    with pytest.raises(OSError, match="neither a local folder nor a valid Hub repository id"):
        DualMCMCPipeline.from_pretrained("no/such/folder")
    with pytest.raises(ValueError, match="unexpected arguments \\['device_mapp'\\]"):
        DualMCMCPipeline.from_pretrained("org/broken", revision=complete, device_mapp="cpu")
    assert online_hub.unhandled == []


def test_offline_load_from_the_cache_and_a_clear_error_when_not_cached(online_hub, monkeypatch):
    from huggingface_hub import constants

    pipe = tiny_pipeline(encoder=False)
    pipe.push_to_hub("org/cached")
    DualMCMCPipeline.from_pretrained("org/cached")  # fills the cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    np.testing.assert_array_equal(sample(DualMCMCPipeline.from_pretrained("org/cached")), sample(pipe))
    with pytest.raises(OSError, match="not a local folder nor in the Hugging Face cache"):
        DualMCMCPipeline.from_pretrained("org/never-downloaded")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_get_the_users_normal_modes(tmp_path, umask):
    from hf_dualmcmc.trainer import export_pipeline
    from hf_dualmcmc.training_config import TrainConfig

    previous = os.umask(umask)
    try:
        pipe = tiny_pipeline()
        pipe.save_pretrained(tmp_path / "saved")
        write_model_card(tmp_path / "saved")
        export_for_hub(tmp_path / "saved", tmp_path / "exported")
        export_for_hub(pipe, tmp_path / "from-object", hub_model_id="org/x")
        config = TrainConfig.from_dict(
            {
                "data": {"source": "sklearn:digits", "image_size": 8, "num_channels": 3},
                "run": {"output_dir": str(tmp_path / "run")},
            }
        )
        export_pipeline(pipe, tmp_path / "run" / "pipeline", config, grid=None)
    finally:
        os.umask(previous)
    entries = [p for p in tmp_path.rglob("*")]
    assert len(entries) > 40
    wrong = {
        str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in entries
        if stat.S_IMODE(p.stat().st_mode) != (0o777 if p.is_dir() else 0o666) & ~umask
    }
    assert wrong == {}


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


def test_push_in_offline_mode_raises_before_anything_is_sent(saved):
    from huggingface_hub import constants

    pipe, path = saved
    assert constants.HF_HUB_OFFLINE, "tests run with HF_HUB_OFFLINE=1"
    with pytest.raises(OfflineModeIsEnabled, match="offline mode is enabled"):
        pipe.push_to_hub("someone/dualmcmc")
    with pytest.raises(OfflineModeIsEnabled, match="offline mode is enabled"):
        push_pipeline_to_hub(path, "someone/dualmcmc")


def test_push_argument_errors_are_raised_before_anything_is_sent(saved, tmp_path, online_hub):
    pipe, path = saved
    with pytest.raises(ValueError, match="not a saved pipeline directory: expected model_index.json"):
        push_pipeline_to_hub(tmp_path, "someone/x")
    with pytest.raises(ValueError, match="not a valid repository id"):
        push_pipeline_to_hub(path, "bad id with spaces")
    with pytest.raises(ValueError, match="repo_id 'bad id' is not a valid repository id"):
        pipe.push_to_hub("bad id")
    with pytest.raises(ValueError, match="unknown model card template 'svhn'"):
        pipe.push_to_hub("someone/x", template="svhn")
    with pytest.raises(ValueError, match="license must be a Hub license identifier"):
        pipe.push_to_hub("someone/x", license="Apache 2")
    assert online_hub.requests == [], "nothing may be sent after a bad argument"


def test_retarget_card_keeps_a_readme_we_did_not_write(saved, tmp_path):
    _, path = saved
    write_model_card(path)
    readme = tmp_path / "README.md"
    readme.write_text((path / "README.md").read_text().replace("saved", "outputs/run/pipeline"))
    assert hub.retarget_card(readme, "org/run") is True
    text = readme.read_text()
    assert "# Dual-MCMC EBM: org/run\n" in text and 'from_pretrained("org/run")' in text
    assert 'from_pretrained("outputs/run/pipeline")' not in text
    own = tmp_path / "own.md"
    own.write_text('# My model\n\nfrom_pretrained("outputs/run/pipeline")\n')
    assert hub.retarget_card(own, "org/run") is False
    assert own.read_text() == '# My model\n\nfrom_pretrained("outputs/run/pipeline")\n'


def test_atomic_directory_keeps_previous_content_on_failure(tmp_path):
    from hf_dualmcmc.atomic import atomic_directory

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

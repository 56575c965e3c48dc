"""Hugging Face Hub readiness: model cards, remote-code export and upload of ``DualMCMCPipeline`` directories.

* :func:`write_model_card` renders ``model_cards/<template>.md`` (Jinja2, the format of
  :meth:`huggingface_hub.ModelCard.from_template`) for a saved pipeline and writes ``README.md`` atomically.
* :func:`export_for_hub` writes the layout that ``DiffusionPipeline.from_pretrained(dir, trust_remote_code=True)``
  loads for users without this package: ``model_index.json`` names ``["pipeline_dualmcmc", "DualMCMCPipeline"]``
  (a self-contained ``pipeline_dualmcmc.py`` at the root) and ``["modeling_dualmcmc", "<ModelClass>"]`` per
  component (a self-contained ``<component>/modeling_dualmcmc.py``, also named by the component's ``config.json``
  ``auto_map`` for ``transformers.AutoModel.from_pretrained(..., trust_remote_code=True)``). The files are generated
  from this package's source modules by :func:`generate_remote_code`.
* :func:`push_pipeline_to_hub` creates the repository and uploads the directory with ``huggingface_hub``.

Why self-contained files: diffusers copies a component's code file (and, for a local folder, the files it imports
relatively) into its module cache, but when it downloads a repository it only fetches ``<component>/<file>.py``
itself, so a component file must not import sibling files.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import logging
import math
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

logger = logging.getLogger(__name__)

PACKAGE = "hf_dualmcmc"
TEMPLATES_DIR = pathlib.Path(__file__).resolve().parent / "model_cards"
PIPELINE_MODULE = "pipeline_dualmcmc"
MODELING_MODULE = "modeling_dualmcmc"
COMPONENT_NAMES = ("energy_model", "generator_model", "encoder")
MODEL_CLASSES = {
    "DualMCMCEnergyModel": "DualMCMCEnergyConfig",
    "DualMCMCGeneratorModel": "DualMCMCGeneratorConfig",
    "DualMCMCEncoderModel": "DualMCMCEncoderConfig",
}
BASE_TAGS = ["energy-based-model", "ebm", "dual-mcmc", "langevin", "unconditional-image-generation", "diffusers"]
LICENSE = "apache-2.0"

# dataset key -> (pretty name, Hub dataset id or None)
KNOWN_DATASETS = {
    "cifar10": ("CIFAR-10", "uoft-cs/cifar10"),
    "celeba64": ("CelebA 64x64", None),
    "celebahq256": ("CelebA-HQ 256x256", None),
    "church64": ("LSUN Church 64x64", None),
    "mnist": ("MNIST", "ylecun/mnist"),
}
PAPER_TEMPLATES = ("cifar10", "celeba64", "celebahq256", "church64")


# ----------------------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------------------


def available_templates() -> list[str]:
    """Names accepted by ``write_model_card(template=...)`` (``model_cards/*.md`` without the ``_`` partials)."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.md") if not p.name.startswith("_"))


def _read_json(path: pathlib.Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{what}: expected {str(path)!r} (a DualMCMCPipeline save_pretrained directory)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: {str(path)!r} is not valid JSON ({err})") from err


@contextlib.contextmanager
def atomic_directory(output_dir: str | os.PathLike):
    """Build a folder in a temporary sibling and move it into place at the end: ``with atomic_directory(d) as tmp:``.

    On an exception (or a kill) ``output_dir`` keeps its previous content and the temporary folder is removed (a
    kill leaves only a hidden ``.name.*`` sibling). An existing ``output_dir`` is replaced.
    """
    output_dir = pathlib.Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        yield tmp
        old = None
        if output_dir.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old.", dir=output_dir.parent))
            os.replace(output_dir, old / output_dir.name)
        os.replace(tmp, output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _count_parameters(folder: pathlib.Path) -> int | None:
    """Trainable parameters in a component folder's safetensors files (buffers: BN statistics, SN vectors excluded)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    buffers = ("running_mean", "running_var", "num_batches_tracked", "._u", "._v", "weight_u", "weight_v")
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                if key.endswith(buffers):
                    continue
                total += math.prod(f.get_slice(key).get_shape())
    return total


def _sampler_settings(model_index: dict) -> dict:
    from .pipeline_dualmcmc import DualMCMCPipeline

    params = inspect.signature(DualMCMCPipeline.__init__).parameters
    names = [n for n, p in params.items() if p.default is not inspect.Parameter.empty and n not in COMPONENT_NAMES]
    return {n: model_index.get(n, params[n].default) for n in names}


def _component_rows(output_dir: pathlib.Path, model_index: dict) -> tuple[list[dict], dict]:
    rows, configs = [], {}
    for name in COMPONENT_NAMES:
        entry = model_index.get(name)
        if not isinstance(entry, list) or entry[1] is None:
            continue
        config = _read_json(output_dir / name / "config.json", f"component {name}")
        configs[name] = config
        params = _count_parameters(output_dir / name)
        details = [f"base_channels {config.get('base_channels')}", f"channel_mults {config.get('channel_mults')}"]
        if name == "energy_model":
            details.append("spectral norm" if config.get("spectral_norm", True) else "no spectral norm")
        if name == "generator_model":
            details.append(f"observation std {config.get('observation_std')}")
        rows.append(
            dict(name=name, class_name=entry[1], parameters=f"{params:,}" if params is not None else "n/a",
                 details=", ".join(details))
        )
    if "energy_model" not in configs and "generator_model" not in configs:
        raise ValueError(
            f"{str(output_dir)!r}: model_index.json must name an energy_model or a generator_model component, "
            f"got {sorted(k for k in model_index if not k.startswith('_'))}"
        )
    return rows, configs


def _check_metrics(metrics: Mapping | None) -> list[dict]:
    if metrics is None:
        return []
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must map metric names to values, got {type(metrics).__name__}")
    out = []
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric names must be non-empty strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"metric {name!r}: expected a number or a string, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric {name!r}: expected a finite number, got {value}")
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        out.append(dict(name=name, value=value, shown=shown))
    return out


def _check_sample_grid(output_dir: pathlib.Path, sample_grid: str | None) -> str | None:
    if sample_grid is None:
        return None
    rel = pathlib.PurePosixPath(pathlib.Path(sample_grid).as_posix())
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"sample_grid must be a path relative to output_dir inside it, got {sample_grid!r}")
    if not (output_dir / rel).is_file():
        raise ValueError(f"sample_grid {sample_grid!r} does not exist in {str(output_dir)!r}")
    return str(rel)


def _yaml_safe(value):
    return json.loads(json.dumps(value, default=str))


def write_model_card(output_dir, *, template: str = "run", dataset: str | None = None,
                     training_config: dict | None = None, metrics: dict | None = None,
                     sample_grid: str | None = None, hub_model_id: str | None = None,
                     extra_tags: list[str] | None = None, model_id: str | None = None) -> pathlib.Path:
    """Render model_cards/<template>.md for the pipeline saved in output_dir and write output_dir/README.md
    atomically. Reads the pipeline's model_index.json and component config.json files for the sampler and
    architecture. sample_grid is a path relative to output_dir (an image to embed). metrics maps names to values
    (e.g. {"fid": 9.26}) and goes into model-index too.

    Args:
        output_dir: a ``DualMCMCPipeline.save_pretrained`` (or :func:`export_for_hub`) directory.
        template: ``"run"`` (user training runs) or a paper dataset: ``"cifar10"``, ``"celeba64"``,
            ``"celebahq256"``, ``"church64"`` (see :func:`available_templates`).
        dataset: the training data key (defaults to the template's dataset; a paper template only accepts its own).
        training_config: the training settings, shown as YAML.
        metrics: measured metrics; also written to the ``model-index`` metadata.
        sample_grid: an image inside ``output_dir`` to embed.
        hub_model_id: the repository id for the usage snippet and ``model-index`` (default: the folder name).
        extra_tags: tags added to the metadata.
        model_id: the name in the title and usage snippet when there is no ``hub_model_id`` (e.g. the final
            local path when the card is written into a temporary folder; default: the folder name).

    Returns:
        The path of the written ``README.md``.
    """
    import jinja2

    output_dir = pathlib.Path(output_dir)
    if template not in available_templates():
        raise ValueError(f"unknown model card template {template!r}; expected one of {available_templates()}")
    if template in PAPER_TEMPLATES:
        if dataset is not None and dataset != template:
            raise ValueError(f"template {template!r} describes the {template} data set, got dataset={dataset!r}")
        dataset = template
    if dataset is not None and (not isinstance(dataset, str) or not dataset):
        raise ValueError(f"dataset must be a non-empty string or None, got {dataset!r}")
    if training_config is not None and not isinstance(training_config, Mapping):
        raise ValueError(f"training_config must be a dict, got {type(training_config).__name__}")
    if extra_tags is not None and (
        isinstance(extra_tags, str) or not all(isinstance(t, str) and t for t in extra_tags)
    ):
        raise ValueError(f"extra_tags must be a list of non-empty strings, got {extra_tags!r}")
    if hub_model_id is not None:
        try:
            validate_repo_id(hub_model_id)
        except HFValidationError as err:
            raise ValueError(f"hub_model_id {hub_model_id!r} is not a valid repository id: {err}") from err

    model_index = _read_json(output_dir / "model_index.json", "write_model_card")
    components, configs = _component_rows(output_dir, model_index)
    metric_rows = _check_metrics(metrics)
    grid = _check_sample_grid(output_dir, sample_grid)
    gen = configs.get("generator_model") or configs["energy_model"]  # baselines export one of the two
    model_id = hub_model_id or model_id or output_dir.resolve().name
    dataset_name, dataset_id = KNOWN_DATASETS.get(dataset, (dataset, None)) if dataset else (None, None)

    tags = list(BASE_TAGS)
    if dataset:
        tags.append(dataset)
    tags += list(extra_tags or [])
    eval_results = [
        EvalResult(
            task_type="unconditional-image-generation",
            task_name="Unconditional Image Generation",
            dataset_type=dataset_id or dataset or "unknown",
            dataset_name=dataset_name or "unknown",
            metric_type=m["name"].lower(),
            metric_name=m["name"],
            metric_value=m["value"],
        )
        for m in metric_rows
    ]
    card_data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="unconditional-image-generation",
        license=LICENSE,
        tags=tags,
        datasets=[dataset_id] if dataset_id else None,
        metrics=[m["name"].lower() for m in metric_rows] or None,
        model_name=model_id if eval_results else None,
        eval_results=eval_results or None,
    )
    training_yaml = None
    if training_config:
        training_yaml = yaml.safe_dump(_yaml_safe(dict(training_config)), sort_keys=False).rstrip()

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    content = env.get_template(f"{template}.md").render(
        card_data=card_data.to_yaml(),
        title=f"Dual-MCMC EBM: {model_id}",
        model_id=model_id,
        template=template,
        dataset=dataset,
        dataset_name=dataset_name,
        image_size=gen.get("image_size"),
        num_channels=gen.get("num_channels"),
        latent_dim=gen.get("latent_dim"),
        components=components,
        has_encoder="encoder" in configs,
        sampler=_sampler_settings(model_index),
        remote_code=isinstance(model_index.get("_class_name"), list),
        training_config_yaml=training_yaml,
        metrics=[dict(name=m["name"], value=m["shown"]) for m in metric_rows],
        sample_grid=grid,
    )
    card = ModelCard(content)  # parses and validates the YAML front matter
    path = output_dir / "README.md"
    _atomic_write_text(path, str(card))
    return path


# ----------------------------------------------------------------------------------------------------------------
# Remote code
# ----------------------------------------------------------------------------------------------------------------


def _module_source(name: str) -> tuple[str, ast.Module]:
    module = importlib.import_module(f"{PACKAGE}.{name}")
    source = pathlib.Path(module.__file__).read_text(encoding="utf-8")
    return source, ast.parse(source)


def _internal_target(node: ast.AST, name: str) -> str | None:
    """The hf_dualmcmc module (short name) an import statement imports from, or None for other libraries."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                raise ValueError(f"cannot export {PACKAGE}.{name}: `import {alias.name}` (use `from .x import y`)")
        return None
    if not isinstance(node, ast.ImportFrom):
        return None
    if node.level == 0:
        if node.module is None or not (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
            return None
        target = node.module[len(PACKAGE) + 1:]
    elif node.level == 1:
        target = node.module or ""
    else:
        raise ValueError(f"cannot export {PACKAGE}.{name}: relative import beyond the package (line {node.lineno})")
    if not target or "." in target:
        raise ValueError(
            f"cannot export {PACKAGE}.{name}: `from {'.' * node.level}{node.module or ''} import ...` (line "
            f"{node.lineno}); only `from .module import names` of top-level {PACKAGE} modules can be merged"
        )
    return target


def _closure(root: str) -> list[str]:
    """``root`` and the hf_dualmcmc modules it imports, dependencies first."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"cannot export {PACKAGE}.{root}: circular import through {name}")
        visiting.add(name)
        _, tree = _module_source(name)
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            target = _internal_target(node, name)
            if target is None:
                continue
            if id(node) not in top:
                raise ValueError(
                    f"cannot export {PACKAGE}.{name}: import of .{target} inside a function or block (line "
                    f"{node.lineno}); only top-level imports can be merged"
                )
            visit(target)
        visiting.discard(name)
        order.append(name)

    visit(root)
    return order


def _bindings(tree: ast.Module, source: str, name: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = ("def", ast.get_source_segment(source, node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id != "__all__":
                    out[t.id] = ("def", ast.get_source_segment(source, node))
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and _internal_target(node, name) is None:
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                module = getattr(node, "module", None)
                out[bound] = ("import", f"{module}:{alias.name}:{alias.asname}")
    return out


def generate_remote_code(module: str) -> str:
    """Self-contained source of ``hf_dualmcmc.<module>`` with every hf_dualmcmc module it imports merged in.

    Modules are concatenated dependencies first, verbatim except for: their docstrings, ``from __future__``
    lines and ``__all__`` (one of each for the merged file) and the imports between them (dropped; ``as`` aliases
    become assignments). Raises ``ValueError`` for imports it cannot merge or for a top-level name defined
    differently in two merged modules.
    """
    from . import __version__

    names = _closure(module)
    seen: dict[str, tuple[str, tuple[str, str]]] = {}
    all_names: list[str] = []
    docs, parts = [], []
    for name in names:
        source, tree = _module_source(name)
        for bound, kind in _bindings(tree, source, name).items():
            if bound in seen and seen[bound][1] != kind:
                raise ValueError(
                    f"cannot merge {PACKAGE}.{seen[bound][0]} and {PACKAGE}.{name}: both define {bound!r} differently"
                )
            seen.setdefault(bound, (name, kind))
        lines = source.splitlines(keepends=True)
        drop: dict[int, str] = {}  # first line index -> replacement; other dropped lines -> ""
        for i, node in enumerate(tree.body):
            replacement = None
            if i == 0 and isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant):
                if isinstance(node.value.value, str):
                    docs.append((name, node.value.value.strip().splitlines()[0]))
                    replacement = ""
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                replacement = ""
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and _internal_target(node, name) is not None:
                replacement = "".join(f"{a.asname} = {a.name}\n" for a in node.names if a.asname and a.asname != a.name)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                try:
                    all_names += [n for n in ast.literal_eval(node.value) if n not in all_names]
                except ValueError as err:
                    raise ValueError(f"cannot export {PACKAGE}.{name}: __all__ is not a literal list") from err
                replacement = ""
            if replacement is not None:
                for j in range(node.lineno - 1, node.end_lineno):
                    drop[j] = ""
                drop[node.lineno - 1] = replacement
        body = "".join(drop.get(j, line) for j, line in enumerate(lines)).strip("\n")
        parts.append(f"# {'-' * 100}\n# from {PACKAGE}/{name}.py\n# {'-' * 100}\n\n{body}\n")
    header = (
        f'"""Dual-MCMC (Cui & Han, NeurIPS 2023) -- code for loading with ``trust_remote_code=True``.\n\n'
        f"Generated by ``hf_dualmcmc.hub.export_for_hub`` from hf-dualmcmc {__version__}; do not edit: regenerate.\n"
        f"Self-contained merge of: {', '.join(f'{PACKAGE}/{n}.py' for n in names)}.\n\n"
        + "".join(f"* {n}: {line}\n" for n, line in docs)
        + '"""\n\nfrom __future__ import annotations\n\n'
    )
    code = header + "\n\n".join(parts) + f"\n\n__all__ = {all_names!r}\n"
    compile(code, f"<generated {module}.py>", "exec")
    return code


def _source_directory(pipeline_or_dir, tmp: pathlib.Path) -> None:
    from .pipeline_dualmcmc import DualMCMCPipeline

    if isinstance(pipeline_or_dir, DualMCMCPipeline):
        pipeline_or_dir.save_pretrained(tmp)
        return
    if not isinstance(pipeline_or_dir, (str, os.PathLike)):
        raise ValueError(
            f"export_for_hub needs a DualMCMCPipeline or a saved pipeline directory, got {type(pipeline_or_dir).__name__}"
        )
    src = pathlib.Path(pipeline_or_dir)
    if not (src / "model_index.json").is_file():
        raise ValueError(f"{str(src)!r} is not a saved pipeline directory: expected {str(src / 'model_index.json')!r}")
    shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".*"))


REMOTE_CODE_SECTION = """
## Loading without hf-dualmcmc

This repository ships its model code (`pipeline_dualmcmc.py`, `*/modeling_dualmcmc.py`):

```python
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{model_id}", trust_remote_code=True)
```
"""


def export_for_hub(pipeline_or_dir, output_dir, *, overwrite: bool = False) -> pathlib.Path:
    """Write a pipeline in the layout diffusers loads with ``trust_remote_code=True`` (no hf_dualmcmc needed).

    Args:
        pipeline_or_dir: a :class:`~hf_dualmcmc.DualMCMCPipeline` or a directory written by its ``save_pretrained``
            (or by an earlier export).
        output_dir: the directory to write; built next to it and moved into place when complete.
        overwrite: replace an existing ``output_dir`` (may be the source directory itself).

    The result loads with ``DiffusionPipeline.from_pretrained(output_dir, trust_remote_code=True)`` and, with this
    package installed, ``DualMCMCPipeline.from_pretrained(output_dir, trust_remote_code=True)``; each component
    also loads with ``transformers.AutoModel.from_pretrained(output_dir / name, trust_remote_code=True)``. An
    existing README.md is kept and gets a "Loading without hf-dualmcmc" section if it has none.

    Returns:
        ``output_dir``.
    """
    output_dir = pathlib.Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise ValueError(f"output directory {str(output_dir)!r} exists; pass overwrite=True to replace it")
    with atomic_directory(output_dir) as tmp:
        _source_directory(pipeline_or_dir, tmp)
        index_path = tmp / "model_index.json"
        index = _read_json(index_path, "export_for_hub")
        if index.get("_class_name") not in ("DualMCMCPipeline", [PIPELINE_MODULE, "DualMCMCPipeline"]):
            raise ValueError(
                f"export_for_hub: model_index.json _class_name must be 'DualMCMCPipeline', got {index.get('_class_name')!r}"
            )
        index["_class_name"] = [PIPELINE_MODULE, "DualMCMCPipeline"]
        modeling_code = generate_remote_code(MODELING_MODULE)
        for name in COMPONENT_NAMES:
            entry = index.get(name)
            if not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
                continue
            if entry[1] not in MODEL_CLASSES:
                raise ValueError(
                    f"export_for_hub: component {name} is a {entry[1]!r}; expected one of {sorted(MODEL_CLASSES)}"
                )
            config_path = tmp / name / "config.json"
            config = _read_json(config_path, f"component {name}")
            config["auto_map"] = {
                "AutoConfig": f"{MODELING_MODULE}.{MODEL_CLASSES[entry[1]]}",
                "AutoModel": f"{MODELING_MODULE}.{entry[1]}",
            }
            _atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
            _atomic_write_text(tmp / name / f"{MODELING_MODULE}.py", modeling_code)
            index[name] = [MODELING_MODULE, entry[1]]
        _atomic_write_text(tmp / f"{PIPELINE_MODULE}.py", generate_remote_code(PIPELINE_MODULE))
        _atomic_write_text(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
        readme = tmp / "README.md"
        if readme.is_file():
            text = readme.read_text(encoding="utf-8")
            if "trust_remote_code=True" not in text:
                model_id = output_dir.resolve().name
                _atomic_write_text(readme, text.rstrip("\n") + "\n" + REMOTE_CODE_SECTION.format(model_id=model_id))
    return output_dir


# ----------------------------------------------------------------------------------------------------------------
# Upload
# ----------------------------------------------------------------------------------------------------------------


def _offline() -> bool:
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").strip().upper()
    return constants.HF_HUB_OFFLINE or env in {"1", "ON", "YES", "TRUE"}


def push_pipeline_to_hub(output_dir, repo_id: str, *, private: bool = False, token: str | None = None,
                         commit_message: str = "Upload Dual-MCMC pipeline"):
    """Create (or reuse) the model repository ``repo_id`` and upload the pipeline directory ``output_dir``.

    Args:
        output_dir: a saved (optionally exported) pipeline directory with ``model_index.json``; write its
            README.md with :func:`write_model_card` first.
        repo_id: ``"user/name"``.
        private: create the repository as private (an existing repository keeps its visibility).
        token: a Hub token (default: the logged-in one).
        commit_message: the commit message of the upload.

    Returns:
        The :class:`huggingface_hub.CommitInfo` of the upload.

    Raises:
        ValueError: ``output_dir`` is not a pipeline directory or ``repo_id`` is invalid.
        huggingface_hub.errors.OfflineModeIsEnabled: ``HF_HUB_OFFLINE`` is set (nothing is sent).
    """
    output_dir = pathlib.Path(output_dir)
    if not (output_dir / "model_index.json").is_file():
        raise ValueError(f"{str(output_dir)!r} is not a saved pipeline directory: expected model_index.json in it")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"repo_id {repo_id!r} is not a valid repository id: {err}") from err
    if not (output_dir / "README.md").is_file():
        logger.warning("%s has no README.md: call hf_dualmcmc.hub.write_model_card first", output_dir)
    if _offline():
        raise OfflineModeIsEnabled(
            f"cannot push {str(output_dir)!r} to {repo_id!r}: Hugging Face Hub offline mode is enabled "
            "(HF_HUB_OFFLINE); unset it to upload"
        )
    api = HfApi(token=token)
    repo = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=str(output_dir),
        repo_type="model",
        commit_message=commit_message,
        ignore_patterns=[".*", "**/.*", "**/__pycache__/**", "*.pyc"],
    )


__all__ = [
    "available_templates",
    "export_for_hub",
    "generate_remote_code",
    "push_pipeline_to_hub",
    "write_model_card",
]

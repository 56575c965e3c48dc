"""Sharing ``DualMCMCPipeline``s on the Hub: model cards, the uploaded layout, upload.

* :func:`write_model_card`: ``README.md`` from ``model_cards/model_card.md`` via ``ModelCard.from_template``.
* :func:`export_for_hub`: the layout every upload path sends (:func:`push_to_hub` behind
  ``DualMCMCPipeline.push_to_hub`` and ``save_pretrained(..., push_to_hub=True)``, :func:`push_pipeline_to_hub`
  behind ``train.py --push_to_hub`` and ``export_for_hub.py --push``).

One uploaded layout, two loaders. The repository holds the weights, ``model_index.json`` naming
``["pipeline_dualmcmc", "DualMCMCPipeline"]`` and ``["modeling_dualmcmc", "<Model>"]``, and those code files:

* with hf-dualmcmc installed, ``DualMCMCPipeline.from_pretrained(repo_id)`` downloads the weights and configs only
  and builds the pipeline from the installed classes: nothing from the repository runs, no flag is needed;
* without it, ``DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)`` runs the shipped files, and
  without the flag diffusers itself says to pass it (as transformers does for ``AutoModel`` on a component).

``DiffusionPipeline.from_pretrained(repo_id)`` without the flag cannot load any repository that can also load
without this package: diffusers 0.42 loads a ``model_index.json`` whose ``_class_name`` is a list only as remote
code (the flag is then required, package or not), and one whose ``_class_name`` is a plain name only from an
attribute of the ``diffusers`` module (which exists only after ``import hf_dualmcmc``) and, from a Hub id, only
when each component's library is diffusers or transformers (``_get_custom_components_and_folders``). Local
``save_pretrained`` folders keep diffusers' own layout, which ``DiffusionPipeline.from_pretrained(dir)`` loads after
``import hf_dualmcmc``.

Why the export ships ``modeling_dualmcmc.py`` with ``configuration_dualmcmc.py`` inlined instead of the two files
that transformers' ``custom_object_save`` would copy: diffusers (0.42) copies a code file into its module cache
with the files it imports *directly*, not recursively (for a local folder, and a Hub repository is loaded from its
snapshot folder), so the files ``pipeline_dualmcmc.py`` imports must not import further files; and from a Hub
repository ``snapshot_download`` fetches only ``<component>/<module>.py`` of a component's code, so a component
file must be self-contained. ``pipeline_dualmcmc.py`` (and ``langevin.py``, which imports nothing relative) ship as
copies. ``tests/test_hub.py`` loads uploads back through a local Hub server (``tests/hub_server.py``) that runs
huggingface_hub's and diffusers' own download code, with and without this package.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Mapping

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .atomic import atomic_directory, atomic_write

TEMPLATE_PATH = pathlib.Path(__file__).resolve().parent / "model_cards" / "model_card.md"
TEMPLATES = ("run", "cifar10", "celeba64", "celebahq256", "church64")  # "run" and the paper's data sets
COMPONENT_NAMES = ("energy_model", "generator_model", "encoder")
BASE_TAGS = ["energy-based-model", "ebm", "dual-mcmc", "langevin", "unconditional-image-generation", "diffusers"]
KNOWN_DATASETS = {  # dataset key -> (pretty name, Hub dataset id or None)
    "cifar10": ("CIFAR-10", "uoft-cs/cifar10"),
    "celeba64": ("CelebA 64x64", None),
    "celebahq256": ("CelebA-HQ 256x256", None),
    "church64": ("LSUN Church 64x64", None),
    "mnist": ("MNIST", "ylecun/mnist"),
}
DEFAULT_LICENSE = "apache-2.0"  # the license of this project's code; cards of trained weights default to it
REMOTE_CODE_SECTION = """## Loading without hf-dualmcmc

This repository ships its code (the `.py` files next to `model_index.json` and in the component folders), so it
loads with diffusers alone. `trust_remote_code=True` runs those files: read them first.

```python
# pip install torch diffusers transformers safetensors
import torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{model_id}", trust_remote_code=True)
images = pipe(batch_size=16, generator=torch.Generator().manual_seed(0)).images
```"""


def install_line() -> str:
    """How to install this package, for cards: a pip line for the source repository in the package metadata
    (``[project.urls] Repository``), as hf-dualmcmc is not released on PyPI."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("hf-dualmcmc").get_all("Project-URL") or []
    except PackageNotFoundError:
        urls = []
    repository = next((u.split(",", 1)[1].strip() for u in urls if u.split(",", 1)[0].strip() == "Repository"), None)
    if repository:
        return f'pip install "hf-dualmcmc @ git+{repository}"'
    return "pip install -e .  # in a clone of the hf-dualmcmc source repository (it is not on PyPI)"


def _read_json(path: pathlib.Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{what}: expected {str(path)!r} (a DualMCMCPipeline save_pretrained directory)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: {str(path)!r} is not valid JSON ({err})") from err


def check_license(license: str) -> str:
    """``license`` when it has the form of a Hub license identifier (``apache-2.0``, ``mit``, ``cc-by-4.0``, ``other``)."""
    if not isinstance(license, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", license):
        raise ValueError(
            f"license must be a Hub license identifier such as 'apache-2.0', 'mit', 'cc-by-nc-4.0' or "
            f"'other' (lower case), got {license!r}"
        )
    return license


def _check_repo_id(repo_id: str, what: str = "repo_id") -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"{what} {repo_id!r} is not a valid repository id: {err}") from err


def _count_parameters(folder: pathlib.Path) -> int | None:
    """Trainable parameters in a component folder's safetensors files (buffers: BN statistics, SN vectors excluded)."""
    from safetensors import safe_open

    buffers = ("running_mean", "running_var", "num_batches_tracked", "._u", "._v", "weight_u", "weight_v")
    files = sorted(folder.glob("*.safetensors"))
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if not k.endswith(buffers))
    return total if files else None


def _check_card_inputs(output_dir, metrics, sample_grid, extra_tags) -> str | None:
    if metrics is not None and not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must map metric names to values, got {type(metrics).__name__}")
    for name, value in (metrics or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric names must be non-empty strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"metric {name!r}: expected a number or a string, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric {name!r}: expected a finite number, got {value}")
    if extra_tags is not None and (
        isinstance(extra_tags, str) or not all(isinstance(t, str) and t for t in extra_tags)
    ):
        raise ValueError(f"extra_tags must be a list of non-empty strings, got {extra_tags!r}")
    if sample_grid is None:
        return None
    rel = pathlib.PurePosixPath(pathlib.Path(sample_grid).as_posix())
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"sample_grid must be a path relative to output_dir inside it, got {sample_grid!r}")
    if not (output_dir / rel).is_file():
        raise ValueError(f"sample_grid {sample_grid!r} does not exist in {str(output_dir)!r}")
    return str(rel)


def write_model_card(
    output_dir,
    *,
    template: str = "run",
    dataset: str | None = None,
    training_config: dict | None = None,
    metrics: dict | None = None,
    sample_grid: str | None = None,
    hub_model_id: str | None = None,
    extra_tags: list[str] | None = None,
    model_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    base_model: str | None = None,
) -> pathlib.Path:
    """Render ``model_cards/model_card.md`` for the pipeline saved in ``output_dir`` into ``output_dir/README.md``
    (atomically) and return its path. The sampler settings come from ``model_index.json`` (what the pipeline
    registered: no deprecated aliases), the architecture and parameter counts from the component folders.

    Args:
        output_dir: a ``DualMCMCPipeline.save_pretrained`` (or :func:`export_for_hub`) directory.
        template: ``"run"`` (user training runs) or a paper data set (:data:`TEMPLATES`), which selects the card's
            data-set texts (data, the authors' setting and reported FID).
        dataset: the training data key (defaults to the template's data set; a paper template only accepts its own).
        training_config: the training settings, shown as YAML.
        metrics: measured metrics (``{"FID": 9.26}``); also written to the ``model-index`` metadata.
        sample_grid: an image inside ``output_dir`` to embed (a relative path).
        hub_model_id: the repository id for the usage snippet and ``model-index`` (default: the folder name).
        extra_tags: tags added to the metadata.
        model_id: the name shown when there is no ``hub_model_id`` (default: the folder name).
        license: the card's ``license`` (a Hub license identifier; default ``"apache-2.0"``, this project's).
        base_model: the Hub id of the model these weights come from (``base_model`` metadata), e.g. for a
            conversion of weights that are on the Hub.
    """
    output_dir = pathlib.Path(output_dir)
    if template not in TEMPLATES:
        raise ValueError(f"unknown model card template {template!r}; expected one of {list(TEMPLATES)}")
    if template != "run":
        if dataset is not None and dataset != template:
            raise ValueError(f"template {template!r} describes the {template} data set, got dataset={dataset!r}")
        dataset = template
    if dataset is not None and (not isinstance(dataset, str) or not dataset):
        raise ValueError(f"dataset must be a non-empty string or None, got {dataset!r}")
    if training_config is not None and not isinstance(training_config, Mapping):
        raise ValueError(f"training_config must be a dict, got {type(training_config).__name__}")
    if hub_model_id is not None:
        _check_repo_id(hub_model_id, "hub_model_id")
    check_license(license)
    if base_model is not None:
        _check_repo_id(base_model, "base_model")
    grid = _check_card_inputs(output_dir, metrics, sample_grid, extra_tags)

    model_index = _read_json(output_dir / "model_index.json", "write_model_card")
    sampler = {k: v for k, v in model_index.items() if not k.startswith("_") and k not in COMPONENT_NAMES}
    if "num_inference_steps" not in sampler:
        raise ValueError(
            f"{str(output_dir / 'model_index.json')!r} has no 'num_inference_steps' (saved by an older "
            "hf-dualmcmc? load it with DualMCMCPipeline.from_pretrained and save it again)"
        )
    components = [
        dict(
            name=name,
            class_name=model_index[name][1],
            parameters=_count_parameters(output_dir / name),
            config=_read_json(output_dir / name / "config.json", f"component {name}"),
        )
        for name in COMPONENT_NAMES
        if isinstance(model_index.get(name), list) and model_index[name][1] is not None
    ]
    configs = {c["name"]: c["config"] for c in components}
    shapes = configs.get("generator_model") or configs.get("energy_model")  # baselines export one of the two
    if shapes is None:
        raise ValueError(
            f"{str(output_dir)!r}: model_index.json must name an energy_model or a generator_model "
            f"component, got {sorted(k for k in model_index if not k.startswith('_'))}"
        )
    model_id = hub_model_id or model_id or output_dir.resolve().name
    dataset_name, dataset_id = KNOWN_DATASETS.get(dataset, (dataset, None)) if dataset else (None, None)
    if dataset and dataset not in KNOWN_DATASETS:
        from .data import hub_dataset_id

        dataset_id = hub_dataset_id(dataset)  # a data.source that is a Hub dataset repository
    measured = list((metrics or {}).items())
    eval_results = [
        EvalResult(
            task_type="unconditional-image-generation",
            task_name="Unconditional Image Generation",
            dataset_type=dataset_id or dataset or "unknown",
            dataset_name=dataset_name or "unknown",
            metric_type=name.lower(),
            metric_name=name,
            metric_value=value,
        )
        for name, value in measured
    ]
    card_data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="unconditional-image-generation",
        license=license,
        base_model=base_model,
        tags=BASE_TAGS + ([dataset] if dataset else []) + list(extra_tags or []),
        datasets=[dataset_id] if dataset_id else None,
        metrics=[name.lower() for name, _ in measured] or None,
        model_name=model_id if eval_results else None,
        eval_results=eval_results or None,
    )
    training_yaml = None
    if training_config:
        plain = json.loads(json.dumps(dict(training_config), default=str))  # paths etc. -> YAML-safe values
        training_yaml = yaml.safe_dump(plain, sort_keys=False).rstrip()
    remote_code = isinstance(model_index.get("_class_name"), list)
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        template=template,
        model_id=model_id,
        dataset_name=dataset_name,
        image_size=shapes.get("image_size"),
        num_channels=shapes.get("num_channels"),
        latent_dim=shapes.get("latent_dim"),
        components=components,
        has_encoder="encoder" in configs,
        sampler=sampler,
        remote_code_section=REMOTE_CODE_SECTION.format(model_id=model_id) if remote_code else None,
        training_config_yaml=training_yaml,
        sample_grid=grid,
        install_line=install_line(),
        measured=[dict(name=n, value=f"{v:.6g}" if isinstance(v, float) else v) for n, v in measured],
    )
    path = output_dir / "README.md"
    atomic_write(path, str(card).rstrip() + "\n")
    return path


def self_contained_source(path: str | os.PathLike) -> str:
    """The source of the module file ``path`` with each top-level ``from .module import ...`` replaced by the code
    of ``module.py`` from the same folder (recursively, each module once, its ``from __future__`` line dropped).

    Raises ``ValueError`` for relative imports it cannot inline (``..``, ``as`` aliases, inside a block).
    """

    def inline(path: pathlib.Path, seen: set, top: bool) -> str:
        seen.add(path)
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        nested = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level and n not in tree.body]
        if nested:
            raise ValueError(f"{path.name} line {nested[0].lineno}: a relative import inside a block cannot be inlined")
        lines = source.splitlines(keepends=True)
        replacements = []  # in file order, so that dependencies are inlined before the modules that use them
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__" and not top:
                replacements.append((node, ""))
            elif isinstance(node, ast.ImportFrom) and node.level:
                dep = path.with_name(f"{node.module}.py")
                if node.level != 1 or any(a.asname for a in node.names) or not dep.is_file():
                    raise ValueError(
                        f"{path.name} line {node.lineno}: only `from .module import name` of a module "
                        f"in {str(path.parent)!r} can be inlined"
                    )
                replacements.append((node, "" if dep in seen else inline(dep, seen, top=False)))
        for node, text in reversed(replacements):
            lines[node.lineno - 1 : node.end_lineno] = [text]
        return "".join(lines)

    return inline(pathlib.Path(path), set(), top=True)


def _copy_tree(source: pathlib.Path, target: pathlib.Path) -> None:
    """Copy the files of ``source`` into ``target`` with default modes (no hidden entries, no ``__pycache__``)."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_dir() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / rel)  # contents only: not the source's mode


TITLE = re.compile(r"^# Dual-MCMC EBM: (?P<id>.+)$", re.MULTILINE)


def retarget_card(readme: str | os.PathLike, repo_id: str) -> bool:
    """Point a card written by :func:`write_model_card` at ``repo_id``: its title, its ``from_pretrained("...")``
    snippets and its ``model-index`` name. Returns ``False`` (and changes nothing) for a README.md that this project
    did not write (no card title), which is kept as it is."""
    readme = pathlib.Path(readme)
    _check_repo_id(repo_id)
    card = ModelCard.load(readme)
    match = TITLE.search(card.text)
    if match is None:
        return False
    old = match.group("id").strip()
    text = TITLE.sub(f"# Dual-MCMC EBM: {repo_id}", card.text, count=1)
    card.text = text.replace(f'from_pretrained("{old}"', f'from_pretrained("{repo_id}"')
    if card.data.eval_results:
        card.data.model_name = repo_id
    atomic_write(readme, str(card).rstrip() + "\n")
    return True


# what a pipeline folder of this project holds (save_pretrained, export_for_hub, the converter, a run's pipeline/)
PIPELINE_FILES = ("model_index.json", "README.md", "samples.png", "training_config.yaml")
COMPONENT_FILE = re.compile(r"config\.json|modeling_dualmcmc\.py|model(-\d+-of-\d+)?\.safetensors(\.index\.json)?")


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """The entries of ``folder`` that a pipeline folder of this project does not hold: what replacing it would
    destroy. Ours: ``model_index.json`` naming ``DualMCMCPipeline``, :data:`PIPELINE_FILES`, and per component folder
    ``config.json``, ``modeling_dualmcmc.py`` and the safetensors weights, the code files the export ships
    (``pipeline_dualmcmc.py`` and what it imports; ``__pycache__`` is ignored). Anything else
    (``.git``, a checkpoint, notes, a symlink) is foreign, a foreign folder is named once (``name/``); a folder
    without that ``model_index.json`` holds no pipeline, so all its entries are foreign."""
    from diffusers.utils.dynamic_modules_utils import get_relative_imports

    import hf_dualmcmc

    folder = pathlib.Path(folder)
    code = pathlib.Path(inspect.getfile(hf_dualmcmc.DualMCMCPipeline))
    top = (*PIPELINE_FILES, code.name, *(f"{m}.py" for m in get_relative_imports(code)))

    def ours(path: pathlib.Path, names, component: bool) -> bool:
        if path.is_symlink():
            return False
        if path.is_dir():
            return path.name == "__pycache__" or (not component and path.name in COMPONENT_NAMES)
        return path.name in names or (component and COMPONENT_FILE.fullmatch(path.name) is not None)

    foreign = []
    for path in sorted(folder.iterdir()):
        if not ours(path, top, False):
            foreign.append(path.name + "/" * path.is_dir())
        elif path.is_dir() and path.name != "__pycache__":
            foreign += [
                f"{path.name}/{p.name}" + "/" * p.is_dir() for p in sorted(path.iterdir()) if not ours(p, (), True)
            ]
    try:
        class_name = json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        class_name = None
    if (class_name[-1] if isinstance(class_name, list) and class_name else class_name) != "DualMCMCPipeline":
        return sorted(p.name + "/" * p.is_dir() for p in folder.iterdir())
    return foreign


def check_apart(output: str | os.PathLike, inputs, what: str = "output") -> pathlib.Path:
    """Refuse an ``output`` that is, contains or lies inside one of ``inputs`` (paths; resolved, links followed)."""
    output = pathlib.Path(output)
    resolved = output.resolve()
    for source in inputs:
        src = pathlib.Path(source).resolve()
        if resolved == src or resolved in src.parents or src in resolved.parents:
            relation = "is" if resolved == src else "contains" if resolved in src.parents else "is inside"
            raise ValueError(
                f"{what} {str(output)!r} {relation} the input {str(source)!r}; nothing was written: "
                "choose an output outside the input"
            )
    return output


def check_output_dir(
    output_dir: str | os.PathLike, *, overwrite: bool, inputs=(), what: str = "output directory"
) -> pathlib.Path:
    """Refuse, before anything is written, an ``output_dir`` whose replacement would lose what this project did not
    write: one that is, contains or lies inside one of ``inputs``; an existing file; an existing folder without
    ``overwrite``; and (even with it) a non-empty folder with :func:`foreign_files`, which are named."""
    output_dir = check_apart(output_dir, inputs, what)
    if output_dir.is_symlink() or (output_dir.exists() and not output_dir.is_dir()):
        raise ValueError(f"{what} {str(output_dir)!r} exists and is not a folder; nothing was written")
    if output_dir.exists():
        if not overwrite:
            raise ValueError(f"{what} {str(output_dir)!r} exists; pass overwrite=True to replace it")
        foreign = foreign_files(output_dir)
        if foreign:
            shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
            raise ValueError(
                f"{what} {str(output_dir)!r} holds files hf-dualmcmc did not write ({shown}); overwrite "
                "replaces only a pipeline folder this project wrote: move them or choose another folder"
            )
    return output_dir


def export_for_hub(
    pipeline_or_dir, output_dir, *, overwrite: bool = False, hub_model_id: str | None = None
) -> pathlib.Path:
    """Write ``pipeline_or_dir`` (a ``DualMCMCPipeline`` or its ``save_pretrained`` / exported directory) to
    ``output_dir`` (atomically) in the layout that is uploaded to the Hub. ``overwrite`` replaces only a pipeline
    folder this project wrote (:func:`check_output_dir`), the source itself included (an in-place re-export); an
    output that contains the source, or lies inside it, is refused.

    ``model_index.json`` names ``["pipeline_dualmcmc", "DualMCMCPipeline"]`` and ``["modeling_dualmcmc", "<Model>"]``
    per component; each component's ``config.json`` gets an ``auto_map`` (``AutoConfig``, ``AutoModel``). The code is
    this installed package's (see the module docstring). ``DualMCMCPipeline.from_pretrained`` loads the result
    without running that code; ``DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`` loads it without
    this package. The card (README.md; written when the source has none) gets a "Loading without hf-dualmcmc"
    section and names ``hub_model_id`` (default: the folder name) in its title and code.

    ```python
    >>> export_for_hub(pipe, "dualmcmc-digits")
    >>> DiffusionPipeline.from_pretrained("dualmcmc-digits", trust_remote_code=True)  # no hf_dualmcmc needed
    >>> push_pipeline_to_hub("dualmcmc-digits", "org/dualmcmc-digits")
    ```
    """
    from diffusers.utils.dynamic_modules_utils import get_relative_imports
    from transformers import PreTrainedModel

    import hf_dualmcmc

    output_dir = pathlib.Path(output_dir)
    source = [pipeline_or_dir] if isinstance(pipeline_or_dir, str | os.PathLike) else []
    same = source and pathlib.Path(pipeline_or_dir).resolve() == output_dir.resolve()  # in place: checked as output
    check_output_dir(output_dir, overwrite=overwrite, inputs=[] if same else source)
    if hub_model_id is not None:
        _check_repo_id(hub_model_id, "hub_model_id")
    if not isinstance(pipeline_or_dir, (hf_dualmcmc.DualMCMCPipeline, str, os.PathLike)):
        raise ValueError(
            f"export_for_hub needs a DualMCMCPipeline or a saved pipeline directory, "
            f"got {type(pipeline_or_dir).__name__}"
        )
    if not isinstance(pipeline_or_dir, hf_dualmcmc.DualMCMCPipeline):
        source = pathlib.Path(pipeline_or_dir)
        if not (source / "model_index.json").is_file():
            raise ValueError(f"{str(source)!r} is not a saved pipeline directory: expected model_index.json in it")
    model_id = hub_model_id or output_dir.resolve().name
    with atomic_directory(output_dir) as tmp:
        if isinstance(pipeline_or_dir, hf_dualmcmc.DualMCMCPipeline):
            pipeline_or_dir.save_pretrained(tmp)
        else:
            _copy_tree(source, tmp)
        index = _read_json(tmp / "model_index.json", "export_for_hub")
        class_name = index.get("_class_name")
        if (class_name[-1] if isinstance(class_name, list) else class_name) != "DualMCMCPipeline":
            raise ValueError(
                f"export_for_hub: model_index.json _class_name must be 'DualMCMCPipeline', got {class_name!r}"
            )
        pipeline_file = pathlib.Path(inspect.getfile(hf_dualmcmc.DualMCMCPipeline))
        shutil.copyfile(pipeline_file, tmp / pipeline_file.name)
        for module in get_relative_imports(pipeline_file):  # what diffusers copies along; each must stand alone
            atomic_write(tmp / f"{module}.py", self_contained_source(pipeline_file.with_name(f"{module}.py")))
        index["_class_name"] = [pipeline_file.stem, "DualMCMCPipeline"]
        for name in COMPONENT_NAMES:
            if not isinstance(index.get(name), list) or index[name][-1] is None:
                continue
            cls = getattr(hf_dualmcmc, index[name][-1], None)
            if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)):
                raise ValueError(f"export_for_hub: component {name} is a {index[name][-1]!r}, not an hf_dualmcmc model")
            code_file = pathlib.Path(inspect.getfile(cls))
            atomic_write(tmp / name / code_file.name, self_contained_source(code_file))
            config = _read_json(tmp / name / "config.json", f"component {name}")
            config["auto_map"] = {
                "AutoConfig": f"{code_file.stem}.{cls.config_class.__name__}",
                "AutoModel": f"{code_file.stem}.{cls.__name__}",
            }
            atomic_write(tmp / name / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
            index[name] = [code_file.stem, cls.__name__]
        atomic_write(tmp / "model_index.json", json.dumps(index, indent=2, sort_keys=True) + "\n")
        readme = tmp / "README.md"
        if not readme.is_file():
            write_model_card(tmp, model_id=model_id)
        else:
            if hub_model_id:
                retarget_card(readme, hub_model_id)
            if "trust_remote_code=True" not in (text := readme.read_text(encoding="utf-8")):
                atomic_write(readme, f"{text.rstrip()}\n\n{REMOTE_CODE_SECTION.format(model_id=model_id)}\n")
    return output_dir


def push_pipeline_to_hub(
    output_dir,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    revision: str | None = None,
):
    """Create (or reuse) the model repository ``repo_id`` and upload ``output_dir`` (a saved or exported pipeline
    directory) in the uploaded layout of :func:`export_for_hub`, its card pointed at ``repo_id``. ``private``
    applies to a new repository only; ``revision``: the branch to commit to (default ``main``).

    Returns the upload's :class:`huggingface_hub.CommitInfo` (``.oid``: the commit, a ``revision=`` to load).
    Raises ``ValueError`` for a directory without ``model_index.json`` or an invalid ``repo_id``; with
    ``HF_HUB_OFFLINE`` set, ``huggingface_hub`` raises ``OfflineModeIsEnabled`` before anything is sent.
    """
    output_dir = pathlib.Path(output_dir)
    if not (output_dir / "model_index.json").is_file():
        raise ValueError(f"{str(output_dir)!r} is not a saved pipeline directory: expected model_index.json in it")
    _check_repo_id(repo_id)
    with tempfile.TemporaryDirectory() as tmp:
        staged = export_for_hub(output_dir, pathlib.Path(tmp) / "upload", hub_model_id=repo_id)
        api = HfApi(token=token)
        repo = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        return api.upload_folder(
            repo_id=repo.repo_id,
            folder_path=str(staged),
            repo_type="model",
            create_pr=create_pr,
            revision=revision,
            commit_message=commit_message or "Upload Dual-MCMC pipeline",
        )


def push_to_hub(
    pipeline,
    repo_id: str,
    *,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    create_pr: bool = False,
    revision: str | None = None,
    **card_kwargs,
):
    """Save ``pipeline`` to a temporary folder, write its model card for ``repo_id`` (``card_kwargs``: ``template``,
    ``dataset``, ``training_config``, ``metrics``, ``extra_tags``, ``license``, ``base_model`` of
    :func:`write_model_card`) and upload both with :func:`push_pipeline_to_hub`. The other arguments are those of
    diffusers' ``push_to_hub``.
    """
    _check_repo_id(repo_id)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.save_pretrained(tmp)
        write_model_card(tmp, hub_model_id=repo_id, **card_kwargs)
        return push_pipeline_to_hub(
            tmp,
            repo_id,
            private=private,
            token=token,
            commit_message=commit_message,
            create_pr=create_pr,
            revision=revision,
        )


__all__ = [
    "DEFAULT_LICENSE",
    "TEMPLATES",
    "check_apart",
    "check_license",
    "check_output_dir",
    "export_for_hub",
    "foreign_files",
    "install_line",
    "push_pipeline_to_hub",
    "push_to_hub",
    "retarget_card",
    "self_contained_source",
    "write_model_card",
]

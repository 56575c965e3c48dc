"""Sharing ``DualMCMCPipeline``s on the Hub: model cards (:func:`write_model_card`) and the uploaded layout
(:func:`export_for_hub`, behind every upload path: :func:`push_to_hub`, :func:`push_pipeline_to_hub`). An upload loads
with hf-dualmcmc (``DualMCMCPipeline.from_pretrained``: no repository code runs) and without it
(``DiffusionPipeline.from_pretrained(..., trust_remote_code=True)``: the shipped self-contained code). docs/HUB.md."""

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

from .atomic import MODEL_CARD_FILE, MODEL_CONFIG_FILE, MODEL_INDEX_FILE, PIPELINE_FILES, atomic_directory, atomic_write

TEMPLATE_PATH = pathlib.Path(__file__).resolve().parent / "model_cards" / "model_card.md"
REMOTE_CODE_SECTION = (TEMPLATE_PATH.parent / "remote_code.md").read_text(encoding="utf-8").strip()
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
COMPONENT_FILE = re.compile(r"config\.json|modeling_dualmcmc\.py|model(-\d+-of-\d+)?\.safetensors(\.index\.json)?")
TITLE = re.compile(r"^# Dual-MCMC EBM: (?P<id>.+)$", re.MULTILINE)


def install_line() -> str:
    """The card's install line: pip from the package metadata's ``Repository`` URL (hf-dualmcmc is not on PyPI)."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("hf-dualmcmc").get_all("Project-URL") or []
    except PackageNotFoundError:
        urls = []
    if repository := dict(u.partition(",")[::2] for u in urls).get("Repository", "").strip():
        return f'pip install "hf-dualmcmc @ git+{repository}"'
    return "pip install -e .  # in a clone of the hf-dualmcmc source repository (it is not on PyPI)"


def _read_json(path: pathlib.Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{what}: expected {str(path)!r} (a DualMCMCPipeline save_pretrained directory)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: {str(path)!r} is not valid JSON ({err})") from err


def _pipeline_class(model_index: dict) -> str | None:
    name = model_index.get("_class_name") if isinstance(model_index, dict) else None
    return name[-1] if isinstance(name, list) and name else name


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
    files, total = sorted(folder.glob("*.safetensors")), 0
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
    if isinstance(extra_tags, str) or not all(isinstance(t, str) and t for t in extra_tags or []):
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
    """Write ``output_dir/README.md`` (atomically; returns its path) for the pipeline saved there, from its
    ``model_index.json`` and component folders. ``template``: ``"run"`` or a paper data set (:data:`TEMPLATES`);
    ``dataset``: the data key; ``metrics``: measured values (``{"FID": 9.26}``, also the ``model-index``);
    ``sample_grid``: an image inside ``output_dir``; ``hub_model_id``: the snippets' repository (default:
    ``model_id``, else the folder name); ``base_model``: the Hub id of the model these weights come from."""
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
    for what, repo_id in (("hub_model_id", hub_model_id), ("base_model", base_model)):
        if repo_id is not None:
            _check_repo_id(repo_id, what)
    check_license(license)
    grid = _check_card_inputs(output_dir, metrics, sample_grid, extra_tags)

    model_index = _read_json(output_dir / MODEL_INDEX_FILE, "write_model_card")
    sampler = {k: v for k, v in model_index.items() if not k.startswith("_") and k not in COMPONENT_NAMES}
    if "num_inference_steps" not in sampler:
        raise ValueError(
            f"{str(output_dir / MODEL_INDEX_FILE)!r} has no 'num_inference_steps' (saved by an older "
            "hf-dualmcmc? load it with DualMCMCPipeline.from_pretrained and save it again)"
        )
    names = [n for n in COMPONENT_NAMES if isinstance(model_index.get(n), list) and model_index[n][1] is not None]
    configs = {n: _read_json(output_dir / n / MODEL_CONFIG_FILE, f"component {n}") for n in names}
    components = [dict(name=n, class_name=model_index[n][1], config=configs[n]) for n in names]
    for c in components:
        c["parameters"] = _count_parameters(output_dir / c["name"])
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
    task = {"task_type": "unconditional-image-generation", "task_name": "Unconditional Image Generation"}
    task.update(dataset_type=dataset_id or dataset or "unknown", dataset_name=dataset_name or "unknown")
    eval_results = [EvalResult(**task, metric_type=n.lower(), metric_name=n, metric_value=v) for n, v in measured]
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
    plain = json.loads(json.dumps(dict(training_config or {}), default=str))  # paths etc. -> YAML-safe values
    remote_code = isinstance(model_index.get("_class_name"), list)
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        template=template,
        model_id=model_id,
        dataset_name=dataset_name,
        **{key: shapes.get(key) for key in ("image_size", "num_channels", "latent_dim")},
        components=components,
        has_encoder="encoder" in configs,
        sampler=sampler,
        remote_code_section=REMOTE_CODE_SECTION.format(model_id=model_id) if remote_code else None,
        training_config_yaml=yaml.safe_dump(plain, sort_keys=False).rstrip() if training_config else None,
        sample_grid=grid,
        install_line=install_line(),
        measured=[dict(name=n, value=f"{v:.6g}" if isinstance(v, float) else v) for n, v in measured],
    )
    return atomic_write(output_dir / MODEL_CARD_FILE, str(card).rstrip() + "\n")


def self_contained_source(path: str | os.PathLike) -> str:
    """The source of ``path`` with each top-level ``from .module import ...`` replaced by ``module.py``'s code (each
    module once, recursively); ``ValueError`` for relative imports it cannot inline (``..``, ``as``, inside a block)."""

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


def retarget_card(readme: str | os.PathLike, repo_id: str) -> bool:
    """Point a card of :func:`write_model_card` (title, ``from_pretrained("...")`` snippets, ``model-index`` name) at
    ``repo_id``; ``False`` (nothing changed) for a README.md this project did not write."""
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


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """The entries of ``folder`` that replacing it would destroy: all without a ``model_index.json`` naming
    ``DualMCMCPipeline``, else all but ``PIPELINE_FILES``, the shipped code, ``__pycache__`` and the components'
    ``config.json``, ``modeling_dualmcmc.py`` and weights (symlinks are foreign; a foreign folder: ``name/``)."""
    from diffusers.utils.dynamic_modules_utils import get_relative_imports

    import hf_dualmcmc

    folder = pathlib.Path(folder)
    code = pathlib.Path(inspect.getfile(hf_dualmcmc.DualMCMCPipeline))
    top = (*PIPELINE_FILES, code.name, *(f"{m}.py" for m in get_relative_imports(code)))

    def ours(path: pathlib.Path, component: bool) -> bool:
        if path.is_symlink():
            return False
        if path.is_dir():
            return path.name == "__pycache__" or (not component and path.name in COMPONENT_NAMES)
        return COMPONENT_FILE.fullmatch(path.name) is not None if component else path.name in top

    def named(path: pathlib.Path, prefix: str = "") -> str:
        return prefix + path.name + "/" * path.is_dir()

    try:
        index = json.loads((folder / MODEL_INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = None
    if _pipeline_class(index) != "DualMCMCPipeline":
        return sorted(named(p) for p in folder.iterdir())
    foreign = []
    for path in sorted(folder.iterdir()):
        if not ours(path, False):
            foreign.append(named(path))
        elif path.is_dir() and path.name != "__pycache__":
            foreign += [named(p, f"{path.name}/") for p in sorted(path.iterdir()) if not ours(p, True)]
    return foreign


def overlap(path: str | os.PathLike, other: str | os.PathLike) -> str | None:
    """How ``path`` lies to ``other`` (both resolved, links followed): ``"is"``, ``"contains"``, ``"is inside"``, or
    ``None`` when they are apart."""
    a, b = pathlib.Path(path).resolve(), pathlib.Path(other).resolve()
    return "is" if a == b else "contains" if a in b.parents else "is inside" if b in a.parents else None


def check_apart(output: str | os.PathLike, inputs, what: str = "output") -> pathlib.Path:
    """Refuse an ``output`` that is, contains or lies inside one of ``inputs`` (:func:`overlap`)."""
    for source in inputs:
        if relation := overlap(output, source):
            raise ValueError(
                f"{what} {str(output)!r} {relation} the input {str(source)!r}; nothing was written: "
                "choose an output outside the input"
            )
    return pathlib.Path(output)


def check_output_dir(output_dir, *, overwrite: bool, inputs=(), what: str = "output directory") -> pathlib.Path:
    """Refuse an ``output_dir`` that overlaps one of ``inputs``, is a file, exists without ``overwrite`` or (even with
    it) holds :func:`foreign_files`, which are named; nothing is written."""
    output_dir = check_apart(output_dir, inputs, what)
    if output_dir.is_symlink() or (output_dir.exists() and not output_dir.is_dir()):
        raise ValueError(f"{what} {str(output_dir)!r} exists and is not a folder; nothing was written")
    if output_dir.exists() and not overwrite:
        raise ValueError(f"{what} {str(output_dir)!r} exists; pass overwrite=True to replace it")
    foreign = foreign_files(output_dir) if output_dir.exists() else []
    if foreign:
        shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise ValueError(
            f"{what} {str(output_dir)!r} holds files hf-dualmcmc did not write ({shown}); overwrite "
            "replaces only a pipeline folder this project wrote: move them or choose another folder"
        )
    return output_dir


def export_for_hub(pipeline_or_dir, output_dir, *, overwrite: bool = False, hub_model_id: str | None = None):
    """Write ``pipeline_or_dir`` (a ``DualMCMCPipeline`` or its saved directory) to ``output_dir`` (atomically) in the
    uploaded layout: ``model_index.json`` and component configs (``auto_map``) name this package's shipped code files,
    the card gets a "Loading without hf-dualmcmc" section and names ``hub_model_id`` (default: the folder name).
    ``overwrite`` replaces only a pipeline folder this project wrote (:func:`check_output_dir`).

    ```python
    >>> export_for_hub(pipe, "dualmcmc-digits")
    >>> DiffusionPipeline.from_pretrained("dualmcmc-digits", trust_remote_code=True)  # no hf_dualmcmc needed
    >>> push_pipeline_to_hub("dualmcmc-digits", "org/dualmcmc-digits")
    ```
    """
    from diffusers.utils.dynamic_modules_utils import get_relative_imports
    from transformers import PreTrainedModel

    import hf_dualmcmc

    output_dir, is_pipeline = pathlib.Path(output_dir), isinstance(pipeline_or_dir, hf_dualmcmc.DualMCMCPipeline)
    source = [pipeline_or_dir] if isinstance(pipeline_or_dir, str | os.PathLike) else []
    same = source and overlap(pipeline_or_dir, output_dir) == "is"  # in place: checked as the output
    check_output_dir(output_dir, overwrite=overwrite, inputs=[] if same else source)
    if hub_model_id is not None:
        _check_repo_id(hub_model_id, "hub_model_id")
    if not (is_pipeline or source):
        raise ValueError(
            f"export_for_hub needs a DualMCMCPipeline or a saved pipeline directory, "
            f"got {type(pipeline_or_dir).__name__}"
        )
    if source and not (pathlib.Path(pipeline_or_dir) / MODEL_INDEX_FILE).is_file():
        raise ValueError(f"{str(pipeline_or_dir)!r} is not a saved pipeline directory: expected model_index.json in it")
    model_id = hub_model_id or output_dir.resolve().name
    with atomic_directory(output_dir) as tmp:
        if is_pipeline:
            pipeline_or_dir.save_pretrained(tmp)
        else:  # the files (not their modes), no hidden entries, no __pycache__
            ignore = shutil.ignore_patterns(".*", "__pycache__")
            shutil.copytree(pipeline_or_dir, tmp, ignore=ignore, copy_function=shutil.copyfile, dirs_exist_ok=True)
        index = _read_json(tmp / MODEL_INDEX_FILE, "export_for_hub")
        if _pipeline_class(index) != "DualMCMCPipeline":
            raise ValueError(
                f"export_for_hub: model_index.json _class_name must be 'DualMCMCPipeline', got {index.get('_class_name')!r}"
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
            config = _read_json(tmp / name / MODEL_CONFIG_FILE, f"component {name}")
            auto = {"AutoConfig": cls.config_class, "AutoModel": cls}
            config["auto_map"] = {key: f"{code_file.stem}.{c.__name__}" for key, c in auto.items()}
            atomic_write(tmp / name / MODEL_CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
            index[name] = [code_file.stem, cls.__name__]
        atomic_write(tmp / MODEL_INDEX_FILE, json.dumps(index, indent=2, sort_keys=True) + "\n")
        readme = tmp / MODEL_CARD_FILE
        if not readme.is_file():
            write_model_card(tmp, model_id=model_id)
        else:
            if hub_model_id:
                retarget_card(readme, hub_model_id)
            if "trust_remote_code=True" not in (text := readme.read_text(encoding="utf-8")):
                atomic_write(readme, f"{text.rstrip()}\n\n{REMOTE_CODE_SECTION.format(model_id=model_id)}\n")
    return output_dir


def push_pipeline_to_hub(
    output_dir, repo_id, *, private=None, token=None, commit_message=None, create_pr=False, revision=None
):
    """Upload the saved pipeline ``output_dir`` to the model repository ``repo_id`` (created unless it exists) in the
    layout of :func:`export_for_hub`; returns the ``CommitInfo`` (``.oid``: a ``revision=`` to load). With
    ``HF_HUB_OFFLINE`` set, ``OfflineModeIsEnabled`` is raised before anything is sent."""
    _check_repo_id(repo_id)
    with tempfile.TemporaryDirectory() as tmp:
        staged = export_for_hub(output_dir, pathlib.Path(tmp) / "upload", hub_model_id=repo_id)
        api = HfApi(token=token)
        repo = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        message = commit_message or "Upload Dual-MCMC pipeline"
        upload = dict(create_pr=create_pr, revision=revision, commit_message=message)
        return api.upload_folder(repo_id=repo.repo_id, folder_path=str(staged), repo_type="model", **upload)


def push_to_hub(pipeline, repo_id: str, *, private: bool | None = None, token: str | None = None, **kwargs):
    """Save ``pipeline`` with a model card for ``repo_id`` and upload it (:func:`push_pipeline_to_hub`). ``kwargs``:
    ``commit_message``, ``create_pr``, ``revision`` (diffusers' arguments), the rest for :func:`write_model_card`."""
    _check_repo_id(repo_id)
    upload = {k: kwargs.pop(k) for k in ("commit_message", "create_pr", "revision") if k in kwargs}
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.save_pretrained(tmp)
        write_model_card(tmp, hub_model_id=repo_id, **kwargs)
        return push_pipeline_to_hub(tmp, repo_id, private=private, token=token, **upload)

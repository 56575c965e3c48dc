"""Write evaluation results into a model card's ``model-index`` metadata (huggingface_hub ModelCard / EvalResult)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard

from ..atomic import MODEL_CARD_FILE, atomic_write
from ..training_config import safe_load_yaml

# results-dict key -> (model-index metric type, human-readable name)
METRIC_NAMES = {
    "fid": ("fid", "FID"),
    "fid_revised": ("fid", "FID"),
    "fid_proposal": ("fid-proposal", "FID (generator proposals)"),
    "is": ("inception-score", "Inception Score"),
    "is_revised": ("inception-score", "Inception Score"),
    "is_proposal": ("inception-score-proposal", "Inception Score (generator proposals)"),
    "domain_fd": ("domain-frechet-distance", "Domain Frechet distance"),
    "domain_fd_revised": ("domain-frechet-distance", "Domain Frechet distance"),
    "domain_fd_proposal": ("domain-frechet-distance-proposal", "Domain Frechet distance (generator proposals)"),
    "recon_mse": ("mse", "Reconstruction MSE (Inf+L)"),
    "mse_inf_plus_l": ("mse", "Reconstruction MSE (Inf+L)"),
    "mse_inf": ("mse-encoder-only", "Reconstruction MSE (Inf)"),
}


def check_model_card_path(card_path: str | os.PathLike) -> Path:
    """The card :func:`write_model_index` may write for ``card_path`` (a folder means its ``README.md``): a new ``.md``
    file in an existing folder, or an existing model card (YAML front matter). Anything else is refused unchanged."""
    path = Path(card_path) / MODEL_CARD_FILE if Path(card_path).is_dir() else Path(card_path)
    label = f"model card {str(path)!r}"
    if path.suffix.lower() != ".md":
        raise ValueError(f"{label}: expected a README.md (a .md file); refusing to rewrite another file as a card")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError(f"{label} is not a regular file; refusing to write through it")
    if not path.exists():
        if not path.parent.is_dir():
            raise ValueError(f"{label}: folder {str(path.parent)!r} does not exist")
        return path
    try:
        found = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", path.read_text(encoding="utf-8"), re.DOTALL)
        meta = safe_load_yaml(found.group(1), str(path)) if found else None
    except (UnicodeDecodeError, ValueError, OSError) as err:  # ConfigError: anchors, duplicate keys, bad YAML
        raise ValueError(f"{label} is not a readable model card ({type(err).__name__}); it was not changed") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{label} exists and is not a model card (no YAML front matter); it was not changed")
    return path


def write_model_index(
    card_path: str | os.PathLike,
    results: dict,
    *,
    dataset_name: str,
    dataset_type: str,
    task: str = "unconditional-image-generation",
    model_name: str | None = None,
    dataset_split: str | None = None,
    source_name: str | None = None,
) -> ModelCard:
    """Merge the numbers of ``results`` into the ``model-index`` of the card at ``card_path``
    (:func:`check_model_card_path`), keeping its other metadata, and return the written card (atomic write).

    Keys of :data:`METRIC_NAMES` get standard metric types, others are used verbatim; a result with the same task,
    dataset and metric type replaces the old one. ``model_name``: the card's, else the folder name.
    """
    if not dataset_name or not dataset_type:
        raise ValueError("dataset_name and dataset_type are required (e.g. 'CIFAR-10', 'cifar10')")
    path = check_model_card_path(card_path)
    card = ModelCard(path.read_text(encoding="utf-8") if path.exists() else "", ignore_metadata_errors=True)
    where = {"task_type": task, "dataset_type": dataset_type, "dataset_name": dataset_name}
    where.update(dataset_split=dataset_split, source_name=source_name)
    new = {}  # one result per (task, dataset, metric type); later keys win (fid_revised over fid)
    for key, value in results.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metric_type, metric_name = METRIC_NAMES.get(key, (key, key))
            result = EvalResult(**where, metric_type=metric_type, metric_name=metric_name, metric_value=float(value))
            new[(task, dataset_type, metric_type)] = result
    if not new:
        raise ValueError(f"results hold no numeric metrics: got keys {sorted(results)}")
    kept = [r for r in card.data.eval_results or [] if (r.task_type, r.dataset_type, r.metric_type) not in new]
    card.data.eval_results = kept + list(new.values())
    card.data.model_name = model_name or card.data.model_name or path.resolve().parent.name
    atomic_write(path, str(card))
    return card


__all__ = ["METRIC_NAMES", "check_model_card_path", "write_model_index"]

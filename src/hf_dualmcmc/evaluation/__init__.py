"""Evaluation suite: the paper's metrics, figures and tables on any exported :class:`~hf_dualmcmc.DualMCMCPipeline`.

See ``docs/EVALUATION.md`` and ``scripts/evaluate.py`` for the one-command entry point.
"""

from .analysis import (
    ablation_sweep,
    energy_profile,
    interpolation_grids,
    markdown_table,
    reconstruction_mse,
    save_image,
    write_json,
)
from .domain import (
    DOMAIN_DATASETS,
    DomainClassifier,
    DomainFrechetScorer,
    load_or_train_domain_classifier,
    train_domain_classifier,
)
from .fid import (
    FID_FEATURE_LAYER,
    INCEPTION_WEIGHTS_FILENAME,
    INCEPTION_WEIGHTS_SHA256,
    InceptionScorer,
    InceptionWeightsError,
    InceptionWeightsNotFoundError,
    fid_and_is,
    frechet_distance,
    inception_weights_url,
    load_inception_state_dict,
    load_statistics,
    reference_statistics,
    resolve_inception_weights,
    save_random_inception_weights,
    save_statistics,
)
from .images import builtin_split, load_images, sample_images, to_uint8
from .model_index import METRIC_NAMES, write_model_index

__all__ = [
    "DOMAIN_DATASETS",
    "DomainClassifier",
    "DomainFrechetScorer",
    "FID_FEATURE_LAYER",
    "INCEPTION_WEIGHTS_FILENAME",
    "INCEPTION_WEIGHTS_SHA256",
    "InceptionScorer",
    "InceptionWeightsError",
    "InceptionWeightsNotFoundError",
    "METRIC_NAMES",
    "ablation_sweep",
    "builtin_split",
    "energy_profile",
    "fid_and_is",
    "frechet_distance",
    "inception_weights_url",
    "interpolation_grids",
    "load_images",
    "load_inception_state_dict",
    "load_or_train_domain_classifier",
    "load_statistics",
    "markdown_table",
    "reconstruction_mse",
    "reference_statistics",
    "resolve_inception_weights",
    "sample_images",
    "save_image",
    "save_random_inception_weights",
    "save_statistics",
    "to_uint8",
    "train_domain_classifier",
    "write_json",
    "write_model_index",
]

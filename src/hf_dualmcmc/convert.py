"""Convert the authors' released Dual-MCMC checkpoints into a :class:`~hf_dualmcmc.DualMCMCPipeline` directory.

An official checkpoint is a ``torch.save``'d dict with the keys ``epoch``, ``netG``, ``netE``, ``netI``, ``optG``,
``optE`` and ``optI``; ``netG``/``netE``/``netI`` are the state dicts of the generator, the energy model and the
inference model (key names and shapes: ``../shared/reference/official_state_dict_{cifar10,celeba64}.json``).
The file is a pickle; it is read with ``torch.load(weights_only=True)`` (tensors, numbers, strings and containers
only), so a checkpoint whose unpickling would run code is refused (:class:`~hf_dualmcmc.serialization.UnsafePickleError`).

The energy model uses hook-style spectral norm (``torch.nn.utils.spectral_norm``: ``*.weight_orig``,
``*.weight_u``, ``*.weight_v``), ours the parametrization API (``*.parametrizations.weight.original``,
``*.parametrizations.weight.0._u`` / ``._v``). Both reshape ``W`` to ``[out, -1]`` and, without power iteration
(eval mode), normalise by ``sigma = u^T W v`` with the stored vectors; in train mode both run the same power
iteration (``v <- normalize(W^T u)``, ``u <- normalize(W v)``). Copying ``u`` and ``v`` therefore keeps the
effective weights ``W / sigma`` identical (checked by ``tests/test_convert.py`` against a functional
re-implementation).

```python
>>> from hf_dualmcmc.convert import convert_official_checkpoint
>>> convert_official_checkpoint("cifar10_ckpt.pth", "dualmcmc-cifar10")  # dataset inferred from the shapes
>>> pipe = DualMCMCPipeline.from_pretrained("dualmcmc-cifar10")
```
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping

import torch

from .configuration_dualmcmc import OFFICIAL_SAMPLER, OFFICIAL_SETTINGS, official_configs
from .modeling_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel
from .pipeline_dualmcmc import DualMCMCPipeline
from .serialization import load_torch_file

NETWORK_KEYS = ("netG", "netE", "netI")
OPTIONAL_KEYS = ("epoch", "optG", "optE", "optI")


# The official training configuration (config.py of the authors' repository), recorded in the model card.
OFFICIAL_TRAINING = {
    "cifar10": {
        "epochs": 301,
        "batch_size": 100,
        "data_weight": 1.0,
        "generator_teaching_weight": 50.0,
        "encoder_teaching_weight": 0.1,
        "num_steps": 30,
        "step_size": 0.5,
        "noise_scale": 0.001,
        "num_latent_steps": 10,
        "latent_step_size": 0.1,
        "latent_noise_scale": 0.1,
        "ngf": 512,
        "ndf": 512,
        "nif": 128,
        "nz": 128,
        "observation_std": 0.3,
        "lr_energy": 1e-4,
        "lr_generator": 3e-4,
        "lr_encoder": 1e-4,
        "adam_betas": [0.0, 0.9],
        "weight_decay_energy": 0.0,
        "weight_decay_generator": 5e-4,
        "weight_decay_encoder": 5e-4,
        "lr_decay_per_epoch": 0.998,
        "seed": 1234,
    },
    "celeba64": {
        "epochs": 301,
        "batch_size": 100,
        "data_weight": 1.0,
        "generator_teaching_weight": 70.0,
        "encoder_teaching_weight": 0.1,
        "num_steps": 30,
        "step_size": 0.3,
        "noise_scale": 0.001,
        "num_latent_steps": 10,
        "latent_step_size": 0.1,
        "latent_noise_scale": 0.1,
        "ngf": 1024,
        "ndf": 1024,
        "nif": 128,
        "nz": 128,
        "observation_std": 0.3,
        "lr_energy": 1e-4,
        "lr_generator": 3e-4,
        "lr_encoder": 1e-4,
        "adam_betas": [0.0, 0.9],
        "weight_decay_energy": 0.0,
        "weight_decay_generator": 5e-4,
        "weight_decay_encoder": 5e-4,
        "lr_decay_per_epoch": 0.998,
        "seed": 1234,
    },
}

_SN_SUFFIXES = {
    "parametrizations.weight.original": "weight_orig",
    "parametrizations.weight.0._u": "weight_u",
    "parametrizations.weight.0._v": "weight_v",
}
_BLOCK_PARTS = {"norm1": "bn_1", "norm2": "bn_2", "conv1": "conv1", "conv2": "conv2", "shortcut": "sc"}


# ----------------------------------------------------------------------------------------------------------------
# Key names
# ----------------------------------------------------------------------------------------------------------------


def _official_block_key(prefix: str, rest: str) -> str:
    part, _, leaf = rest.partition(".")
    if part not in _BLOCK_PARTS:
        raise KeyError(rest)
    return f"{prefix}.{_BLOCK_PARTS[part]}.{leaf}"


def _sn_leaf(leaf: str) -> str:
    return _SN_SUFFIXES.get(leaf, leaf)


def official_key(net: str, key: str, num_blocks: int) -> str:
    """The official state-dict key for one of our keys.

    Args:
        net: ``"netG"``, ``"netE"`` or ``"netI"``.
        key: a key of our model's ``state_dict()``.
        num_blocks: number of residual blocks (``len(model.blocks)``) for ``netG``/``netE``; the official networks
            number their blocks ``block2, block3, ...`` and the final layer after them (``bn_5``/``conv5`` and
            ``lin_5`` for 3 blocks).

    Raises:
        KeyError: ``key`` is not a key of our ``net``.
    """
    last = num_blocks + 2
    if net == "netG":
        if key.startswith("input_proj."):
            return "lin_1." + key[len("input_proj.") :]
        if key.startswith("norm_out."):
            return f"bn_{last}." + key[len("norm_out.") :]
        if key.startswith("conv_out."):
            return f"conv{last}." + key[len("conv_out.") :]
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
        if m:
            return _official_block_key(f"block{int(m.group(1)) + 2}", m.group(2))
    elif net == "netE":
        part, _, leaf = key.partition(".")
        if part == "start":
            sub, _, leaf = leaf.partition(".")
            return _official_block_key("conv_1", f"{sub}.{_sn_leaf(leaf)}")
        if part == "head":
            return f"lin_{last}.{_sn_leaf(leaf)}"
        m = re.fullmatch(r"blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            return _official_block_key(f"block{int(m.group(1)) + 2}", f"{m.group(2)}.{_sn_leaf(m.group(3))}")
    elif net == "netI":
        if key.startswith("features."):
            return "main." + key[len("features.") :]
        if key.startswith("mean_head."):
            return "conv51." + key[len("mean_head.") :]
        if key.startswith("logvar_head."):
            return "conv52." + key[len("logvar_head.") :]
    raise KeyError(f"{net}: no official name for {key!r}")


Configs = tuple  # (DualMCMCEnergyConfig, DualMCMCGeneratorConfig, DualMCMCEncoderConfig)


def _resolve_configs(dataset: str | Configs) -> Configs:
    if isinstance(dataset, str):
        return official_configs(dataset)
    if not (isinstance(dataset, tuple) and len(dataset) == 3):
        raise ValueError(
            f"expected an official dataset name or an (energy, generator, encoder) config triple, got {dataset!r}"
        )
    return dataset


def _meta_models(dataset: str | Configs):
    energy_cfg, generator_cfg, encoder_cfg = _resolve_configs(dataset)
    with torch.device("meta"):
        return {
            "netE": DualMCMCEnergyModel(energy_cfg),
            "netG": DualMCMCGeneratorModel(generator_cfg),
            "netI": DualMCMCEncoderModel(encoder_cfg),
        }


def official_layout(dataset: str | Configs) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    """``{net: {official_key: (our_key, shape)}}`` for ``official_configs(dataset)`` (built on the meta device).

    ``dataset`` may also be an ``(energy, generator, encoder)`` config triple, e.g. ``configs_for_image_size(32,
    ngf=64, ndf=64, nif=32)`` for the narrower networks the official code trains with other ``ngf``/``ndf``/``nif``.
    """
    return _layout_from_models(_meta_models(dataset))


def _layout_from_models(models: dict) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    layout = {}
    for net, model in models.items():
        num_blocks = len(getattr(model, "blocks", ()))
        layout[net] = {
            official_key(net, key, num_blocks): (key, tuple(t.shape)) for key, t in model.state_dict().items()
        }
    return layout


# ----------------------------------------------------------------------------------------------------------------
# Reading and validating
# ----------------------------------------------------------------------------------------------------------------


def load_official_checkpoint(path: str | os.PathLike) -> dict:
    """Read an official checkpoint without running code: ``torch.load(path, weights_only=True)``, then structure checks.

    The authors' files are ``torch.save`` pickles of plain dicts (epoch, state dicts, Adam state dicts), all of which
    ``weights_only=True`` reads with its default allow-list: nothing extra is allowed.

    Raises:
        UnsafePickleError: (a ``ValueError``) the file would import/call Python objects when unpickled; refused.
        ValueError: naming the file: it does not exist, is truncated or not a checkpoint, or lacks
            ``netG``/``netE``/``netI`` state dicts of tensors.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"official checkpoint {str(path)!r} does not exist or is not a file")
    expected = f"a torch.save'd dict with keys {list(NETWORK_KEYS + OPTIONAL_KEYS)}"
    checkpoint = load_torch_file(path, what="official checkpoint", expected=expected)
    check_checkpoint_structure(checkpoint, what=f"official checkpoint {str(path)!r}")
    return checkpoint


def check_checkpoint_structure(checkpoint, what: str = "checkpoint") -> None:
    """Top-level checks: a dict with ``netG``/``netE``/``netI`` state dicts (and optionally epoch/optimizers)."""
    expected = list(NETWORK_KEYS + OPTIONAL_KEYS)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f"{what} is not an official Dual-MCMC checkpoint: expected a dict with keys {expected}, "
            f"got {type(checkpoint).__name__}"
        )
    problems = []
    missing = [k for k in NETWORK_KEYS if k not in checkpoint]
    unknown = sorted(str(k) for k in checkpoint if k not in NETWORK_KEYS + OPTIONAL_KEYS)
    if missing:
        problems.append(f"missing top-level keys {missing}")
    if unknown:
        problems.append(f"unknown top-level keys {unknown}")
    for net in NETWORK_KEYS:
        sd = checkpoint.get(net)
        if sd is None:
            continue
        if not isinstance(sd, Mapping):
            problems.append(f"{net} is a {type(sd).__name__}, expected a state dict")
            continue
        not_tensors = sorted(str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor))
        if not_tensors:
            problems.append(f"{net} entries that are not tensors: {not_tensors}")
    if problems:
        raise ValueError(
            f"{what} is not an official Dual-MCMC checkpoint (expected keys {expected}, with netG/netE/netI "
            "state dicts of tensors): " + "; ".join(problems)
        )


def _strip_data_parallel(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd)


def layout_problems(checkpoint: Mapping, dataset: str | Configs, *, layout: dict | None = None) -> list[str]:
    """Every mismatch between ``checkpoint`` and the official ``dataset`` layout (empty when it matches)."""
    layout = official_layout(dataset) if layout is None else layout
    problems = []
    for net in NETWORK_KEYS:
        sd = _strip_data_parallel(checkpoint[net])
        expected = layout[net]
        missing = [k for k in expected if k not in sd]
        unexpected = [k for k in sd if k not in expected]
        wrong = [
            f"{k}: expected {list(expected[k][1])}, got {list(sd[k].shape)}"
            for k in expected
            if k in sd and tuple(sd[k].shape) != expected[k][1]
        ]
        not_finite = [k for k in expected if k in sd and sd[k].is_floating_point() and not torch.isfinite(sd[k]).all()]
        if missing:
            problems.append(f"{net} missing keys: {missing}")
        if unexpected:
            problems.append(f"{net} unexpected keys: {unexpected}")
        if wrong:
            problems.append(f"{net} wrong shapes: {wrong}")
        if not_finite:
            problems.append(f"{net} tensors with NaN/inf values: {not_finite}")
    return problems


def infer_official_dataset(checkpoint: Mapping) -> str:
    """The official setting (``"cifar10"`` or ``"celeba64"``) whose layout matches ``checkpoint`` exactly."""
    check_checkpoint_structure(checkpoint)
    report = {}
    for dataset in sorted(OFFICIAL_SETTINGS):
        problems = layout_problems(checkpoint, dataset)
        if not problems:
            return dataset
        report[dataset] = problems
    details = "\n".join(f"  as {name}: " + "\n    ".join(p) for name, p in report.items())
    raise ValueError(
        "the checkpoint matches none of the official layouts "
        f"{sorted(OFFICIAL_SETTINGS)} (pass dataset= to see only one):\n{details}"
    )


# ----------------------------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------------------------


def convert_official_state_dicts(
    checkpoint: Mapping, dataset: str | None = None, *, configs: Configs | None = None
) -> DualMCMCPipeline:
    """Build a :class:`DualMCMCPipeline` (official architectures and sampler) from an official checkpoint dict.

    Args:
        checkpoint: the loaded checkpoint (``{"netG": ..., "netE": ..., "netI": ..., ...}``).
        dataset: ``"cifar10"`` or ``"celeba64"``; ``None`` infers it from the tensor shapes.
        configs: an ``(energy, generator, encoder)`` config triple for the official code run with other widths
            (``ngf``/``ndf``/``nif``/``nz``); overrides ``dataset`` for the architecture.

    Raises:
        ValueError: not a checkpoint dict, or missing/unexpected keys, wrong shapes or non-finite values (all of
            them are listed).
    """
    check_checkpoint_structure(checkpoint)
    if configs is not None:
        arch, what = _resolve_configs(configs), "the given configs'"
    elif dataset is None:
        arch = dataset = infer_official_dataset(checkpoint)
        what = f"the official {dataset}"
    elif dataset not in OFFICIAL_SETTINGS:
        raise ValueError(f"unknown official dataset {dataset!r}; expected one of {sorted(OFFICIAL_SETTINGS)}")
    else:
        arch, what = dataset, f"the official {dataset}"
    models = _meta_models(arch)
    layout = _layout_from_models(models)
    problems = layout_problems(checkpoint, arch, layout=layout)
    if problems:
        raise ValueError(f"the checkpoint does not match {what} layout:\n  " + "\n  ".join(problems))

    for net, model in models.items():
        sd = _strip_data_parallel(checkpoint[net])
        ours = {}
        for official, (key, _) in layout[net].items():
            tensor = sd[official]
            ours[key] = tensor.detach().clone().contiguous()
            if tensor.is_floating_point():
                ours[key] = ours[key].float()
        model.load_state_dict(ours, strict=True, assign=True)
        left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
        if left:
            raise ValueError(f"{net}: tensors not set by the checkpoint: {left}")
        model.eval()
    return DualMCMCPipeline(
        energy_model=models["netE"], generator_model=models["netG"], encoder=models["netI"], **OFFICIAL_SAMPLER
    )


UPSTREAM_REPOSITORY = "https://github.com/jcui1224/dual-MCMC"


def _mark_upstream_license(readme: pathlib.Path) -> None:
    """The authors' weights carry no licence: say so instead of this project's licence."""
    from huggingface_hub import ModelCard

    from .atomic import atomic_write

    card = ModelCard.load(readme)
    card.data.license = "other"
    card.data.license_name = "upstream-unlicensed"
    card.data.license_link = UPSTREAM_REPOSITORY
    atomic_write(readme, str(card))


def convert_official_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    dataset: str | None = None,
    configs: Configs | None = None,
    hub_model_id: str | None = None,
    overwrite: bool = False,
    model_card: bool = True,
    base_model: str | None = None,
) -> pathlib.Path:
    """Convert an official checkpoint file into a ``DualMCMCPipeline`` directory (``save_pretrained`` + README.md).

    The directory is written next to ``output_dir`` first and moved into place when complete.

    Args:
        checkpoint_path: the ``.pth`` file released by the authors.
        output_dir: where the pipeline is written (must not exist unless ``overwrite``; never the checkpoint's folder
            or a folder inside it).
        dataset: ``"cifar10"`` / ``"celeba64"``, or ``None`` to infer it from the shapes (required with
            ``configs``: it names the training data in the model card).
        configs: ``(energy, generator, encoder)`` configs for official-code runs at other widths.
        hub_model_id: repository id shown in the model card's usage snippet.
        overwrite: replace an existing ``output_dir`` that is a pipeline folder this project wrote (anything else
            in it is named and refused: :func:`hf_dualmcmc.hub.check_output_dir`).
        model_card: write ``README.md`` from the ``model_cards/<dataset>.md`` template.
        base_model: the Hub id of the original weights when they are on the Hub (the card's ``base_model``; the
            authors release theirs outside the Hub, so by default the card links their repository instead).

    Returns:
        The output directory.

    Raises:
        ValueError: naming the file: unreadable or unsafe (see :func:`load_official_checkpoint`), or missing/
            unexpected keys, wrong shapes or non-finite values for the official layout (all listed).
    """
    from .atomic import atomic_directory
    from .hub import check_output_dir, write_model_card

    output_dir = check_output_dir(output_dir, overwrite=overwrite, inputs=[checkpoint_path])
    if configs is not None and dataset not in OFFICIAL_SETTINGS:
        raise ValueError(f"with configs=, dataset must name the training data: one of {sorted(OFFICIAL_SETTINGS)}")
    checkpoint = load_official_checkpoint(checkpoint_path)
    try:
        dataset = dataset or infer_official_dataset(checkpoint)
        pipe = convert_official_state_dicts(checkpoint, dataset, configs=configs)
    except ValueError as err:  # layout problems: name the file they come from
        raise ValueError(f"official checkpoint {str(checkpoint_path)!r}: {err}") from err

    with atomic_directory(output_dir) as tmp:
        pipe.save_pretrained(tmp)
        if model_card:
            training = dict(OFFICIAL_TRAINING[dataset])
            if configs is not None:
                energy_cfg, generator_cfg, encoder_cfg = configs
                training.update(
                    ngf=generator_cfg.base_channels,
                    ndf=energy_cfg.base_channels,
                    nif=encoder_cfg.base_channels,
                    nz=generator_cfg.latent_dim,
                )
            training["source"] = f"official checkpoint {pathlib.Path(checkpoint_path).name}"
            epoch = checkpoint.get("epoch")
            if isinstance(epoch, (int, float)) or (isinstance(epoch, torch.Tensor) and epoch.numel() == 1):
                training["checkpoint_epoch"] = int(epoch)
            readme = write_model_card(
                tmp,
                template=dataset,
                dataset=dataset,
                training_config=training,
                hub_model_id=hub_model_id,
                extra_tags=["converted-checkpoint"],
                license="other",
                base_model=base_model,
            )
            _mark_upstream_license(readme)
    return output_dir


__all__ = [
    "OFFICIAL_SAMPLER",
    "OFFICIAL_TRAINING",
    "check_checkpoint_structure",
    "convert_official_checkpoint",
    "convert_official_state_dicts",
    "infer_official_dataset",
    "layout_problems",
    "load_official_checkpoint",
    "official_key",
    "official_layout",
]

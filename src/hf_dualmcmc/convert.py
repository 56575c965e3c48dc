"""Convert the authors' released Dual-MCMC checkpoints into a :class:`~hf_dualmcmc.DualMCMCPipeline` directory.

An official checkpoint is a ``torch.save``'d dict with the keys ``epoch``, ``netG``, ``netE``, ``netI``, ``optG``,
``optE`` and ``optI`` (the state dicts of the generator, the energy and the inference model, and their optimizers;
their key names and shapes are checked by tests/test_convert.py). It is read with
``torch.load(weights_only=True)``, so a file whose unpickling would run code is refused (``UnsafePickleError``).

The authors' energy uses hook-style spectral norm (``*.weight_orig``, ``*.weight_u``, ``*.weight_v``), ours the
parametrization API (``*.parametrizations.weight.original`` / ``.0._u`` / ``.0._v``). Both normalise ``W`` reshaped to
``[out, -1]`` by ``sigma = u^T W v`` and run the same power iteration in train mode, so copying ``u`` and ``v`` keeps
the effective weights ``W / sigma`` identical (checked by ``tests/test_convert.py`` against a functional
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

from .configuration_dualmcmc import OFFICIAL_SAMPLER, OFFICIAL_TRAINING, official_configs
from .modeling_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel
from .pipeline_dualmcmc import DualMCMCPipeline
from .serialization import load_torch_file

NETWORK_KEYS = ("netG", "netE", "netI")
OPTIONAL_KEYS = ("epoch", "optG", "optE", "optI")
UPSTREAM_REPOSITORY = "https://github.com/jcui1224/dual-MCMC"
_SN_SUFFIXES = {
    "parametrizations.weight.original": "weight_orig",
    "parametrizations.weight.0._u": "weight_u",
    "parametrizations.weight.0._v": "weight_v",
}
_BLOCK_PARTS = {"norm1": "bn_1", "norm2": "bn_2", "conv1": "conv1", "conv2": "conv2", "shortcut": "sc"}


def _official_block_key(prefix: str, rest: str) -> str:
    part, _, leaf = rest.partition(".")
    if part not in _BLOCK_PARTS:
        raise KeyError(rest)
    return f"{prefix}.{_BLOCK_PARTS[part]}.{leaf}"


def official_key(net: str, key: str, num_blocks: int) -> str:
    """The official state-dict key of ``net`` (``"netG"``, ``"netE"``, ``"netI"``) for one of our keys; the official
    networks number their ``num_blocks`` residual blocks ``block2, block3, ...`` and the layer after them
    ``bn_5``/``conv5``/``lin_5`` (for 3 blocks). ``KeyError`` for a key that is not one of ``net``'s."""
    last = num_blocks + 2
    renamed = {
        "netG": {"input_proj": "lin_1", "norm_out": f"bn_{last}", "conv_out": f"conv{last}"},
        "netI": {"features": "main", "mean_head": "conv51", "logvar_head": "conv52"},
    }.get(net, {})
    part, _, leaf = key.partition(".")
    if part in renamed:
        return f"{renamed[part]}.{leaf}"
    if net == "netE" and part == "start":
        sub, _, leaf = leaf.partition(".")
        return _official_block_key("conv_1", f"{sub}.{_SN_SUFFIXES.get(leaf, leaf)}")
    if net == "netE" and part == "head":
        return f"lin_{last}.{_SN_SUFFIXES.get(leaf, leaf)}"
    m = re.fullmatch(r"blocks\.(\d+)\.(\w+)\.(.+)", key)
    if m and net in ("netG", "netE"):
        leaf = _SN_SUFFIXES.get(m.group(3), m.group(3)) if net == "netE" else m.group(3)
        return _official_block_key(f"block{int(m.group(1)) + 2}", f"{m.group(2)}.{leaf}")
    raise KeyError(f"{net}: no official name for {key!r}")


Configs = tuple  # (DualMCMCEnergyConfig, DualMCMCGeneratorConfig, DualMCMCEncoderConfig)


def _meta_models(dataset: str | Configs):
    configs = official_configs(dataset) if isinstance(dataset, str) else dataset
    if not (isinstance(configs, tuple) and len(configs) == 3):
        raise ValueError(
            f"expected an official dataset name or an (energy, generator, encoder) config triple, got {dataset!r}"
        )
    energy_cfg, generator_cfg, encoder_cfg = configs
    with torch.device("meta"):
        return {
            "netE": DualMCMCEnergyModel(energy_cfg),
            "netG": DualMCMCGeneratorModel(generator_cfg),
            "netI": DualMCMCEncoderModel(encoder_cfg),
        }


def official_layout(dataset: str | Configs) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    """``{net: {official_key: (our_key, shape)}}`` for ``official_configs(dataset)`` or an ``(energy, generator,
    encoder)`` config triple (the official code run with other widths: ``configs_for_image_size(32, ngf=64, ...)``)."""
    return _layout_from_models(_meta_models(dataset))


def _layout_from_models(models: dict) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    layout = {}
    for net, model in models.items():
        num_blocks = len(getattr(model, "blocks", ()))
        layout[net] = {official_key(net, k, num_blocks): (k, tuple(t.shape)) for k, t in model.state_dict().items()}
    return layout


def load_official_checkpoint(path: str | os.PathLike) -> dict:
    """Read an official checkpoint without running code (``torch.load(weights_only=True)``, its default allow-list:
    the authors' files are plain dicts of tensors and numbers), then structure checks. ``ValueError`` naming the file
    (``UnsafePickleError`` for one that would import or call Python objects)."""
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
    found = {
        "missing top-level keys": [k for k in NETWORK_KEYS if k not in checkpoint],
        "unknown top-level keys": sorted(str(k) for k in checkpoint if k not in expected),
    }
    problems = [f"{kind} {keys}" for kind, keys in found.items() if keys]
    for net in NETWORK_KEYS:
        sd = checkpoint.get(net)
        if sd is not None and not isinstance(sd, Mapping):
            problems.append(f"{net} is a {type(sd).__name__}, expected a state dict")
        elif sd is not None and (bad := sorted(str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor))):
            problems.append(f"{net} entries that are not tensors: {bad}")
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
        found = {"missing keys": missing, "unexpected keys": unexpected, "wrong shapes": wrong}
        found["tensors with NaN/inf values"] = not_finite
        problems += [f"{net} {kind}: {keys}" for kind, keys in found.items() if keys]
    return problems


def infer_official_dataset(checkpoint: Mapping) -> str:
    """The official setting (``"cifar10"`` or ``"celeba64"``) whose layout matches ``checkpoint`` exactly."""
    check_checkpoint_structure(checkpoint)
    report = {}
    for dataset in sorted(OFFICIAL_TRAINING):
        problems = layout_problems(checkpoint, dataset)
        if not problems:
            return dataset
        report[dataset] = problems
    details = "\n".join(f"  as {name}: " + "\n    ".join(p) for name, p in report.items())
    raise ValueError(
        "the checkpoint matches none of the official layouts "
        f"{sorted(OFFICIAL_TRAINING)} (pass dataset= to see only one):\n{details}"
    )


def convert_official_state_dicts(
    checkpoint: Mapping, dataset: str | None = None, *, configs: Configs | None = None
) -> DualMCMCPipeline:
    """A :class:`DualMCMCPipeline` (the official architecture of ``dataset``, ``"cifar10"`` / ``"celeba64"`` /
    ``None``: inferred from the shapes, or ``configs`` for other widths; the authors' sampler) from an official
    checkpoint dict. ``ValueError`` listing every missing / unexpected key, wrong shape and non-finite tensor."""
    check_checkpoint_structure(checkpoint)
    if configs is None and dataset is None:
        dataset = infer_official_dataset(checkpoint)
    elif configs is None and dataset not in OFFICIAL_TRAINING:
        raise ValueError(f"unknown official dataset {dataset!r}; expected one of {sorted(OFFICIAL_TRAINING)}")
    arch, what = (dataset, f"the official {dataset}") if configs is None else (configs, "the given configs'")
    models = _meta_models(arch)
    layout = _layout_from_models(models)
    problems = layout_problems(checkpoint, arch, layout=layout)
    if problems:
        raise ValueError(f"the checkpoint does not match {what} layout:\n  " + "\n  ".join(problems))

    for net, model in models.items():
        sd = _strip_data_parallel(checkpoint[net])
        ours = {key: sd[official].detach().clone().contiguous() for official, (key, _) in layout[net].items()}
        ours = {key: t.float() if t.is_floating_point() else t for key, t in ours.items()}
        model.load_state_dict(ours, strict=True, assign=True)
        left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
        if left:
            raise ValueError(f"{net}: tensors not set by the checkpoint: {left}")
        model.eval()
    return DualMCMCPipeline(
        energy_model=models["netE"], generator_model=models["netG"], encoder=models["netI"], **OFFICIAL_SAMPLER
    )


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
    """Convert the authors' ``.pth`` file into a ``DualMCMCPipeline`` folder (``save_pretrained`` + ``README.md`` from
    the ``model_cards/<dataset>.md`` template unless ``model_card=False``), written aside and moved into place; returns
    ``output_dir``.

    ``dataset``: ``"cifar10"`` / ``"celeba64"`` or ``None`` (inferred from the shapes; required with ``configs``, the
    configs of official-code runs at other widths, as it names the training data). ``output_dir`` must not exist
    unless ``overwrite`` and it is a pipeline folder this project wrote (:func:`hf_dualmcmc.hub.check_output_dir`),
    and is never the checkpoint's folder. ``hub_model_id``: the card's usage snippet; ``base_model``: the Hub id of
    the original weights, if on the Hub (by default the card links the authors' repository). ``ValueError`` naming
    the file: unreadable or unsafe, or not the official layout (every problem listed)."""
    from huggingface_hub import ModelCard

    from .atomic import atomic_directory, atomic_write
    from .hub import check_output_dir, write_model_card

    output_dir = check_output_dir(output_dir, overwrite=overwrite, inputs=[checkpoint_path])
    if configs is not None and dataset not in OFFICIAL_TRAINING:
        raise ValueError(f"with configs=, dataset must name the training data: one of {sorted(OFFICIAL_TRAINING)}")
    checkpoint = load_official_checkpoint(checkpoint_path)
    try:
        dataset = dataset or infer_official_dataset(checkpoint)
        pipe = convert_official_state_dicts(checkpoint, dataset, configs=configs)
    except ValueError as err:  # layout problems: name the file they come from
        raise ValueError(f"official checkpoint {str(checkpoint_path)!r}: {err}") from err

    with atomic_directory(output_dir) as tmp:
        pipe.save_pretrained(tmp)
        if model_card:
            # the authors' constants, as training-config sections (the widths of other-width runs from their configs)
            training = {name: dict(values) for name, values in OFFICIAL_TRAINING[dataset].items()}
            if configs is not None:
                energy, generator, encoder = configs
                widths = dict(ngf=generator.base_channels, ndf=energy.base_channels, nif=encoder.base_channels)
                training["model"].update(latent_dim=generator.latent_dim, **widths)
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
            card = ModelCard.load(readme)  # the authors' weights carry no licence: say so (license: other)
            card.data.license_name, card.data.license_link = "upstream-unlicensed", UPSTREAM_REPOSITORY
            atomic_write(readme, str(card))
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

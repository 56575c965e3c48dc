"""Quickstart against the installed wheel (run by ``.ci/run`` from a fresh venv, in a directory outside the repo).

Not collected by pytest (no ``test_`` prefix): it checks what ``pip install hf_dualmcmc-*.whl`` gives a user, so it
must not see the source tree. Builds a tiny pipeline, saves it, loads it back with ``DualMCMCPipeline`` and with
``diffusers.DiffusionPipeline`` (after ``import hf_dualmcmc``), samples, renders the model card (the templates are
package data) and prints ``wheel quickstart: ok (<version>, <path>)``.
"""

import pathlib
import sys
import tempfile

import diffusers
import numpy as np
import torch

import hf_dualmcmc
from hf_dualmcmc import (
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    configs_for_image_size,
)
from hf_dualmcmc.hub import write_model_card


def sample(pipe) -> np.ndarray:
    return pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np").images


def main() -> None:
    package = pathlib.Path(hf_dualmcmc.__file__).resolve().parent
    prefix = pathlib.Path(sys.prefix).resolve()
    source = pathlib.Path(__file__).resolve().parents[1] / "src"
    assert package.is_relative_to(prefix), f"hf_dualmcmc imported from {package}, not from the venv {prefix}"
    assert not package.is_relative_to(source), f"hf_dualmcmc imported from the source tree {package}"
    assert (package / "py.typed").is_file(), f"py.typed missing from {package}"

    torch.manual_seed(0)
    e, g, i = configs_for_image_size(8, 3, latent_dim=8, ngf=8, ndf=8, nif=8)
    pipe = DualMCMCPipeline(
        DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i), num_inference_steps=3
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "tiny"
        pipe.save_pretrained(folder)
        native = DualMCMCPipeline.from_pretrained(folder)
        generic = diffusers.DiffusionPipeline.from_pretrained(folder)
        assert type(generic) is DualMCMCPipeline, type(generic)
        a, b = sample(native), sample(generic)
        assert a.shape == (2, 8, 8, 3), a.shape
        assert np.array_equal(a, b), "same seed, same weights: the two loaders must sample the same images"
        assert np.array_equal(a, sample(native)), "same seed: the same images"
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0, (a.min(), a.max())
        card = write_model_card(folder).read_text(encoding="utf-8")
        assert card.startswith("---\n") and "DualMCMCPipeline" in card, card[:500]
    print(f"wheel quickstart: ok ({hf_dualmcmc.__version__}, {package})")


if __name__ == "__main__":
    main()

"""Random weights in the format of torch-fidelity's InceptionV3 file, for exercising the real FID/IS code offline."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch_fidelity import FeatureExtractorInceptionV3


class _Unloaded(FeatureExtractorInceptionV3):
    def load_state_dict(self, *args, **kwargs):  # keep the random initialisation
        return None


def save_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> str:
    """Write a randomly initialised InceptionV3 state dict to ``path`` (torch-fidelity's loadable format).

    FID/IS values computed with it are meaningless; convolutions get a He initialisation so that features stay well
    scaled through the 90-odd layers. Pass the file's SHA-256 as ``expected_sha256`` to load it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({}, path)  # the constructor loads a file; the subclass ignores its content
    torch.manual_seed(seed)
    net = _Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return str(path)

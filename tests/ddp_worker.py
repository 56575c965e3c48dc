"""Run by tests/test_ddp.py under `accelerate launch --multi_gpu --num_processes 2` on CPU (gloo).

Each rank runs one Dual-MCMC iteration on its own data shard and its own noise; after every backward it records a
checksum vector of the (synchronised) gradients, and at the end the updated weights. Rank files go to argv[1].
"""

import json
import sys

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from hf_dualmcmc.data import DataConfig
from hf_dualmcmc.trainer import build_models
from hf_dualmcmc.training import dual_mcmc_step, make_optimizers
from hf_dualmcmc.training_config import ModelSettings, TeachingConfig


def main(out_dir):
    acc = Accelerator()
    set_seed(0)
    E, G, I = build_models(DataConfig("sklearn:digits", image_size=8, num_channels=1),
                           ModelSettings(latent_dim=4, ngf=8, ndf=8, nif=4))
    cfg = TeachingConfig(num_steps=3, num_latent_steps=2)
    opts = make_optimizers(E, G, I, cfg)
    E, G, I, *opts = acc.prepare(E, G, I, *opts)
    set_seed(0, device_specific=True)
    data = torch.rand(6, 1, 8, 8) * 2 - 1  # different on every rank
    grads = []

    def backward(loss):
        acc.backward(loss)
        vec = torch.cat([p.grad.flatten() for m in (E, G, I) for p in m.parameters() if p.grad is not None])
        grads.append([vec.sum().item(), vec.abs().sum().item(), vec.pow(2).sum().item(), vec.numel()])

    out = dual_mcmc_step(data, E, G, I, opts, cfg, backward=backward, autocast=acc.autocast, unwrap=acc.unwrap_model)
    weights = {
        name: [p.double().sum().item() for p in acc.unwrap_model(m).parameters()]
        for name, m in (("E", E), ("G", G), ("I", I))
    }
    result = {"rank": acc.process_index, "world": acc.num_processes, "grads": grads, "weights": weights,
              "data_sum": data.sum().item(), "loss_energy": out.loss_energy}
    with open(f"{out_dir}/rank{acc.process_index}.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])

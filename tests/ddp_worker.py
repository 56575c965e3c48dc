"""Run by tests/test_ddp.py under `accelerate launch --multi_gpu --num_processes 2` on CPU (gloo).

Each rank runs one Dual-MCMC iteration on its own data shard and its own noise; after every backward it records a
checksum vector of the (synchronised) gradients, and at the end the updated weights. Then the trainer: 4 steps
(gradient accumulation over 2 micro-batches, EMA) uninterrupted, and 2 + 2 steps resumed from a checkpoint; each
rank records whether its resumed history equals its uninterrupted one. Rank files go to argv[1].
"""

import json
import os
import sys
from pathlib import Path

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
    E, G, I = build_models(
        DataConfig("sklearn:digits", image_size=8, num_channels=1), ModelSettings(latent_dim=4, ngf=8, ndf=8, nif=4)
    )
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
    result = {
        "rank": acc.process_index,
        "world": acc.num_processes,
        "grads": grads,
        "weights": weights,
        "data_sum": data.sum().item(),
        "loss_energy": out.loss_energy,
        **resume_check(Path(out_dir)),
    }
    with open(f"{out_dir}/rank{acc.process_index}.json", "w") as f:
        json.dump(result, f)


def resume_check(root):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import state_of, tiny_config

    from hf_dualmcmc.trainer import train

    def config(out, steps):  # 48 images / (4 per rank x 2 ranks x 2 micro-batches) = 3 steps per epoch
        return tiny_config(
            root / out,
            batch_size=4,
            gradient_accumulation_steps=2,
            epochs=2,
            max_steps=steps,
            checkpoint_every=2,
            use_ema=True,
            ema_decay=0.9,
        )

    full = train(config("full", 4))
    train(config("part", 2))
    resumed = train(config("part", 4), resume_from_checkpoint="latest")
    same_weights = None
    if resumed.pipeline_dir is not None:  # the main process exports
        a, b = state_of(full.pipeline_dir), state_of(resumed.pipeline_dir)
        same_weights = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    checkpoint = root / "part" / "checkpoints" / "checkpoint-4"
    return {
        "locked_out": locked_out(root / "full", config("full", 5)),
        "resumed_history_identical": full.history[2:] == resumed.history,
        "history_steps": len(full.history),
        "loss_generator_step4": full.history[-1]["loss_generator"],
        "resumed_weights_identical": same_weights,
        "checkpoint_files": sorted(p.name for p in checkpoint.iterdir()),
    }


def locked_out(out, config):
    """A run whose output_dir another run holds (here: rank 0's own extra lock): every rank stops with
    OutputDirError (only the main process takes the lock; the others must not wait for it forever)."""
    from filelock import FileLock

    from hf_dualmcmc.trainer import OutputDirError, train

    lock = FileLock(out / ".hf-dualmcmc.lock", timeout=0)
    if int(os.environ.get("RANK", "0")) == 0:
        lock.acquire()
    try:
        train(config, resume_from_checkpoint="latest")
    except OutputDirError as err:
        return str(err)
    finally:
        if lock.is_locked:
            lock.release()


if __name__ == "__main__":
    main(sys.argv[1])

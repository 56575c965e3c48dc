import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    shutil.which("accelerate") is None and not (Path(sys.executable).parent / "accelerate").exists(),
    reason="the accelerate CLI is not installed",
)
def test_two_process_cpu_ddp_gradients_identical_across_ranks_and_resume(tmp_path):
    launcher = Path(sys.executable).parent / "accelerate"
    launcher = str(launcher) if launcher.exists() else shutil.which("accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        launcher,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["data_sum"] != r1["data_sum"]  # each rank really saw different data (and noise)
    assert len(r0["grads"]) == 3  # generator, encoder, energy backward passes
    assert r0["grads"] == r1["grads"]  # all-reduced gradients, bit-identical on both ranks
    assert r0["weights"] == r1["weights"]  # and so the updated weights
    # the trainer under DDP with gradient accumulation and EMA: a resumed run continues bit-identically on every rank
    assert r0["resumed_history_identical"] and r1["resumed_history_identical"] and r0["history_steps"] == 4
    assert r0["loss_generator_step4"] != r1["loss_generator_step4"]  # (per-rank losses of different shards)
    assert "is in use by another training run" in r0["locked_out"] and "refused by the main process" in r1["locked_out"]
    assert r0["resumed_weights_identical"] is True and r1["resumed_weights_identical"] is None  # rank 0 exports
    assert {"random_states_0.safetensors", "random_states_1.safetensors"} <= set(r0["checkpoint_files"])

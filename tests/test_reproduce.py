"""benchmarks/reproduce.py end to end at toy sizes: runs are cached, skipped when cached, and the table and plots are
rebuilt from the cache alone (``--table-only``)."""

import json
import shutil

import pytest
import yaml
from conftest import MNIST, REPO_ROOT, load_module


@pytest.fixture(scope="module")
def reproduce():
    return load_module("benchmarks/reproduce.py", "reproduce")


def test_bad_arguments_are_refused(reproduce, capsys):
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--suite", "toy", "--methods", "dual_mcmc,vae"])
    assert "unknown methods ['vae']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--suite", "mnist", "--set", "model.spectral_norm=false"])
    assert "--variant" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--suite", "mnist", "--variant", "../x", "--set", "model.spectral_norm=false"])
    assert "folder name" in capsys.readouterr().err


@pytest.mark.skipif(
    not MNIST.is_file(), reason=f"MNIST not found at {MNIST}: set HF_DUALMCMC_MNIST_DIR to its IDX folder"
)
def test_mnist_suite_trains_evaluates_caches_and_rebuilds_the_table(reproduce, tmp_path, capsys):
    argv = [
        "--suite",
        "mnist",
        "--seeds",
        "0",
        "--methods",
        "short_run,inference_only",
        "--mnist-steps",
        "2",
        "--mnist-width",
        "8",
        "--mnist-batch-size",
        "8",
        "--mnist-x-steps",
        "2",
        "--mnist-samples",
        "100",
        "--fd-classifier-steps",
        "20",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out-dir",
        str(tmp_path / "out"),
    ]
    table = reproduce.main(argv)

    short = json.loads((tmp_path / "cache/mnist/mnist/short_run/seed0.json").read_text())
    inf = json.loads((tmp_path / "cache/mnist/mnist/inference_only/seed0.json").read_text())
    assert short["iterations"] == inf["iterations"] == 2
    assert short["config"]["teaching"]["method"] == "short_run"
    assert short["config"]["data"]["split"] == "train" and short["config"]["sampler"]["num_inference_steps"] == 2
    # each method reports what its networks allow: an EBM without a generator has no proposals, an encoder without
    # an EBM has no revised samples
    assert {"domain_fd_revised", "domain_fd_train_data"} <= set(short["metrics"])
    assert "domain_fd_proposals" not in short["metrics"] and "mse_inf" not in short["metrics"]
    assert {"domain_fd_proposals", "mse_inf", "mse_inf_plus_l"} <= set(inf["metrics"])
    assert "domain_fd_revised" not in inf["metrics"]
    assert all(v >= 0 for m in (short, inf) for k, v in m["metrics"].items() if k.startswith(("domain_fd", "mse")))
    assert "| short_run | - | 1 | 2 |" in table and "| inference_only | - | 1 | 2 |" in table
    assert (tmp_path / "out" / "mnist_table.md").read_text() == table
    assert (tmp_path / "out" / "mnist_samples.png").stat().st_size > 1000

    # cached runs are not retrained (the run folder's mtime would change) and --table-only gives the same table
    stamp = (tmp_path / "cache/mnist/mnist/short_run/seed0.json").stat().st_mtime_ns
    assert reproduce.main(argv) == table
    assert reproduce.main(argv + ["--table-only"]) == table
    assert (tmp_path / "cache/mnist/mnist/short_run/seed0.json").stat().st_mtime_ns == stamp

    # a cached run is never silently reused for other settings
    with pytest.raises(SystemExit, match="--variant"):
        reproduce.main(argv + ["--mnist-width", "16"])
    # a variant is its own cached run and its own table row, with its overrides
    variant = reproduce.main(
        argv + ["--methods", "inference_only", "--variant", "obs05", "--set", "model.observation_std=0.5"]
    )
    record = json.loads((tmp_path / "cache/mnist/mnist/inference_only+obs05/seed0.json").read_text())
    assert record["config"]["model"]["observation_std"] == 0.5 and record["variant"] == "obs05"
    assert "| inference_only+obs05 | `model.observation_std=0.5` | 1 | 2 |" in variant
    # the table is the cache's: every cached run, not only those of this call's --methods
    assert variant.count("| inference_only") == 2 and "| short_run | - | 1 | 2 |" in variant

    # every run records its energy-gap trajectory (from its history.jsonl), its precision and whether it resumed
    history = [json.loads(line) for line in (tmp_path / "cache/mnist/mnist/short_run/seed0/history.jsonl").open()]
    assert short["energy_gap_trajectory"] == {
        "window": 50,
        "steps": [2],
        "mean_abs_gap": [pytest.approx((history[0]["energy_gap"] + history[1]["energy_gap"]) / 2)],
    }
    assert short["mixed_precision"] == "no" and short["resumed"] is False
    assert "Energy gap: mean |E(data) - E(samples)| per 50-step window" not in variant  # no full window yet
    # equal wall clock: no step limit, the budget decides (0 minutes: one step); its own row. (bf16 is the same with
    # --set run.mixed_precision=bf16, in a process of its own: accelerate's state keeps a process's first precision)
    wall = reproduce.main(
        argv
        + ["--methods", "short_run", "--variant", "wall", "--set", "run.max_minutes=0", "--set", "run.max_steps=null"]
    )
    record = json.loads((tmp_path / "cache/mnist/mnist/short_run+wall/seed0.json").read_text())
    assert record["iterations"] == 1 and record["energy_gap_trajectory"]["steps"] == [1]
    assert record["config"]["run"]["max_steps"] is None and record["config"]["run"]["max_minutes"] == 0
    assert "| short_run+wall | `run.max_minutes=0`, `run.max_steps=null` | 1 | 1 |" in wall
    # a record cached before trajectories were kept still compares equal and still makes the table
    path = tmp_path / "cache/mnist/mnist/short_run/seed0.json"
    old = json.loads(path.read_text())
    for key in ("energy_gap_trajectory", "mixed_precision", "resumed"):
        del old[key]
    path.write_text(json.dumps(old))
    assert reproduce.main(argv + ["--methods", "short_run"]) == reproduce.main(argv + ["--table-only"])
    assert path.read_text() == json.dumps(old)  # not retrained


def test_energy_gap_trajectory_and_its_table(reproduce):
    history = [{"step": s, "energy_gap": float(s)} for s in range(1, 121)]
    trajectory = reproduce.energy_gap_trajectory(history)
    assert trajectory == {"window": 50, "steps": [50, 100, 120], "mean_abs_gap": [25.5, 75.5, 110.5]}

    def record(seed, trajectory):
        return {"seed": seed, **({"energy_gap_trajectory": trajectory} if trajectory else {})}

    shifted = reproduce.energy_gap_trajectory([{"step": s, "energy_gap": s + 2.0} for s in range(1, 61)])
    table = reproduce.gap_table(
        {"dual_mcmc": [record(0, None), record(1, None)], "dual_mcmc+bf16": [record(0, trajectory), record(1, shifted)]}
    )
    # full windows only (the partial last window is in the record, not in the table), mean ± std over seeds
    assert "| run | seeds | 1-50 | 51-100 |" in table
    assert "| dual_mcmc+bf16 | 2 | 26.5 ± 1.4 | 75.5 |" in table
    assert "Not recorded (cached before runs kept their gap trajectory): dual_mcmc (seeds 0, 1)" in table
    assert reproduce.gap_table({"dual_mcmc": [record(0, None)]}) == ""


def test_seconds_per_iteration_counts_the_steps_of_the_invocation_that_timed_them(reproduce):
    spi = reproduce.seconds_per_iteration
    assert spi({"iterations": 400, "train_seconds": 800.0, "resumed": False}) == 2.0  # cached before start_step
    assert spi({"iterations": 1800, "train_seconds": 1200.0, "resumed": True, "start_step": 1200}) == 2.0
    assert spi({"iterations": 1800, "train_seconds": 3.0, "resumed": True, "start_step": 1800}) is None  # no step
    assert spi({"iterations": 1800, "train_seconds": 900.0, "resumed": True}) is None  # resumed from where: unknown


def test_cached_fp32_dual_mcmc_runs_match_the_current_settings(reproduce, tmp_path):
    """The committed float32 dual-MCMC runs (seeds 0, 1) are reused by benchmarks/run_bf16_study.sh: they must still
    compare equal to what the suite would train now (else reproduce.py refuses them)."""
    args = reproduce.parse_args(["--suite", "mnist"])
    for seed in (0, 1):
        path = reproduce.run_path(REPO_ROOT / "benchmarks" / "cache", "mnist", "mnist", "dual_mcmc", seed)
        cached = json.loads(path.read_text())
        assert cached["train_seconds"] > 0 and cached["iterations"] == args.mnist_steps
        current = reproduce.image_config(args, "dual_mcmc", seed, tmp_path).to_dict()
        assert reproduce.comparable(cached["config"]) == reproduce.comparable(current)
        bf16 = reproduce.parse_args(["--suite", "mnist", "--variant", "bf16", "--set", "run.mixed_precision=bf16"])
        other = reproduce.comparable(reproduce.image_config(bf16, "dual_mcmc", seed, tmp_path).to_dict())
        assert other != reproduce.comparable(current) and other["run"]["mixed_precision"] == "bf16"


def test_toy_suite_runs_caches_and_rebuilds_the_table(reproduce, tmp_path, monkeypatch):
    import toy  # benchmarks/toy.py, the module reproduce imports (loading reproduce put benchmarks/ on sys.path)

    real_train, real_eval = toy.train_toy, toy.evaluate_toy
    monkeypatch.setattr(toy, "train_toy", lambda *a, **k: real_train(*a, hidden_dim=16, num_layers=1, **k))
    monkeypatch.setattr(
        toy,
        "evaluate_toy",
        lambda run: real_eval(run, num_samples=200, resolution=32, num_data_hist=20000, num_test=300),
    )
    argv = [
        "--suite",
        "toy",
        "--toys",
        "8gaussians",
        "--seeds",
        "0,1",
        "--iterations",
        "2",
        "--batch-size",
        "16",
        "--x-steps",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out-dir",
        str(tmp_path / "out"),
    ]
    table = reproduce.main(argv)
    for method in reproduce.METHODS:
        for seed in (0, 1):
            assert (tmp_path / f"cache/toy/8gaussians/{method}/seed{seed}.json").is_file()
        assert f"| 8gaussians | {method} | 2 | 2 ± 0 |" in table
    assert (tmp_path / "out" / "toy_8gaussians.png").stat().st_size > 1000
    assert reproduce.main(argv + ["--table-only"]) == table


def test_mnist_runs_are_sampled_with_their_training_chain(reproduce, tmp_path):
    def config(*sets):
        argv = ["--suite", "mnist", "--mnist-x-steps", "7"]
        if sets:
            argv += ["--variant", "v"] + [a for s in sets for a in ("--set", s)]
        return reproduce.image_config(reproduce.parse_args(argv), "short_run", 0, tmp_path)

    default = config()
    assert (default.sampler.num_inference_steps, default.sampler.step_size, default.sampler.noise_scale) == (
        7,
        default.teaching.step_size,
        default.teaching.noise_scale,
    )
    changed = config("teaching.step_size=0.3", "teaching.use_noise=false")
    assert (changed.sampler.step_size, changed.sampler.noise_scale) == (0.3, 0.0)
    assert config("teaching.step_size=0.3", "sampler.step_size=0.4").sampler.step_size == 0.4


def test_a_recipe_file_is_trained_as_written_with_the_suites_bookkeeping(reproduce, tmp_path, capsys):
    args = reproduce.parse_args(["--suite", "mnist", "--config", str(REPO_ROOT / "configs" / "mnist.yaml")])
    assert args.variant == "config-mnist"  # cached apart from the suite's default runs
    config = reproduce.image_config(args, "cooperative", 2, tmp_path / "run")
    recipe = yaml.safe_load((REPO_ROOT / "configs" / "mnist.yaml").read_text())
    assert config.teaching.method == "cooperative" and config.run.seed == 2
    assert config.run.output_dir == str(tmp_path / "run") and config.run.report_to == "none"
    assert config.teaching.lr_generator == recipe["teaching"]["lr_generator"]
    assert (
        config.run.max_steps == recipe["run"]["max_steps"]
        and config.sampler.step_size == recipe["sampler"]["step_size"]
    )
    changed = reproduce.parse_args(
        [
            "--suite",
            "mnist",
            "--config",
            str(REPO_ROOT / "configs" / "mnist.yaml"),
            "--variant",
            "short",
            "--set",
            "run.max_steps=7",
        ]
    )
    assert reproduce.image_config(changed, "dual_mcmc", 0, tmp_path).run.max_steps == 7

    other = tmp_path / "digits.yaml"
    other.write_text((REPO_ROOT / "configs" / "digits.yaml").read_text())
    with pytest.raises(SystemExit, match="data.source: mnist"):
        reproduce.image_config(
            reproduce.parse_args(["--suite", "mnist", "--config", str(other)]), "dual_mcmc", 0, tmp_path
        )
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--suite", "mnist", "--config", str(tmp_path / "missing.yaml")])
    assert "no such file" in capsys.readouterr().err


def test_digits_suite_trains_the_embedded_default_and_floors_at_the_training_set(reproduce, tmp_path):
    """``--suite digits`` trains configs/digits.yaml (here shrunk through --set), evaluates on the 180 held-out digits,
    and its floor uses all 1,617 training digits when more samples are asked for."""
    args = reproduce.parse_args(["--suite", "digits"])
    assert args.config == REPO_ROOT / "configs" / "digits.yaml" and args.variant is None
    tiny = [
        "--set",
        "run.max_steps=2",
        "--set",
        "model.ngf=8",
        "--set",
        "model.ndf=8",
        "--set",
        "model.nif=8",
        "--set",
        "teaching.num_steps=2",
        "--set",
        "teaching.num_latent_steps=2",
        "--set",
        "sampler.num_inference_steps=2",
        "--set",
        "run.batch_size=8",
    ]
    argv = [
        "--suite",
        "digits",
        "--seeds",
        "0",
        "--methods",
        "dual_mcmc",
        "--samples",
        "1700",
        "--variant",
        "tiny",
        *tiny,
        "--fd-classifier-steps",
        "20",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out-dir",
        str(tmp_path / "out"),
    ]
    table = reproduce.main(argv)
    record = json.loads((tmp_path / "cache/digits/digits/dual_mcmc+tiny/seed0.json").read_text())
    assert (
        record["suite"] == "digits"
        and record["iterations"] == 2
        and record["config"]["data"]["source"] == "sklearn:digits"
    )
    metrics = record["metrics"]
    assert (
        metrics["domain_fd_train_data_n"] == 1617 and 0 < metrics["domain_fd_train_data"] < metrics["domain_fd_revised"]
    )
    assert metrics["mse_inf"] > 0 and metrics["domain_fd_proposals"] > 0
    assert "| dual_mcmc+tiny | `run.max_steps=2`" in table and "Domain FD of 1617 training images" in table
    assert (tmp_path / "out" / "digits_table.md").read_text() == table
    assert (tmp_path / "out" / "digits_samples.png").stat().st_size > 500
    # the energy as an OOD score (docs/EVALUATION.md's protocol); the other-digits set is MNIST, when present
    ood = metrics["ood_energy"]
    assert {"uniform_noise", "gaussian_noise", "constant", "inverted"} <= set(ood)
    assert ("other_digits" in ood) == MNIST.is_file()
    assert all(0 <= v["auroc"] <= 1 and 0 <= v["fpr95"] <= 1 for v in ood.values())
    assert "Energy as an OOD score" in table and "| dual_mcmc+tiny | 1 | 2 |" in table
    # --reevaluate scores the cached run's pipeline again (here: its OOD scores, removed from the cache)
    path = tmp_path / "cache/digits/digits/dual_mcmc+tiny/seed0.json"
    path.write_text(json.dumps({**record, "metrics": {k: v for k, v in metrics.items() if k != "ood_energy"}}))
    reproduce.main(argv + ["--reevaluate"])
    assert json.loads(path.read_text())["metrics"]["ood_energy"] == ood
    # --eval_steps needs the checkpoint's exported pipeline (run.export_at_checkpoints)
    with pytest.raises(SystemExit, match=r"--eval_steps 2: .*checkpoint-2/pipeline does not exist"):
        reproduce.main(argv + ["--reevaluate", "--eval_steps", "2"])
    # --ood_checkpoints scores every checkpoint's pipeline once, also for a cached run (no retraining, no rescoring)
    run_dir = path.with_suffix("")
    shutil.copytree(REPO_ROOT / record["pipeline"], run_dir / "checkpoints" / "checkpoint-2" / "pipeline")
    table = reproduce.main(argv + ["--ood_checkpoints"])
    cached = json.loads(path.read_text())
    assert cached["ood_trajectory"] == {"2": ood} and cached["metrics"]["ood_energy"] == ood
    worst = min(("uniform_noise", "gaussian_noise", "constant", "inverted"), key=lambda c: ood[c]["auroc"])
    assert "Lowest energy AUROC over the synthetic OOD sets" in table
    label = f" ({worst.split('_')[0]})" if ood[worst]["auroc"] < 0.9995 else ""  # which set, when one is below 1
    assert f"| dual_mcmc+tiny | 0 | {ood[worst]['auroc']:.3f}{label} |" in table
    with pytest.raises(SystemExit, match="data.source: sklearn:digits"):  # an MNIST recipe is not a digits run
        reproduce.image_config(
            reproduce.parse_args(["--suite", "digits", "--config", str(REPO_ROOT / "configs" / "mnist.yaml")]),
            "dual_mcmc",
            0,
            tmp_path,
        )

"""Every speed-up that claims identical math gives the iteration of the plain reference (benchmarks/reference.py);
bf16_is_native; the measuring tools of benchmarks/bench_step.py (benchmarks/profiling.py)."""

import copy
import re

import pytest
import torch
from conftest import REPO_ROOT, load_module

from hf_dualmcmc import (
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    configs_for_image_size,
    energy_langevin,
    performance,
)
from hf_dualmcmc.performance import autocast_factory, chain_compiler, precision_context, to_memory_format
from hf_dualmcmc.training import dual_mcmc_step, make_optimizers
from hf_dualmcmc.training_config import TeachingConfig

profiling = load_module("benchmarks/profiling.py", "profiling")
reference = load_module("benchmarks/reference.py", "reference")
reference_dual_mcmc_step, reference_sample = reference.reference_dual_mcmc_step, reference.reference_sample
reference_energy_chain, reference_posterior_chain = (
    reference.reference_energy_chain,
    reference.reference_posterior_chain,
)

CL = torch.channels_last


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and keeps these tests quick on a shared, oversubscribed machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build(seed=0, spectral_norm=True, size=8, channels=1):
    torch.manual_seed(seed)
    e, g, i = configs_for_image_size(size, channels, latent_dim=4, ngf=8, ndf=8, nif=4)
    e.spectral_norm = spectral_norm
    return DualMCMCEnergyModel(e).train(), DualMCMCGeneratorModel(g).train(), DualMCMCEncoderModel(i).train()


def data(batch=6, size=8, channels=1, seed=5):
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def run_pair(variant, step_kwargs=None, models=None, n_iterations=2, cfg=None):
    """(optimised models, reference models, optimised outputs, reference outputs) after ``n_iterations``."""
    cfg = cfg or TeachingConfig(num_steps=4, num_latent_steps=3, step_size=0.3)
    E, G, I = models or build(spectral_norm=variant != "no_spectral_norm")
    if variant == "spectral_norm_eval":
        E.eval()  # W / sigma from the stored u, v: both see exactly the same normalised weights
    E2, G2, I2 = copy.deepcopy(E), copy.deepcopy(G), copy.deepcopy(I)
    step_kwargs = dict(step_kwargs or {})
    if step_kwargs.get("memory_format") is not None:
        to_memory_format(E, G, I, memory_format=step_kwargs["memory_format"])
    opt, ref_opt = make_optimizers(E, G, I, cfg), make_optimizers(E2, G2, I2, cfg)
    x = data()
    outs, refs = [], []
    for it in range(n_iterations):
        torch.manual_seed(100 + it)
        outs.append(dual_mcmc_step(x, E, G, I, opt, cfg, **step_kwargs))
        torch.manual_seed(100 + it)
        refs.append(reference_dual_mcmc_step(x, E2, G2, I2, ref_opt, cfg))
    return (E, G, I), (E2, G2, I2), outs, refs


# Generator biases right before a BatchNorm (conv1 -> norm2; conv2 + shortcut -> the next norm) have an exactly zero
# gradient; float rounding leaves ~1e-9 noise whose sign Adam (betas (0, 0.9)) turns into steps of up to ~lr. They are
# compared to 2 * lr_generator per iteration instead of to float precision, and so are the BatchNorm running means
# that average those biases in.
BN_CANCELLED = re.compile(r"blocks\.\d+\.(conv1|conv2|shortcut)\.bias|.*running_mean")


def assert_same_iteration(ours, theirs, outs, refs, loss_rel, weight_atol, skip_power_vectors=False, adam_flip=False):
    """Same scalars (``loss_rel``) and weights (``weight_atol``). ``adam_flip``: allow each model's weights to differ by
    up to one Adam step of its learning rate in either direction per iteration (near-zero gradients whose sign is
    decided by float rounding)."""
    n_iterations = len(outs)
    cfg = TeachingConfig()
    lrs = {
        DualMCMCEnergyModel: cfg.lr_energy,
        DualMCMCGeneratorModel: cfg.lr_generator,
        DualMCMCEncoderModel: cfg.lr_encoder,
    }
    for o, r in zip(outs, refs):
        for key, value in o.as_dict().items():
            assert value == pytest.approx(r.as_dict()[key], rel=loss_rel, abs=1e-6), key
    for a_model, b_model in zip(ours, theirs):
        sa, sb = a_model.state_dict(), b_model.state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            if skip_power_vectors and name.endswith(("_u", "_v")):
                continue  # power-iteration vectors: once per chain vs once per forward
            atol = max(weight_atol, 2 * n_iterations * lrs[type(a_model)]) if adam_flip else weight_atol
            if isinstance(a_model, DualMCMCGeneratorModel) and BN_CANCELLED.fullmatch(name):
                atol = max(atol, 2 * n_iterations * TeachingConfig().lr_generator)
            assert torch.allclose(sa[name].float(), sb[name].float(), rtol=1e-5, atol=atol), name


# ----------------------------------------------------------------------------------------------------------------
# chain_mode (frozen parameters, spectral norm once per chain) and the in-place update: the default step
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["no_spectral_norm", "spectral_norm_eval", "spectral_norm_train"])
def test_default_step_matches_reference(variant):
    if variant == "spectral_norm_train":
        # the reference runs the power iteration at every forward (as the authors), the step once per chain: sigma
        # differs by ~1e-6 relative, which the 1/mcmc_temp = 250,000 scale of the energy loss makes visible; Adam's
        # first step (~lr * sign(grad)) can flip for near-zero energy gradients, and from the second iteration on the
        # two runs follow slightly different energies. One iteration, compared as the oracle test does.
        ours, theirs, outs, refs = run_pair(variant, n_iterations=1)
        assert_same_iteration(ours, theirs, outs, refs, 1e-3, 1e-6, skip_power_vectors=True, adam_flip=True)
        return
    ours, theirs, outs, refs = run_pair(variant)
    assert_same_iteration(ours, theirs, outs, refs, 1e-5, 1e-6)
    assert outs[0].loss_energy != outs[1].loss_energy  # two different iterations were compared


def test_reference_chains_match_langevin_module():
    E, G, _ = build(spectral_norm=False)
    x = data()
    torch.manual_seed(3)
    fast = energy_langevin(E, x, 5, 0.4, 0.01).sample
    torch.manual_seed(3)
    slow = reference_energy_chain(E, x, 5, 0.4, 0.01)
    assert torch.allclose(fast, slow, atol=1e-6) and not torch.allclose(fast, x)
    # parameters were frozen inside the fast chain and restored; the reference never touched them
    assert all(p.requires_grad for p in E.parameters()) and all(p.grad is None for p in E.parameters())

    from hf_dualmcmc import posterior_langevin

    z0 = torch.randn(6, 4)
    G_ref = copy.deepcopy(G)
    torch.manual_seed(4)
    fast = posterior_langevin(G, z0, x, 3, 0.1, 0.1, 0.3).sample
    torch.manual_seed(4)
    slow = reference_posterior_chain(G_ref, z0, x, 3, 0.1, 0.1, 0.3)
    assert torch.allclose(fast, slow, atol=1e-5) and not torch.allclose(fast, z0)
    # both updated the generator's BatchNorm running statistics identically (train mode, one update per step)
    assert torch.allclose(G.blocks[0].norm1.running_mean, G_ref.blocks[0].norm1.running_mean, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# channels_last
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["no_spectral_norm", "spectral_norm_eval"])
def test_channels_last_step_matches_reference(variant):
    ours, theirs, outs, refs = run_pair(variant, {"memory_format": CL})
    conv = ours[0].start.conv1
    weight = conv.parametrizations.weight.original if variant != "no_spectral_norm" else conv.weight
    assert weight.is_contiguous(memory_format=CL)
    # other conv kernels: float rounding differs (~1e-7 relative), amplified by the 250,000 energy-loss scale
    assert_same_iteration(ours, theirs, outs, refs, 1e-4, 1e-5)


def test_channels_last_chain_state_and_outputs():
    E, G, I = build(spectral_norm=False, size=16, channels=3)
    to_memory_format(E, G, I)
    assert G.conv_out.weight.is_contiguous(memory_format=CL) and E.start.conv1.weight.is_contiguous(memory_format=CL)
    cfg = TeachingConfig(num_steps=2, num_latent_steps=1)
    out = dual_mcmc_step(
        data(4, 16, 3), E, G, I, make_optimizers(E, G, I, cfg), cfg, memory_format=CL, keep_tensors=True
    )
    assert out.extras["revised"].is_contiguous(memory_format=CL) and out.extras["revised"].dtype == torch.float32
    assert out.is_finite()
    with pytest.raises(ValueError, match="memory_format"):
        to_memory_format(E, memory_format="channels_last")


def test_channels_last_sampling_matches_reference():
    E, G, I = build(spectral_norm=True, size=16, channels=3)
    E.eval()
    E2, G2 = copy.deepcopy(E), copy.deepcopy(G)
    to_memory_format(E, G, I)
    pipe = DualMCMCPipeline(E, G, I, num_inference_steps=6, step_size=0.4, noise_scale=0.001, bn_stats="batch")
    pipe.set_progress_bar_config(disable=True)
    latents = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(9)
    fast = pipe(latents=latents, output_type="pt").images
    torch.manual_seed(9)
    with G2.batch_norm_stats("batch"):
        slow = reference_sample(E2, G2, latents, 6, 0.4, 0.001)
    # the pipeline draws its noise from the global RNG too (no generator given) and maps [-1, 1] to [0, 1]
    assert torch.allclose(fast, ((slow + 1) / 2).clamp(0, 1), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# torch.compile of the chain networks (the eager backend: tests Dynamo's capture in seconds, not inductor's codegen)
# ----------------------------------------------------------------------------------------------------------------


def test_compiled_chains_match_reference():
    torch._dynamo.reset()
    compiler = chain_compiler("cpu", backend="eager")
    cfg = TeachingConfig(num_steps=2, num_latent_steps=2, step_size=0.3)
    ours, theirs, outs, refs = run_pair("spectral_norm_eval", {"chain_compiler": compiler}, n_iterations=1, cfg=cfg)
    assert_same_iteration(ours, theirs, outs, refs, 1e-5, 1e-6)
    E = ours[0]
    assert compiler(E.energy) is compiler(E.energy)  # one compiled function per network, reused every iteration


# ----------------------------------------------------------------------------------------------------------------
# bf16 autocast (opt-in, not identical): fp32 state, close to fp32
# ----------------------------------------------------------------------------------------------------------------


def test_bf16_autocast_keeps_fp32_state_and_stays_close():
    cfg = TeachingConfig(num_steps=3, num_latent_steps=2, use_temp=False)
    results = {}
    for precision in ("fp32", "bf16"):
        E, G, I = build(spectral_norm=False, size=16, channels=3)
        torch.manual_seed(7)
        results[precision] = dual_mcmc_step(
            data(4, 16, 3),
            E,
            G,
            I,
            make_optimizers(E, G, I, cfg),
            cfg,
            autocast=autocast_factory("cpu", precision),
            keep_tensors=True,
        )
        assert all(p.dtype == torch.float32 for m in (E, G, I) for p in m.parameters())
    fp32, bf16 = results["fp32"], results["bf16"]
    assert bf16.extras["revised"].dtype == torch.float32
    assert bf16.loss_generator == pytest.approx(fp32.loss_generator, rel=0.05)
    assert bf16.energy_data == pytest.approx(fp32.energy_data, rel=0.05, abs=0.05)
    assert bf16.loss_generator != fp32.loss_generator  # bf16 really ran
    assert autocast_factory("cpu", "fp32") is None
    with pytest.raises(ValueError, match="precision"):
        autocast_factory("cpu", "fp8")
    with precision_context("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")


# ----------------------------------------------------------------------------------------------------------------
# measuring tools
# ----------------------------------------------------------------------------------------------------------------


def test_count_flops_through_a_langevin_step():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.randn(2, 3, 8, 8)

    def one_step():
        return energy_langevin(lambda t: conv(t).pow(2).flatten(1).sum(1), x, 1, 0.1, 0.0).sample

    out, flops = profiling.count_flops(one_step)
    forward = 2 * 2 * 8 * 3 * 9 * 8 * 8  # 2 * batch * out_ch * in_ch * k * k * H * W
    assert out.shape == x.shape
    assert flops == 2 * forward  # forward + grad w.r.t. the input (no weight gradient inside a chain)
    assert profiling.peak_memory_bytes("cpu") > 0


def test_trainer_channels_last_matches_default_and_exports(tmp_path):
    from hf_dualmcmc.trainer import train
    from hf_dualmcmc.training_config import TrainConfig

    raw = {
        "data": {"source": "sklearn:digits", "image_size": 8, "num_channels": 1, "max_images": 16},
        "model": {"latent_dim": 4, "ngf": 8, "ndf": 8, "nif": 4},
        "teaching": {"num_steps": 2, "num_latent_steps": 2},
        "sampler": {"num_inference_steps": 2, "num_latent_steps": 1},
        "run": {
            "output_dir": str(tmp_path / "a"),
            "batch_size": 8,
            "max_steps": 2,
            "sample_every": 0,
            "checkpoint_every": 2,
            "report_to": "none",
            "num_sample_images": 4,
            "mixed_precision": "no",  # float32 on every CPU: "auto" picks bf16 where it is native
        },
    }
    plain = train(TrainConfig.from_dict(copy.deepcopy(raw)))
    raw["run"].update(output_dir=str(tmp_path / "b"), channels_last=True)
    config = TrainConfig.from_dict(raw)
    assert config.run.channels_last and not config.run.compile
    nhwc = train(config)
    for a, b in zip(plain.history, nhwc.history):
        for key in ("loss_generator", "loss_encoder", "recon_sse", "energy_data"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    pipe = DualMCMCPipeline.from_pretrained(nhwc.pipeline_dir)  # channels_last weights export and load
    assert pipe(batch_size=2, output_type="np").images.shape == (2, 8, 8, 1)


def load_bench():
    bench = load_module("benchmarks/bench_step.py", "bench_step")
    tiny = [
        "--config",
        str(REPO_ROOT / "configs" / "digits.yaml"),
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--nif",
        "4",
        "--latent_dim",
        "4",
        "--batch_size",
        "4",
        "--reference",
        "--channels-last",  # an old spelling, still accepted
        "--precision",
        "bf16",
        "--sample_steps",
        "3",
        "--set",
        "teaching.num_steps=3",
        "teaching.num_latent_steps=2",
    ]
    return bench, tiny


def test_bench_step_reports_both_modes(tmp_path, capsys):
    import json

    bench, tiny = load_bench()
    out = tmp_path / "bench.json"
    assert bench.main(tiny + ["--repeats", "2", "--warmup", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for section in ("train", "sample"):
        assert len(res[section]["runs_s"]["optimised"]) == 2 and len(res[section]["runs_s"]["reference"]) == 2
        assert all(t > 0 for t in res[section]["median_s"].values())
        med = res[section]["median_s"]
        assert res[section]["speedup"] == {"optimised vs reference": pytest.approx(med["reference"] / med["optimised"])}
    assert res["train"]["flops"]["reference"] > 0 and res["train"]["gflops_per_s"]["optimised"] > 0
    assert res["sample"]["images_per_s"]["optimised"] > 0
    assert 0.99 < res["bf16_deviation"]["revision_cosine"] <= 1.0
    assert res["peak_memory_bytes"] > 0 and len(res["load_start"]) == 3
    printed = capsys.readouterr().out
    assert "| measure | optimised | reference | speed-up optimised vs reference |" in printed
    assert "bf16 vs fp32, one iteration" in printed


def test_bench_step_variant_set_times_an_opt_in_option_against_the_config_step(tmp_path, capsys):
    import json

    bench, tiny = load_bench()
    tiny = [a for a in tiny if a != "--reference"]
    noise = ["--variant_set", "teaching.noise_negatives=0.5", "teaching.noise_negative_loss=hinge"]
    out = tmp_path / "bench.json"
    assert bench.main(tiny + noise + ["--repeats", "2", "--skip_sampling", "--json", str(out)]) == 0
    train = json.loads(out.read_text())["train"]
    assert list(train["runs_s"]) == ["optimised", "variant"] and all(len(v) == 2 for v in train["runs_s"].values())
    med = train["median_s"]
    assert train["speedup"] == {"optimised vs variant": pytest.approx(med["variant"] / med["optimised"])}
    assert train["flops"]["variant"] > train["flops"]["optimised"]  # the noise chains ran in the variant only
    assert "| measure | optimised | variant | speed-up optimised vs variant |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.parse_args(tiny + noise + ["--repeat_sets", "2"])


def test_bench_step_repeat_sets_time_fp32_bf16_and_reference_interleaved(tmp_path, capsys):
    import json

    bench, tiny = load_bench()
    out, profile = tmp_path / "bench.json", tmp_path / "profile.md"
    assert (
        bench.main(tiny + ["--repeat_sets", "2", "--warmup", "1", "--json", str(out), "--profile", str(profile)]) == 0
    )
    res = json.loads(out.read_text())
    printed = capsys.readouterr().out
    # the machine: CPU model, the bf16-relevant flags, torch's dispatch ISA, oneDNN, threads; in the JSON and printed
    machine = res["machine"]
    assert machine["cpu_model"] == profiling.cpu_model() and machine["cpu_model"] not in ("", "unknown")
    assert machine["isa"] == torch.backends.cpu.get_cpu_capability() and machine["onednn"] == profiling.onednn_version()
    assert set(machine["cpu_flags"]) == {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"}
    assert machine["threads"] == res["threads"] == 1
    assert printed.count(f"cpu {machine['cpu_model']} [{machine['cpu_id']}] (avx512f=") == 2  # header, under the table
    assert f"dispatch {machine['isa']}, oneDNN {machine['onednn']}" in printed
    # one run of every mode per set, in order, after the warm-up; medians and the three ratios
    for section in ("train", "sample"):
        entry = res[section]
        assert list(entry["runs_s"]) == ["fp32", "bf16", "reference"]
        assert all(len(v) == 2 for v in entry["runs_s"].values())
        med = entry["median_s"]
        assert med["bf16"] == pytest.approx(sum(entry["runs_s"]["bf16"]) / 2)  # the median of two
        assert entry["speedup"] == {
            "bf16 vs fp32": pytest.approx(med["fp32"] / med["bf16"]),
            "fp32 vs reference": pytest.approx(med["reference"] / med["fp32"]),
            "bf16 vs reference": pytest.approx(med["reference"] / med["bf16"]),
        }
    assert res["sample"]["images_per_s"]["bf16"] == pytest.approx(4 / res["sample"]["median_s"]["bf16"])
    assert "train set 3: fp32 " in printed and "train set 4" not in printed and "(warm-up): fp32" in printed
    header = (
        "| measure | fp32 | bf16 | reference | speed-up bf16 vs fp32 | speed-up fp32 vs reference | "
        "speed-up bf16 vs reference |"
    )
    assert header in printed
    ratio = res["train"]["speedup"]["bf16 vs fp32"]
    assert f"| training iteration (s, median) | {res['train']['median_s']['fp32']:.3f} |" in printed
    assert f"**{ratio:.2f}x**" in printed
    assert 0.99 < res["bf16_deviation"]["revision_cosine"] <= 1.0  # bf16 ran, so its deviation is reported
    # the profile of one bf16 iteration: categories covering all self time, in the JSON, printed and in the file
    prof = res["profile"]
    assert prof["precision"] == "bf16"
    assert [c["category"] for c in prof["categories"]] == list(profiling.PROFILE_CATEGORIES)
    assert sum(c["self_ms"] for c in prof["categories"]) == pytest.approx(prof["total_ms"])
    assert profile.read_text() in printed and "| spectral-norm power iteration |" in profile.read_text()
    with pytest.raises(SystemExit):
        bench.parse_args(tiny + ["--repeat_sets", "2", "--repeats", "3"])
    with pytest.raises(SystemExit):
        bench.parse_args(tiny + ["--profile", "p.md", "--skip_training"])


def test_profile_ops_attributes_time_to_categories():
    E, G, I = build(size=16, channels=3)
    to_memory_format(E, G, I)
    cfg = TeachingConfig(num_steps=2, num_latent_steps=2)
    opt = make_optimizers(E, G, I, cfg)
    x = data(4, 16, 3)

    def step():
        dual_mcmc_step(x, E, G, I, opt, cfg, autocast=autocast_factory("cpu", "bf16"), memory_format=CL)

    step()
    prof = profiling.profile_ops(step, E, G, I, top=10_000)
    cats = {c["category"]: c for c in prof["categories"]}
    for name in (
        "convolution forward",
        "convolution backward",
        "dtype casts",
        "batch norm",
        "spectral-norm power iteration",
        "Adam",
    ):
        assert cats[name]["self_ms"] > 0 and cats[name]["calls"] > 0, name
    assert sum(c["percent"] for c in cats.values()) == pytest.approx(100)
    ops = {r["op"]: r for r in prof["top_ops"]}
    assert [r["self_ms"] for r in prof["top_ops"]] == sorted((r["self_ms"] for r in prof["top_ops"]), reverse=True)
    # every convolution backward op is counted as such: none is mistaken for the backward of a spectral-norm op
    # (an op that makes no autograd node carries the sequence number of the next node, often a convolution's)
    conv_backward = sum(r["calls"] for name, r in ops.items() if "conv" in name.lower() and "backward" in name.lower())
    assert cats["convolution backward"]["calls"] == conv_backward > 0
    # the parametrization's forward ops are inside its scope (3 spectral-norm energy forwards with grad: 2 chains
    # cache W / sigma once each, plus E(data) and E(x1) in the energy update)
    n_layers = sum(1 for m in E.modules() if hasattr(m, "_power_method"))
    assert ops["spectral_norm (parametrization)"]["calls"] == 4 * n_layers
    assert ops["aten::mv"]["calls"] >= 4 * n_layers  # (power iteration, sigma)
    text = profiling.profile_markdown(prof, "bf16: ")
    assert text.startswith("bf16: self CPU time") and "| `aten::convolution_backward` |" in text


def test_cpu_model_falls_back_to_proc_cpuinfo(monkeypatch):
    import subprocess
    from pathlib import Path

    def no_lscpu(*args, **kwargs):
        raise FileNotFoundError("lscpu")

    monkeypatch.setattr(subprocess, "run", no_lscpu)
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo on this platform")
    names = [
        line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
    ]
    assert profiling.cpu_model() == (
        names[0] if names else profiling.platform.processor() or profiling.platform.machine()
    )
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?|unavailable", profiling.onednn_version())


def test_bf16_is_native_reads_the_cpu_flags_and_cuda(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvmx flags\t: ept\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    )
    assert performance.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}  # the first "flags" line only
    assert performance.cpu_flags(str(tmp_path / "absent")) == set()  # unreadable: no flags, so no native bf16
    for flags, native in ((set(), False), ({"avx2", "avx512f"}, False), ({"avx512_bf16"}, True), ({"amx_bf16"}, True)):
        monkeypatch.setattr(performance, "cpu_flags", lambda flags=flags: flags)
        assert performance.bf16_is_native("cpu") is native
        assert performance.bf16_is_native(torch.device("cpu")) is native
    assert performance.bf16_is_native("meta") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for supported in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert performance.bf16_is_native("cuda:0") is supported
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert performance.bf16_is_native("cuda") is False

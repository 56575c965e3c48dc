"""Official-checkpoint conversion: outputs equal an independent functional computation from the raw tensors."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from conftest import SHARED, load_module  # noqa: E402

from hf_dualmcmc import DualMCMCPipeline, configs_for_image_size  # noqa: E402
from hf_dualmcmc.convert import (  # noqa: E402
    convert_official_checkpoint,
    convert_official_state_dicts,
    infer_official_dataset,
    load_official_checkpoint,
    official_layout,
)

TINY = dict(ngf=8, ndf=8, nif=4, latent_dim=6)


def tiny_configs():
    return configs_for_image_size(32, 3, **TINY)


def reference_layout(name: str) -> dict:
    path = SHARED / "reference" / f"official_state_dict_{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared reference directory ../shared is not available)")
    return json.loads(path.read_text())


def random_checkpoint(layout: dict[str, dict[str, list[int]]], seed: int = 0) -> dict:
    """Random tensors in exactly the official key layout; SN vectors are valid unit vectors but not the
    power-iteration fixed point (so a converter that recomputed them would fail the comparison)."""
    g = torch.Generator().manual_seed(seed)
    ckpt = {"epoch": 300, "optG": {"state": {}, "param_groups": []}, "optE": {}, "optI": {}}
    for net, keys in layout.items():
        sd = {}
        for key, shape in keys.items():
            if key.endswith("num_batches_tracked"):
                sd[key] = torch.tensor(1000)
            elif key.endswith("running_var"):
                sd[key] = torch.rand(shape, generator=g) + 0.5
            elif key.endswith(("running_mean", ".bias")):
                sd[key] = 0.1 * torch.randn(shape, generator=g)
            elif ".bn_" in key or key.startswith("bn_"):
                sd[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
            elif key.endswith("weight_u"):
                continue  # set from weight_orig below
            else:
                fan_in = max(1, int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1)
                sd[key] = torch.randn(shape, generator=g) / fan_in**0.5
        for key in list(sd):
            if key.endswith("weight_v"):
                stem = key[: -len("weight_v")]
                w = sd[stem + "weight_orig"]
                v = F.normalize(torch.randn(sd[key].shape, generator=g), dim=0)
                sd[key] = v
                sd[stem + "weight_u"] = F.normalize(w.reshape(w.shape[0], -1) @ v, dim=0)
        ckpt[net] = sd
    return ckpt


def layout_of(configs) -> dict:
    return {net: {k: list(shape) for k, (_, shape) in keys.items()} for net, keys in official_layout(configs).items()}


# ----------------------------------------------------------------------------------------------------------------
# Independent functional networks written from the official key layout
# ----------------------------------------------------------------------------------------------------------------


def sn(sd: dict, stem: str) -> torch.Tensor:
    w, u, v = sd[stem + ".weight_orig"], sd[stem + ".weight_u"], sd[stem + ".weight_v"]
    sigma = torch.dot(u, w.reshape(w.shape[0], -1) @ v)
    return w / sigma


def ref_energy(sd: dict, x: torch.Tensor) -> torch.Tensor:
    h = F.conv2d(F.relu(F.conv2d(x, sn(sd, "conv_1.conv1"), padding=1)), sn(sd, "conv_1.conv2"), padding=1)
    h = F.avg_pool2d(h, 2) + F.conv2d(F.avg_pool2d(x, 2), sn(sd, "conv_1.sc"))
    b = 2
    while f"block{b}.conv1.weight_orig" in sd:
        r = F.conv2d(
            F.relu(F.conv2d(F.relu(h), sn(sd, f"block{b}.conv1"), padding=1)), sn(sd, f"block{b}.conv2"), padding=1
        )
        if f"block{b}.sc.weight_orig" in sd:  # the official blocks with a shortcut conv are the downsampling ones
            h = F.avg_pool2d(r, 2) + F.avg_pool2d(F.conv2d(h, sn(sd, f"block{b}.sc")), 2)
        else:
            h = r + h
        b += 1
    return F.linear(F.relu(h).mean(dim=(2, 3)), sn(sd, f"lin_{b}")).squeeze(1)


def ref_bn(sd: dict, stem: str, x: torch.Tensor, batch_stats: bool) -> torch.Tensor:
    if batch_stats:
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    else:
        mean, var = sd[stem + ".running_mean"], sd[stem + ".running_var"]
    xn = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
    return xn * sd[stem + ".weight"][None, :, None, None] + sd[stem + ".bias"][None, :, None, None]


def ref_generator(sd: dict, z: torch.Tensor, batch_stats: bool) -> torch.Tensor:
    def up(t):
        return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True)

    def conv(t, stem, pad):
        return F.conv2d(t, sd[stem + ".weight"], sd[stem + ".bias"], padding=pad)

    h = F.linear(z, sd["lin_1.weight"], sd["lin_1.bias"]).view(z.shape[0], -1, 4, 4)
    b = 2
    while f"block{b}.conv1.weight" in sd:
        r = conv(up(F.relu(ref_bn(sd, f"block{b}.bn_1", h, batch_stats))), f"block{b}.conv1", 1)
        r = conv(F.relu(ref_bn(sd, f"block{b}.bn_2", r, batch_stats)), f"block{b}.conv2", 1)
        h = r + conv(up(h), f"block{b}.sc", 0)
        b += 1
    return torch.tanh(conv(F.relu(ref_bn(sd, f"bn_{b}", h, batch_stats)), f"conv{b}", 1))


def ref_encoder(sd: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w0 = sd["main.0.weight"]
    h = F.leaky_relu(F.conv2d(x, w0, stride=1 if w0.shape[-1] == 3 else 2, padding=1), 0.2)
    k = 2
    while f"main.{k}.weight" in sd:
        h = F.leaky_relu(F.conv2d(h, sd[f"main.{k}.weight"], stride=2, padding=1), 0.2)
        k += 2
    mean = F.conv2d(h, sd["conv51.weight"], sd["conv51.bias"]).flatten(1)
    logvar = F.conv2d(h, sd["conv52.weight"], sd["conv52.bias"]).flatten(1)
    return mean, logvar


def assert_matches_reference(pipe: DualMCMCPipeline, ckpt: dict, batch: int = 3) -> None:
    g = torch.Generator().manual_seed(1)
    size = pipe.energy_model.config.image_size
    x = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    z = torch.randn(batch, pipe.latent_dim, generator=g)
    pipe.energy_model.eval()
    pipe.encoder.eval()
    pipe.generator_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(pipe.energy_model.energy(x), ref_energy(ckpt["netE"], x), rtol=1e-4, atol=1e-5)
        for mode, batch_stats in (("batch", True), ("running", False)):
            with pipe.generator_model.batch_norm_stats(mode):
                ours = pipe.generator_model.generate(z)
            torch.testing.assert_close(ours, ref_generator(ckpt["netG"], z, batch_stats), rtol=1e-4, atol=1e-5)
        mean, logvar = pipe.encoder(x, return_dict=False)
        ref_mean, ref_logvar = ref_encoder(ckpt["netI"], x)
        torch.testing.assert_close(mean, ref_mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logvar, ref_logvar, rtol=1e-4, atol=1e-5)
    # eval mode must not have touched the stored spectral-norm vectors
    u = pipe.energy_model.start.conv1.parametrizations.weight[0]._u
    torch.testing.assert_close(u, ckpt["netE"]["conv_1.conv1.weight_u"])


# ----------------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------------


def test_layout_matches_the_official_reference_files():
    for name in ("cifar10", "celeba64"):
        ref = reference_layout(name)
        ours = layout_of(name)
        assert set(ours) == set(ref)
        for net in ref:
            assert ours[net] == ref[net], f"{name} {net}: key/shape layout differs from the reference"


@pytest.mark.slow
def test_full_size_cifar10_checkpoint_converts_exactly():
    ckpt = random_checkpoint(reference_layout("cifar10"))
    assert infer_official_dataset(ckpt) == "cifar10"
    pipe = convert_official_state_dicts(ckpt)
    assert pipe.energy_model.num_parameters_total == 16_793_088
    assert pipe.generator_model.num_parameters_total == 16_024_579
    assert pipe.encoder.num_parameters_total == 15_208_064
    assert (pipe.config.num_inference_steps, pipe.config.step_size, pipe.config.noise_scale) == (70, 0.4, 0.001)
    assert pipe.config.bn_stats == "batch"
    assert_matches_reference(pipe, ckpt, batch=2)


def test_convert_file_to_pipeline_directory_and_reload(tmp_path):
    configs = tiny_configs()
    ckpt = random_checkpoint(layout_of(configs), seed=3)
    path = tmp_path / "ckpt.pth"
    torch.save(ckpt, path)
    out = convert_official_checkpoint(
        path, tmp_path / "pipe", dataset="cifar10", configs=configs, hub_model_id="someone/dualmcmc-cifar10"
    )
    index = json.loads((out / "model_index.json").read_text())
    assert index["num_inference_steps"] == 70 and index["step_size"] == 0.4
    assert index["noise_scale"] == 0.001 and index["bn_stats"] == "batch"
    card = (out / "README.md").read_text()
    assert "someone/dualmcmc-cifar10" in card and "converted-checkpoint" in card and "checkpoint_epoch: 300" in card
    assert "license: other" in card and "github.com/jcui1224/dual-MCMC" in card  # upstream weights: no licence
    pipe = DualMCMCPipeline.from_pretrained(out)
    assert_matches_reference(pipe, ckpt)
    # sampling runs with the converted weights
    images = pipe(batch_size=2, num_inference_steps=2, generator=0, output_type="np").images
    assert images.shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="exists"):
        convert_official_checkpoint(path, out, dataset="cifar10", configs=configs)


def test_data_parallel_prefix_is_accepted():
    configs = tiny_configs()
    ckpt = random_checkpoint(layout_of(configs), seed=4)
    wrapped = dict(ckpt, netE={f"module.{k}": v for k, v in ckpt["netE"].items()})
    pipe = convert_official_state_dicts(wrapped, configs=configs)
    assert_matches_reference(pipe, ckpt)


def test_cli(tmp_path):
    cli = load_module("scripts/convert_official_checkpoint.py", "convert_cli")
    configs = tiny_configs()
    torch.save(random_checkpoint(layout_of(configs)), tmp_path / "c.pth")
    args = [
        str(tmp_path / "c.pth"),
        str(tmp_path / "out"),
        "--dataset",
        "cifar10",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--nif",
        "4",
        "--nz",
        "6",
    ]
    assert cli.main(args) == 0
    assert (tmp_path / "out" / "model_index.json").is_file()
    assert cli.main(args) == 2  # exists, no --overwrite
    assert cli.main(args + ["--overwrite", "--no_model_card"]) == 0
    assert not (tmp_path / "out" / "README.md").exists()


# --- error cases ------------------------------------------------------------------------------------------------


def test_missing_unexpected_and_wrong_shape_keys_are_all_listed():
    configs = tiny_configs()
    ckpt = random_checkpoint(layout_of(configs))
    del ckpt["netG"]["lin_1.bias"]
    ckpt["netE"]["block9.conv1.weight_orig"] = torch.zeros(1)
    ckpt["netI"]["conv51.weight"] = torch.zeros(6, 32, 3, 3)
    ckpt["netI"]["main.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError) as err:
        convert_official_state_dicts(ckpt, configs=configs)
    msg = str(err.value)
    assert "netG missing keys: ['lin_1.bias']" in msg
    assert "netE unexpected keys: ['block9.conv1.weight_orig']" in msg
    assert "conv51.weight: expected [6, 32, 4, 4], got [6, 32, 3, 3]" in msg
    assert "NaN/inf" in msg and "main.0.weight" in msg


def test_no_official_layout_matches_lists_both():
    ckpt = random_checkpoint(layout_of(tiny_configs()))
    with pytest.raises(ValueError, match=r"matches none of the official layouts[\s\S]*as celeba64[\s\S]*as cifar10"):
        infer_official_dataset(ckpt)
    with pytest.raises(ValueError, match="does not match the official cifar10 layout"):
        convert_official_state_dicts(ckpt, "cifar10")
    with pytest.raises(ValueError, match="unknown official dataset 'svhn'"):
        convert_official_state_dicts(ckpt, "svhn")


def test_top_level_structure_errors(tmp_path):
    ckpt = random_checkpoint(layout_of(tiny_configs()))
    bad = {k: v for k, v in ckpt.items() if k != "netI"}
    bad["ema"] = {}
    with pytest.raises(ValueError, match=r"missing top-level keys \['netI'\]; unknown top-level keys \['ema'\]"):
        convert_official_state_dicts(bad, configs=tiny_configs())
    with pytest.raises(ValueError, match="netE entries that are not tensors: \\['x'\\]"):
        convert_official_state_dicts(dict(ckpt, netE={"x": 1.0}), configs=tiny_configs())
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not an official Dual-MCMC checkpoint: expected a dict"):
        load_official_checkpoint(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"this is not a pickle at all")
    with pytest.raises(
        ValueError,
        match=r"official checkpoint '.*junk\.pth' is not a torch.save file \(neither a "
        r"zip archive nor a pickle\)",
    ):
        load_official_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="does not exist"):
        load_official_checkpoint(tmp_path / "missing.pth")


def test_authors_checkpoint_format_loads_weights_only(tmp_path):
    """The authors' train.py saves epoch, three state dicts and three Adam state dicts (torch.save): all of it is
    read by torch.load(weights_only=True) with its default allow-list, in the zip and the legacy format."""
    ckpt = random_checkpoint(layout_of(tiny_configs()))
    for name in ("optG", "optE", "optI"):
        param = torch.nn.Parameter(torch.randn(3))
        opt = torch.optim.Adam([param], lr=1e-4, weight_decay=5e-4, betas=(0.0, 0.9))
        param.sum().backward()
        opt.step()
        ckpt[name] = opt.state_dict()
    for legacy in (False, True):
        path = tmp_path / f"ckpt-{legacy}.pth"
        torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
        loaded = load_official_checkpoint(path)
        assert loaded["epoch"] == 300 and loaded["optE"]["param_groups"][0]["betas"] == (0.0, 0.9)
        assert torch.equal(loaded["optI"]["state"][0]["exp_avg"], ckpt["optI"]["state"][0]["exp_avg"])
        assert all(torch.equal(loaded["netE"][k], v) for k, v in ckpt["netE"].items())


def test_file_errors_name_the_file(tmp_path, capsys):
    configs = tiny_configs()
    ckpt = random_checkpoint(layout_of(configs))
    path = tmp_path / "c.pth"
    torch.save(ckpt, path)
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"official checkpoint '.*cut\.pth' is truncated or corrupt \(a damaged zip"):
        load_official_checkpoint(tmp_path / "cut.pth")
    torch.save(ckpt, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "legacy.pth").read_bytes()
    (tmp_path / "legacy.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"'.*legacy\.pth' is truncated, corrupt or not a torch.save file"):
        load_official_checkpoint(tmp_path / "legacy.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"official checkpoint '.*empty\.pth' is empty"):
        load_official_checkpoint(tmp_path / "empty.pth")

    del ckpt["netG"]["lin_1.bias"]
    ckpt["netI"]["conv51.weight"] = torch.zeros(6, 32, 3, 3)
    torch.save(ckpt, path)
    with pytest.raises(ValueError) as err:
        convert_official_checkpoint(path, tmp_path / "out", dataset="cifar10", configs=configs)
    msg = str(err.value)
    assert msg.startswith(f"official checkpoint {str(path)!r}: the checkpoint does not match the given configs' layout")
    assert (
        "netG missing keys: ['lin_1.bias']" in msg and "conv51.weight: expected [6, 32, 4, 4], got [6, 32, 3, 3]" in msg
    )
    assert not (tmp_path / "out").exists()

    cli = load_module("scripts/convert_official_checkpoint.py", "convert_cli")
    assert cli.main([str(path), str(tmp_path / "out"), "--dataset", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(
            f"error: official checkpoint {str(path)!r}: the checkpoint does not match the official cifar10 layout"
        )
        and "netG missing keys: ['lin_1.bias']" in err
    )
    assert not (tmp_path / "out").exists()


def test_cli_replaces_only_its_own_output(tmp_path, capsys):
    """Issue #22: ``ck/x.pth ck --overwrite`` deleted the input and every other checkpoint in ``ck``."""
    cli = load_module("scripts/convert_official_checkpoint.py", "convert_cli")
    ck = tmp_path / "ck"
    (ck / ".git").mkdir(parents=True)
    (ck / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (ck / "notes.txt").write_text("my notes\n")
    (ck / "other.pth").write_bytes(b"another checkpoint")
    torch.save(random_checkpoint(layout_of(tiny_configs())), ck / "x.pth")
    widths = [
        "--dataset",
        "cifar10",
        *(f"--{k}={v}" for k, v in (("ngf", 8), ("ndf", 8), ("nif", 4), ("nz", 6))),
        "--no-model-card",
        "--overwrite",
    ]
    snapshot = lambda: {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}  # noqa: E731
    before = snapshot()
    for out, why in (
        (ck, "contains the input"),
        (ck / "x.pth", "is the input"),
        (tmp_path, "contains the input"),
        (ck / ".git", "holds files hf-dualmcmc did not write (HEAD)"),
    ):
        assert cli.main([str(ck / "x.pth"), str(out), *widths]) == 2
        assert why in capsys.readouterr().err
        assert snapshot() == before
    out = tmp_path / "pipe"
    assert cli.main([str(ck / "x.pth"), str(out), *widths]) == 0
    assert cli.main([str(ck / "x.pth"), str(out), *widths]) == 0  # our own output: replaced
    (out / "mine.txt").write_text("kept")
    assert cli.main([str(ck / "x.pth"), str(out), *widths]) == 2
    assert "did not write (mine.txt)" in capsys.readouterr().err and (out / "mine.txt").read_text() == "kept"
    assert {p: b for p, b in snapshot().items() if out not in p.parents} == before

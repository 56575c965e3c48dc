import copy
import json
import math

import pytest
import torch
from torch.nn.utils import parametrize
from transformers import AutoConfig, AutoModel

from hf_dualmcmc import (
    DualMCMCEncoderConfig,
    DualMCMCEncoderModel,
    DualMCMCEnergyConfig,
    DualMCMCEnergyModel,
    DualMCMCGeneratorConfig,
    DualMCMCGeneratorModel,
    configs_for_image_size,
    official_configs,
)

OFFICIAL_COUNTS = {
    "cifar10": {"generator": 16_024_579, "energy": 16_793_088, "encoder": 15_208_064},
    "celeba64": {"generator": 12_220_675, "energy": 19_536_768, "encoder": 15_210_752},
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def spectral_norms(model):
    out = {}
    with torch.no_grad():
        for name, m in model.named_modules():
            if parametrize.is_parametrized(m):
                w = m.weight
                out[name] = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2).item()
    return out


@pytest.mark.parametrize("name", ["cifar10", "celeba64"])
def test_official_parameter_counts(name):
    e, g, i = official_configs(name)
    assert n_params(DualMCMCGeneratorModel(g)) == OFFICIAL_COUNTS[name]["generator"]
    assert n_params(DualMCMCEnergyModel(e)) == OFFICIAL_COUNTS[name]["energy"]
    assert n_params(DualMCMCEncoderModel(i)) == OFFICIAL_COUNTS[name]["encoder"]


def test_official_layer_shapes_match_reference(shared_dir):
    import json

    ref = json.loads((shared_dir / "reference" / "official_state_dict_cifar10.json").read_text())
    e, g, i = official_configs("cifar10")
    ours = sorted(tuple(p.shape) for p in DualMCMCGeneratorModel(g).parameters())
    theirs = sorted(tuple(s) for k, s in ref["netG"].items() if k.endswith(("weight", "bias")))
    assert ours == theirs
    ours = sorted(tuple(p.shape) for p in DualMCMCEnergyModel(e).parameters())
    theirs = sorted(tuple(s) for k, s in ref["netE"].items() if k.endswith("weight_orig"))
    assert ours == theirs


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_resolution_and_channels(size, channels):
    e, g, i = configs_for_image_size(size, channels, latent_dim=4, ngf=64, ndf=64, nif=4)
    E, G, I = DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i)
    z = torch.randn(2, 4)
    x = G(z).sample
    assert x.shape == (2, channels, size, size)
    assert x.abs().max() <= 1
    assert E(x).energy.shape == (2,)
    q = I(x)
    assert q.mean.shape == (2, 4) and q.logvar.shape == (2, 4)
    # the generator also accepts the authors' [B, nz, 1, 1] latents
    assert torch.equal(G(z.view(2, 4, 1, 1)).sample, x) or G.training


def test_bad_config_values():
    with pytest.raises(ValueError, match="4 \\* 2\\*\\*k"):
        DualMCMCGeneratorConfig(image_size=28)
    with pytest.raises(ValueError, match="num_channels must be 1"):
        DualMCMCEnergyConfig(num_channels=4)
    with pytest.raises(ValueError, match="needs 4 channel_mults"):
        DualMCMCGeneratorConfig(image_size=32, channel_mults=[1, 1])
    with pytest.raises(ValueError, match="first_stride"):
        DualMCMCEncoderConfig(first_stride=3)
    with pytest.raises(ValueError, match="unknown official setting"):
        official_configs("imagenet")


def test_fresh_energy_is_spectrally_normalised_in_eval_mode():
    e, _, _ = configs_for_image_size(32, 3, ngf=64, ndf=64, nif=8)
    model = DualMCMCEnergyModel(e).eval()
    norms = spectral_norms(model)
    assert len(norms) == 3 + 3 + 2 + 2 + 1  # start: 3 convs, down block: 3, same-size blocks: 2 each, head
    for name, s in norms.items():
        assert 0.95 < s < 1.06, (name, s)


def test_official_initialisation():
    torch.manual_seed(0)
    e, g, _ = configs_for_image_size(32, 3, ngf=128, ndf=128, nif=8)
    G, E = DualMCMCGeneratorModel(g), DualMCMCEnergyModel(e)
    w = G.blocks[0].conv1.weight
    xavier_std = math.sqrt(2.0 / (w.shape[1] * 9 + w.shape[0] * 9))
    assert abs(w.std().item() / xavier_std - 1) < 0.05
    w = E.blocks[0].conv1.parametrizations.weight.original
    assert abs(w.std().item() / xavier_std - 1) < 0.05
    bn = torch.cat([b.norm1.weight for b in G.blocks])
    assert abs(bn.std().item() - 1) < 0.15 and abs(bn.mean().item()) < 0.15
    assert torch.all(G.blocks[0].norm1.bias == 0)


def test_auto_classes_and_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    e, g, i = configs_for_image_size(16, 1, latent_dim=8, ngf=16, ndf=16, nif=8)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    z = torch.randn(3, 8)
    for model, inp in ((DualMCMCEnergyModel(e), x), (DualMCMCGeneratorModel(g), z), (DualMCMCEncoderModel(i), x)):
        model.eval()
        model.save_pretrained(tmp_path / model.config.model_type)
        assert type(AutoConfig.from_pretrained(tmp_path / model.config.model_type)) is type(model.config)
        loaded = AutoModel.from_pretrained(tmp_path / model.config.model_type)
        assert type(loaded) is type(model)
        assert not loaded.training
        assert torch.equal(model(inp)[0], loaded(inp)[0])
        for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), k


def test_deepcopy_for_ema(tiny_configs):
    e, _, _ = tiny_configs
    model = DualMCMCEnergyModel(e)
    clone = copy.deepcopy(model)
    x = torch.randn(2, 3, 16, 16)
    model.eval(), clone.eval()
    assert torch.equal(model(x).energy, clone(x).energy)


def test_generator_batch_norm_statistics_modes(tiny_configs):
    _, g, _ = tiny_configs
    G = DualMCMCGeneratorModel(g)
    z = torch.randn(6, 8)
    G.train()
    with torch.no_grad():
        G(z)  # move running statistics away from their init
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad(), G.batch_norm_stats("batch"):
        batch = G(z).sample
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "batch mode must not touch running statistics"
    G.eval()
    with torch.no_grad():
        running = G(z).sample
        with G.batch_norm_stats("batch"):
            assert torch.equal(G(z).sample, batch)
    G.train()
    with torch.no_grad(), G.batch_norm_stats("running"):
        assert torch.equal(G(z).sample, running)
    assert not torch.allclose(batch, running)
    with pytest.raises(ValueError, match="'batch', 'running'"):
        with G.batch_norm_stats("eval"):
            pass


def test_generator_rejects_bad_latents(tiny_configs):
    G = DualMCMCGeneratorModel(tiny_configs[1])
    with pytest.raises(ValueError, match=r"\[batch, 8\]"):
        G(torch.randn(2, 5))


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (
            lambda d: (d / "model.safetensors").write_bytes(b""),
            OSError,
            "model.safetensors: not a readable safetensors",
        ),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100]),
            OSError,
            "model.safetensors: not a readable safetensors file .empty or truncated..",
        ),
        (lambda d: (d / "config.json").write_text("{"), OSError, "config.json is not a valid JSON config object"),
        (lambda d: (d / "config.json").write_bytes(b"\xff\xfe"), OSError, "config.json is not a valid JSON config"),
        (
            lambda d: (d / "config.json").write_text(json.dumps({"num_channels": 4})),
            ValueError,
            "config.json: .*num_channels must be 1",
        ),
        (lambda d: (d / "config.json").unlink(), FileNotFoundError, "config.json is missing"),
    ],
)
def test_model_loading_errors_name_the_file(tiny_configs, tmp_path, damage, error, message):
    DualMCMCEnergyModel(tiny_configs[0]).save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=message) as info:
        DualMCMCEnergyModel.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)
    if error is OSError and "safetensors" in message:  # the Auto class goes through the same loader
        with pytest.raises(OSError, match=message):
            AutoModel.from_pretrained(tmp_path)


def test_loading_is_strict_unless_asked(tmp_path):
    from safetensors.torch import load_file, save_file

    _, generator_config, _ = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=4)
    model = DualMCMCGeneratorModel(generator_config)
    model.save_pretrained(tmp_path)
    loaded, info = DualMCMCGeneratorModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    tensors = load_file(tmp_path / "model.safetensors")
    dropped = next(k for k in sorted(tensors) if tensors[k].is_floating_point())
    tensors.pop(dropped)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"missing tensors \\['{dropped}'\\]"):
        DualMCMCGeneratorModel.from_pretrained(tmp_path)
    lenient = DualMCMCGeneratorModel.from_pretrained(tmp_path, strict=False)  # transformers' behaviour: initialised
    assert torch.isfinite(lenient.state_dict()[dropped]).all()

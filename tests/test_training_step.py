"""One full Dual-MCMC iteration against an independent, straightforward implementation of the notes' equations."""

import copy

import pytest
import torch

from hf_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel, configs_for_image_size
from hf_dualmcmc.training import (
    dual_mcmc_step,
    encoder_loss,
    energy_loss,
    gaussian_nll,
    generator_loss,
    make_optimizers,
)
from hf_dualmcmc.training_config import TeachingConfig


def oracle_iteration(x, E, G, I, cfg):
    """Plain transcription of ../shared/notes/official-algorithm.md, one network call at a time, no shortcuts."""
    B = x.shape[0]
    adam = dict(betas=(0.0, 0.9))
    opt_e = torch.optim.Adam(E.parameters(), lr=cfg.lr_energy, weight_decay=cfg.weight_decay_energy, **adam)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_generator, weight_decay=cfg.weight_decay_generator, **adam)
    opt_i = torch.optim.Adam(I.parameters(), lr=cfg.lr_encoder, weight_decay=cfg.weight_decay_encoder, **adam)
    delta, sigma_n = cfg.step_size, cfg.noise_scale
    s, n, sig = cfg.latent_step_size, cfg.latent_noise_scale, G.config.observation_std

    def x_chain(x_init):
        xt = x_init.detach().clone()
        for _ in range(cfg.num_steps):
            xt.requires_grad_(True)
            grad = torch.autograd.grad(E(xt).energy.sum(), xt)[0]
            xt = xt.detach() - 0.5 * delta**2 * grad + sigma_n * torch.randn_like(xt)
        return xt.detach()

    # 1.
    z = torch.randn(B, G.config.latent_dim)
    x0 = G(z).sample
    x_rev = x_chain(x0)
    # 2.
    mu, logvar = I(x).to_tuple()
    z0 = (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).detach()
    zt = z0.clone()
    for _ in range(cfg.num_latent_steps):
        zt.requires_grad_(True)
        sse = ((G(zt).sample - x) ** 2).sum()
        grad = torch.autograd.grad(sse / sig**2, zt)[0]
        zt = zt.detach() - 0.5 * s**2 * (grad + zt / 1.0**2) + n * torch.randn_like(zt)
    z_rev = zt.detach()
    loss_g = (
        cfg.data_weight * ((G(z_rev).sample - x) ** 2).sum() / B
        + cfg.generator_teaching_weight * ((x0 - x_rev) ** 2).sum() / B
    )
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    # 3.
    def nll(zz, m, lv):
        return 0.5 * lv.sum(1) + 0.5 * ((zz - m) ** 2 / (1e-6 + torch.exp(lv))).sum(1)

    mu_rev, logvar_rev = I(x_rev).to_tuple()
    loss_i = (
        cfg.data_weight * nll(z_rev, mu, logvar).mean()
        + cfg.encoder_teaching_weight * nll(z, mu_rev, logvar_rev).mean()
    )
    opt_i.zero_grad()
    loss_i.backward()
    opt_i.step()
    # 4.
    with torch.no_grad():
        x1 = G(z).sample
    x1 = x_chain(x1)
    temp = (sigma_n / delta) ** 2
    loss_e = (E(x).energy.mean() - E(x1).energy.mean()) / temp
    opt_e.zero_grad()
    loss_e.backward()
    opt_e.step()
    return loss_e.item(), loss_g.item(), loss_i.item()


def build(seed=0, spectral_norm=True):
    torch.manual_seed(seed)
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=4)
    e.spectral_norm = spectral_norm
    return DualMCMCEnergyModel(e).train(), DualMCMCGeneratorModel(g).train(), DualMCMCEncoderModel(i).train()


@pytest.mark.parametrize("variant", ["no_spectral_norm", "spectral_norm_eval", "spectral_norm_train"])
def test_one_iteration_matches_oracle(variant):
    cfg = TeachingConfig(num_steps=4, num_latent_steps=3, step_size=0.3)
    E, G, I = build(spectral_norm=variant != "no_spectral_norm")
    if variant == "spectral_norm_eval":
        E.eval()  # W / sigma from the stored u, v: both implementations see exactly the same normalised weights
    E2, G2, I2 = copy.deepcopy(E), copy.deepcopy(G), copy.deepcopy(I)
    x = torch.rand(6, 1, 8, 8) * 2 - 1

    torch.manual_seed(123)
    out = dual_mcmc_step(x, E, G, I, make_optimizers(E, G, I, cfg), cfg)
    torch.manual_seed(123)
    ref = oracle_iteration(x, E2, G2, I2, cfg)

    if variant == "spectral_norm_train":
        # train mode: the step runs the power iteration once per chain, the oracle (like the authors) at every
        # forward. sigma then differs by ~1e-6 relative, which the 1/mcmc_temp = 250,000 scale of the energy loss
        # turns into ~1e-4, and Adam's first step (~lr * sign(grad)) can flip for near-zero gradients.
        # So each network's weights may differ by up to ~2 of its own learning rates.
        loss_tol = 1e-3
        weight_atol = {id(E): 2.5 * cfg.lr_energy, id(G): 2.5 * cfg.lr_generator, id(I): 2.5 * cfg.lr_encoder}
    else:
        loss_tol = 1e-5
        weight_atol = {id(E): 1e-6, id(G): 1e-6, id(I): 1e-6}
    assert out.loss_energy == pytest.approx(ref[0], rel=loss_tol)
    assert out.loss_generator == pytest.approx(ref[1], rel=loss_tol)
    assert out.loss_encoder == pytest.approx(ref[2], rel=loss_tol)
    for ours, theirs in ((E, E2), (G, G2), (I, I2)):
        for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            if name.endswith(("_u", "_v")) and variant == "spectral_norm_train":
                continue  # power-iteration vectors: updated once per chain vs once per forward
            assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=weight_atol[id(ours)]), name
    # the update really moved every network
    E0, G0, I0 = build(spectral_norm=variant != "no_spectral_norm")
    for ours, init in ((E, E0), (G, G0), (I, I0)):
        moved = [not torch.equal(a, b) for a, b in zip(ours.parameters(), init.parameters())]
        assert all(moved)


def test_objective_functions_match_formulas():
    torch.manual_seed(0)
    rec, x, prop, rev = (torch.randn(3, 1, 4, 4) for _ in range(4))
    assert torch.allclose(
        generator_loss(rec, x, prop, rev, 1.0, 50.0), ((rec - x) ** 2).sum() / 3 + 50 * ((prop - rev) ** 2).sum() / 3
    )
    m, lv, z = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    ref = 0.5 * lv.sum(1) + 0.5 * ((z - m) ** 2 / (1e-6 + lv.exp())).sum(1)
    assert torch.allclose(gaussian_nll(z, m, lv), ref)
    # batch size 1 works (the authors' NLL has a stray squeeze there)
    assert gaussian_nll(z[:1], m[:1], lv[:1]).shape == (1,)
    enc = encoder_loss(m, lv, z, m * 2, lv * 2, z * 3, 1.0, 0.1)
    assert torch.allclose(enc, ref.mean() + 0.1 * gaussian_nll(z * 3, m * 2, lv * 2).mean())
    e_data, e_samp = torch.randn(4), torch.randn(4)
    assert torch.allclose(energy_loss(e_data, e_samp, 4e-6), (e_data.mean() - e_samp.mean()) / 4e-6)
    assert TeachingConfig().temperature == pytest.approx(4e-6)
    assert TeachingConfig(use_temp=False).temperature == 1.0


def test_switches_change_the_iteration():
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    results = {}
    for name, kw in {
        "base": {},
        "no_fine_tune": {"rerun_chain_for_energy": False},
        "no_noise": {"use_noise": False},
    }.items():
        E, G, I = build()
        cfg = TeachingConfig(num_steps=3, num_latent_steps=2, noise_scale=0.05, **kw)
        torch.manual_seed(1)
        results[name] = dual_mcmc_step(x, E, G, I, make_optimizers(E, G, I, cfg), cfg)
    assert results["base"].loss_energy != results["no_fine_tune"].loss_energy
    assert results["base"].loss_generator != results["no_noise"].loss_generator
    assert all(r.is_finite() for r in results.values())


def test_step_under_bf16_autocast_keeps_fp32_params():
    E, G, I = build()
    cfg = TeachingConfig(num_steps=2, num_latent_steps=2)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    out = dual_mcmc_step(
        x,
        E,
        G,
        I,
        make_optimizers(E, G, I, cfg),
        cfg,
        autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16),
        keep_tensors=True,
    )
    assert out.is_finite()
    assert out.extras["revised"].dtype == torch.float32
    assert all(p.dtype == torch.float32 for m in (E, G, I) for p in m.parameters())


def test_ood_teaching_options_are_off_by_default_and_change_only_the_energy_step():
    from hf_dualmcmc.training import energy_magnitude_term, noise_negative_hinge, noise_negatives
    from hf_dualmcmc.training_config import load_config

    default = TeachingConfig()
    assert (default.noise_negatives, default.energy_magnitude_weight) == (0.0, 0.0)
    for name in ("cifar10", "celeba64", "celebahq256", "church64"):  # the official configs keep the authors' step
        teaching = load_config(f"configs/{name}.yaml").teaching
        assert (teaching.noise_negatives, teaching.energy_magnitude_weight) == (0.0, 0.0), name

    x = torch.rand(8, 1, 8, 8) * 2 - 1
    runs = {}
    for name, kw in {
        "off": {},
        "noise": {"noise_negatives": 0.25, "noise_negative_steps": 2},
        "hinge": {"noise_negatives": 0.25, "noise_negative_steps": 2, "noise_negative_loss": "hinge"},
        "magnitude": {"energy_magnitude_weight": 0.1},
    }.items():
        E, G, I = build(spectral_norm=False)  # (no power iteration: E0 below sees the weights the step saw)
        E0 = copy.deepcopy(E)
        cfg = TeachingConfig(num_steps=3, num_latent_steps=2, **kw)
        torch.manual_seed(5)
        runs[name] = (dual_mcmc_step(x, E, G, I, make_optimizers(E, G, I, cfg), cfg, keep_tensors=True), E0, cfg)
    off, E0, cfg = runs["off"]
    for name in ("noise", "hinge", "magnitude"):
        out = runs[name][0]
        # the extra negatives are drawn after every other random number: the generator and encoder steps and the
        # energy's own negatives are those of the default step
        assert out.loss_generator == off.loss_generator and out.loss_encoder == off.loss_encoder
        assert torch.equal(out.extras["samples"], off.extras["samples"])
    assert runs["noise"][0].loss_energy != off.loss_energy and runs["magnitude"][0].loss_energy != off.loss_energy
    # the hinge raises only noise energies below the batch's highest data energy, and never moves the data's
    e_data, e_noise = torch.tensor([1.0, 3.0], requires_grad=True), torch.tensor([2.0, 5.0], requires_grad=True)
    hinge = noise_negative_hinge(e_data, e_noise)
    hinge.backward()
    assert hinge.item() == 0.5 and e_data.grad is None and e_noise.grad.tolist() == [-0.5, 0.0]
    # the magnitude term is added, weighted and divided by the temperature, to the same contrast
    with torch.no_grad():
        term = energy_magnitude_term(E0(x).energy, E0(off.extras["samples"]).energy)
    expected = off.loss_energy + 0.1 * term.item() / cfg.temperature
    assert runs["magnitude"][0].loss_energy == pytest.approx(expected, rel=1e-4)

    # noise negatives: round(fraction * B) chains from Uniform[-r, r], revised by their own steps
    cfg = TeachingConfig(noise_negatives=0.25, noise_negative_steps=0, noise_init_range=0.5)
    start = noise_negatives(E0, E0.energy, x, cfg)
    assert start.shape == (2, 1, 8, 8) and start.abs().max() <= 0.5
    cfg = TeachingConfig(noise_negatives=0.25, noise_negative_steps=3, noise_negative_step_size=0.2)
    torch.manual_seed(0)
    revised = noise_negatives(E0, E0.energy, x, cfg)
    torch.manual_seed(0)
    unrevised = noise_negatives(E0, E0.energy, x, TeachingConfig(noise_negatives=0.25, noise_negative_steps=0))
    assert revised.shape == unrevised.shape and not torch.equal(revised, unrevised)
    assert noise_negatives(E0, E0.energy, x, TeachingConfig()) is None

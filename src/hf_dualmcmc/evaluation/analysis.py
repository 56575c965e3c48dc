"""The paper's analysis figures and tables on any :class:`~hf_dualmcmc.DualMCMCPipeline`.

* :func:`reconstruction_mse` -- Table 3 ("Inf" vs "Inf+L") and the MSE-vs-z-steps curve of Fig. 2 (right);
* :func:`energy_profile` -- Fig. 2 (left): mean energy per x-step and the proposal -> revised image strip;
* :func:`interpolation_grids` -- Fig. 4: generation and reconstruction interpolations;
* :func:`ablation_sweep` -- Tables 4-5: the same pipeline at several x-step / z-step counts.

Each returns a JSON-serialisable dict; with ``out_dir`` it also writes ``<name>.json`` and PNGs (atomic writes).
MSE is per pixel on images in ``[0, 1]``, the paper's convention.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.utils import make_image_grid

from ..langevin import chain_mode, energy_langevin
from .images import to_uint8


def write_json(path: str | os.PathLike, data) -> str:
    """Atomically write ``data`` as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)
    return str(path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray | torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_image(image: PIL.Image.Image, path: str | os.PathLike, min_size: int = 256) -> str:
    """Atomically save a PIL image as PNG; grids of tiny images (8x8 digits) are upscaled by an integer factor
    (nearest neighbour, pixels kept sharp) until their smaller side reaches ``min_size``."""
    factor = max(1, -(-min_size // max(1, min(image.size))))
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), PIL.Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)
    return str(path)


def _save_figure(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return str(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _to_pil(images_uint8: np.ndarray) -> list[PIL.Image.Image]:
    return [PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in images_uint8]


def _pixel_values(images) -> torch.Tensor:
    """uint8 ``[N, H, W, C]`` / float ``[0, 1]`` images -> model-space ``[N, C, H, W]`` in ``[-1, 1]``."""
    x = torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2).float() / 255.0
    return x * 2.0 - 1.0


@contextmanager
def _quiet(pipe):
    previous = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(disable=True)
    try:
        yield
    finally:
        pipe.set_progress_bar_config(**previous) if previous else pipe.set_progress_bar_config(disable=False)


# ----------------------------------------------------------------------------------------------------------------
# Table 3 / Fig. 2 (right): reconstruction
# ----------------------------------------------------------------------------------------------------------------


def reconstruction_mse(
    pipe,
    images,
    *,
    num_latent_steps: int | None = None,
    curve_steps: Sequence[int] | None = None,
    batch_size: int = 100,
    seed: int = 0,
    sample_posterior: bool = True,
    bn_stats: str | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Per-pixel reconstruction MSE (images in ``[0, 1]``): encoder only ("Inf") and encoder + L z-steps ("Inf+L").

    ``images``: held-out images (uint8 ``[N, H, W, C]``, or floats in ``[0, 1]``) in the pipeline's format.
    ``curve_steps``: z-step counts for the MSE-vs-steps curve (default ``0, 1, 2, 5, L, 2L``). Every count reuses the
    same seed, so each chain is a prefix of the longer ones. With ``out_dir``: ``recon_mse.json``,
    ``recon_mse_curve.png`` and ``recon_examples.png`` (rows: input, Inf, Inf+L).
    """
    from tqdm.auto import tqdm

    steps = pipe.config.num_latent_steps if num_latent_steps is None else num_latent_steps
    if curve_steps is None:
        curve_steps = sorted({0, 1, 2, 5, steps, 2 * steps})
    curve_steps = sorted({int(s) for s in curve_steps} | {steps})
    x = _pixel_values(images)
    target = (x + 1.0) / 2.0
    sq_err = {s: 0.0 for s in curve_steps}
    sq_err_inf = 0.0
    n_pix = target.numel()
    examples = None
    with _quiet(pipe):
        for s in tqdm(curve_steps, desc="recon z-steps", disable=not progress):
            for i in range(0, x.shape[0], batch_size):
                out = pipe.reconstruct(
                    pixel_values=x[i : i + batch_size],
                    num_latent_steps=s,
                    generator=seed + i,
                    sample_posterior=sample_posterior,
                    return_proposals=True,
                    output_type="pt",
                    bn_stats=bn_stats,
                )
                tgt = target[i : i + batch_size]
                sq_err[s] += float((out.images.cpu() - tgt).pow(2).sum())
                if s == curve_steps[0]:
                    sq_err_inf += float((out.proposals.cpu() - tgt).pow(2).sum())
                if s == steps and i == 0:
                    k = min(8, tgt.shape[0])
                    examples = (tgt[:k], out.proposals[:k].cpu(), out.images[:k].cpu())
    curve = [{"num_latent_steps": s, "mse": sq_err[s] / n_pix} for s in curve_steps]
    results = {
        "num_images": int(x.shape[0]),
        "num_latent_steps": steps,
        "mse_inf": sq_err_inf / n_pix,
        "mse_inf_plus_l": sq_err[steps] / n_pix,
        "curve": curve,
        "settings": {
            "latent_step_size": pipe.config.latent_step_size,
            "latent_noise_scale": pipe.config.latent_noise_scale,
            "sample_posterior": sample_posterior,
            "bn_stats": bn_stats or pipe.config.bn_stats,
            "batch_size": batch_size,
            "seed": seed,
            "convention": "per-pixel mean squared error on images in [0, 1]",
        },
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot([c["num_latent_steps"] for c in curve], [c["mse"] for c in curve], marker="o")
        ax.set_xlabel("z-chain Langevin steps")
        ax.set_ylabel("per-pixel MSE")
        ax.set_title("Reconstruction MSE vs. inference steps")
        ax.grid(alpha=0.3)
        results["files"] = {"curve_png": _save_figure(fig, out_dir / "recon_mse_curve.png")}
        if examples is not None:
            rows = [to_uint8(t) for t in examples]
            k = rows[0].shape[0]
            grid = make_image_grid(_to_pil(np.concatenate(rows)), rows=3, cols=k)
            results["files"]["examples_png"] = save_image(grid, out_dir / "recon_examples.png")
        write_json(out_dir / "recon_mse.json", results)
    return results


# ----------------------------------------------------------------------------------------------------------------
# Fig. 2 (left): energy profile of the MCMC revision
# ----------------------------------------------------------------------------------------------------------------


def energy_profile(
    pipe,
    *,
    batch_size: int = 16,
    num_inference_steps: int | None = None,
    step_size: float | None = None,
    noise_scale: float | None = None,
    bn_stats: str | None = None,
    num_snapshots: int = 6,
    strip_rows: int = 4,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
) -> dict:
    """Mean (and std) energy at every x-chain step, and an image strip proposal -> revised.

    Runs exactly the pipeline's sampler: ``z`` and the chain noise from one ``torch.Generator(seed)``, the proposal
    ``G(z)`` from the pipeline (``num_inference_steps=0``), then :func:`~hf_dualmcmc.energy_langevin` on the energy
    model in eval mode with a callback taking ``num_snapshots`` snapshots. With ``out_dir``: ``energy_profile.json``,
    ``energy_profile.png`` and ``revision_strip.png`` (rows: samples, columns: steps).
    """
    cfg = pipe.config
    steps = cfg.num_inference_steps if num_inference_steps is None else num_inference_steps
    step_size = cfg.step_size if step_size is None else step_size
    noise_scale = cfg.noise_scale if noise_scale is None else noise_scale
    bn_stats = cfg.bn_stats if bn_stats is None else bn_stats
    if num_snapshots < 2:
        raise ValueError(f"num_snapshots must be >= 2, got {num_snapshots}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with _quiet(pipe):
        proposal = pipe(
            batch_size=batch_size, num_inference_steps=0, generator=generator, output_type="pt", bn_stats=bn_stats
        ).images
    x0 = proposal.float() * 2.0 - 1.0
    snap_steps = sorted({int(round(v)) for v in np.linspace(0, steps, num_snapshots)})
    snapshots = {0: x0.clone()}

    def record(step: int, x: torch.Tensor) -> None:
        if step + 1 in snap_steps:
            snapshots[step + 1] = x.detach().clone()

    energy_model = pipe.energy_model
    was_training = energy_model.training
    energy_model.eval()
    dtype = energy_model.dtype
    try:
        with chain_mode(energy_model):
            out = energy_langevin(
                lambda x: energy_model.energy(x.to(dtype)),
                x0.to(energy_model.device),
                steps,
                step_size,
                noise_scale,
                generator=generator,
                return_energies=True,
                callback=record,
            )
    finally:
        energy_model.train(was_training)
    energies = out.energies.double().cpu()
    results = {
        "num_samples": batch_size,
        "steps": list(range(steps + 1)),
        "mean_energy": energies.mean(1).tolist(),
        "std_energy": energies.std(1).tolist() if batch_size > 1 else [0.0] * (steps + 1),
        "energy_change": float(energies[-1].mean() - energies[0].mean()),
        "snapshot_steps": snap_steps,
        "sampler": {
            "num_inference_steps": steps,
            "step_size": step_size,
            "noise_scale": noise_scale,
            "bn_stats": bn_stats,
            "seed": seed,
        },
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        plt = _pyplot()
        mean, std = energies.mean(1).numpy(), energies.std(1).numpy() if batch_size > 1 else np.zeros(steps + 1)
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot(results["steps"], mean, label="mean energy")
        ax.fill_between(results["steps"], mean - std, mean + std, alpha=0.25, label="+/- 1 std")
        ax.set_xlabel("x-chain Langevin step")
        ax.set_ylabel("energy E(x)")
        ax.set_title("Energy profile of the MCMC revision")
        ax.legend()
        ax.grid(alpha=0.3)
        results["files"] = {"profile_png": _save_figure(fig, out_dir / "energy_profile.png")}
        rows = min(strip_rows, batch_size)
        cells = []
        for r in range(rows):
            for s in snap_steps:
                cells.append(to_uint8((snapshots[s][r : r + 1].cpu().clamp(-1, 1) + 1) / 2)[0])
        grid = make_image_grid(_to_pil(np.stack(cells)), rows=rows, cols=len(snap_steps))
        results["files"]["strip_png"] = save_image(grid, out_dir / "revision_strip.png")
        write_json(out_dir / "energy_profile.json", results)
    return results


# ----------------------------------------------------------------------------------------------------------------
# Fig. 4: interpolation
# ----------------------------------------------------------------------------------------------------------------


def interpolation_grids(
    pipe,
    *,
    num_rows: int = 4,
    num_points: int = 8,
    images=None,
    num_inference_steps: int | None = None,
    num_latent_steps: int | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
) -> dict:
    """Generation rows (``z_a -> z_b``, ``z ~ N(0, I)``) and, with ``images`` and an encoder, reconstruction rows.

    Reconstruction rows interpolate between inferred latents of consecutive pairs ``images[2r], images[2r + 1]``.
    With ``out_dir``: ``interpolation_generation.png`` / ``interpolation_reconstruction.png`` and
    ``interpolation.json``. Returns the grids (PIL) under ``"grids"`` and the settings.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    grids: dict[str, PIL.Image.Image] = {}
    with _quiet(pipe):
        rows = []
        for _ in range(num_rows):
            z = torch.randn(2, pipe.latent_dim, generator=generator)
            rows += pipe.interpolate(
                start_latents=z[0],
                end_latents=z[1],
                num_points=num_points,
                num_inference_steps=num_inference_steps,
                generator=generator,
            ).images
        grids["generation"] = make_image_grid(rows, rows=num_rows, cols=num_points)
        if images is not None and pipe.encoder is not None:
            imgs = to_uint8(images)
            pairs = min(num_rows, imgs.shape[0] // 2)
            if pairs < 1:
                raise ValueError(f"reconstruction interpolation needs at least 2 images, got {imgs.shape[0]}")
            rows = []
            for r in range(pairs):
                rows += pipe.interpolate(
                    imgs[2 * r],
                    imgs[2 * r + 1],
                    num_points=num_points,
                    num_inference_steps=num_inference_steps,
                    num_latent_steps=num_latent_steps,
                    generator=generator,
                ).images
            grids["reconstruction"] = make_image_grid(rows, rows=pairs, cols=num_points)
    results = {
        "num_rows": num_rows,
        "num_points": num_points,
        "num_inference_steps": pipe.config.num_inference_steps if num_inference_steps is None else num_inference_steps,
        "num_latent_steps": pipe.config.num_latent_steps if num_latent_steps is None else num_latent_steps,
        "seed": seed,
        "kinds": sorted(grids),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        results["files"] = {k: save_image(g, out_dir / f"interpolation_{k}.png") for k, g in grids.items()}
        write_json(out_dir / "interpolation.json", results)
    return {**results, "grids": grids}


# ----------------------------------------------------------------------------------------------------------------
# Tables 4-5: ablations over chain lengths
# ----------------------------------------------------------------------------------------------------------------


def markdown_table(rows: list[dict], columns: Sequence[str] | None = None, floatfmt: str = ".4g") -> str:
    """Render a list of dicts as a GitHub markdown table (missing cells are blank)."""
    if not rows:
        return ""
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def ablation_sweep(
    pipe,
    *,
    x_steps: Sequence[int] = (0, 10, 30, 70),
    z_steps: Sequence[int] = (0, 5, 10, 20),
    num_samples: int = 64,
    batch_size: int = 64,
    images=None,
    sample_metric: Callable[[np.ndarray], dict] | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate one pipeline at several x-step and z-step counts.

    x-steps: for each count, ``num_samples`` samples from the same seed; columns: mean final energy, seconds per
    sample and whatever ``sample_metric(uint8 samples) -> dict`` returns (e.g. FID or domain FD). z-steps (needs
    ``images`` and an encoder): reconstruction MSE. With ``out_dir``: ``ablation.json`` and ``ablation.md``.
    Returns ``{"x_steps": rows, "z_steps": rows, "markdown": str}``.
    """
    from tqdm.auto import tqdm

    x_rows = []
    with _quiet(pipe):
        for s in tqdm(list(x_steps), desc="ablation x-steps", disable=not progress):
            generator = torch.Generator(device="cpu").manual_seed(seed)
            samples, energies = [], []
            start = time.perf_counter()
            for i in range(0, num_samples, batch_size):
                out = pipe(
                    batch_size=min(batch_size, num_samples - i),
                    num_inference_steps=int(s),
                    generator=generator,
                    output_type="pt",
                    return_energies=True,
                )
                samples.append(to_uint8(out.images))
                if out.energies is not None:
                    energies.append(out.energies[-1].double().cpu())
            elapsed = time.perf_counter() - start
            samples = np.concatenate(samples)
            row = {"x_steps": int(s), "seconds_per_sample": elapsed / num_samples}
            if energies:
                row["mean_final_energy"] = float(torch.cat(energies).mean())
            if sample_metric is not None:
                row.update(sample_metric(samples))
            x_rows.append(row)
    z_rows = []
    if images is not None and pipe.encoder is not None and len(z_steps):
        rec = reconstruction_mse(
            pipe,
            images,
            num_latent_steps=int(max(z_steps)),
            curve_steps=z_steps,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
        )
        z_rows = [
            {"z_steps": c["num_latent_steps"], "recon_mse": c["mse"]}
            for c in rec["curve"]
            if c["num_latent_steps"] in {int(z) for z in z_steps}
        ]
        z_rows.insert(0, {"z_steps": "encoder only (Inf)", "recon_mse": rec["mse_inf"]})
    markdown = "### x-chain steps\n\n" + markdown_table(x_rows)
    if z_rows:
        markdown += "\n\n### z-chain steps\n\n" + markdown_table(z_rows)
    results = {"x_steps": x_rows, "z_steps": z_rows, "num_samples": num_samples, "seed": seed, "markdown": markdown}
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / "ablation.json", results)
        tmp = out_dir / "ablation.md.tmp"
        tmp.write_text(markdown + "\n")
        os.replace(tmp, out_dir / "ablation.md")
    return results


__all__ = [
    "ablation_sweep",
    "energy_profile",
    "interpolation_grids",
    "markdown_table",
    "reconstruction_mse",
    "save_image",
    "write_json",
]

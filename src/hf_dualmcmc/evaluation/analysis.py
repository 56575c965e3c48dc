"""The paper's analysis figures and tables on any :class:`~hf_dualmcmc.DualMCMCPipeline`:

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
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.utils import make_image_grid

from ..atomic import atomic_write
from .images import pixel_values, quiet, sampler_settings, to_uint8


def _write(path: str | os.PathLike, data) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return str(atomic_write(path, data))


def write_json(path: str | os.PathLike, data) -> str:
    """Atomically write ``data`` as indented JSON (numpy / torch values as numbers and lists, paths as strings)."""
    default = lambda obj: obj.tolist() if hasattr(obj, "tolist") else str(obj)  # noqa: E731
    return _write(path, json.dumps(data, indent=2, default=default) + "\n")


def save_image(image: PIL.Image.Image, path: str | os.PathLike, min_size: int = 256) -> str:
    """Atomically save a PIL image as PNG; grids of tiny images (8x8 digits) are upscaled by an integer factor
    (nearest neighbour, pixels kept sharp) until their smaller side reaches ``min_size``."""
    factor = max(1, -(-min_size // max(1, min(image.size))))
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), PIL.Image.NEAREST)
    return _write(path, lambda f: image.save(f, format="PNG"))


def _grid(images: Sequence[np.ndarray], rows: int, cols: int) -> PIL.Image.Image:  # uint8 [H, W, C] images
    return make_image_grid([PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in images], rows, cols)


def _plot(path: Path, x, y, xlabel: str, ylabel: str, title: str, std=None) -> str:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    ax.plot(x, y, marker="o" if std is None else None, label=ylabel)
    if std is not None:
        ax.fill_between(x, np.asarray(y) - std, np.asarray(y) + std, alpha=0.25, label="+/- 1 std")
        ax.legend()
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    return _write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))


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
    curve_steps = sorted({int(s) for s in (curve_steps or (0, 1, 2, 5, 2 * steps))} | {steps})
    x = pixel_values(images)
    target = (x + 1.0) / 2.0
    sq_err, sq_err_inf, examples = dict.fromkeys(curve_steps, 0.0), 0.0, None
    kw = {"sample_posterior": sample_posterior, "return_proposals": True, "output_type": "pt", "bn_stats": bn_stats}
    with quiet(pipe):
        for s in tqdm(curve_steps, desc="recon z-steps", disable=not progress):
            for i in range(0, x.shape[0], batch_size):
                out = pipe.reconstruct(pixel_values=x[i : i + batch_size], num_latent_steps=s, generator=seed + i, **kw)
                tgt, recon, proposals = target[i : i + batch_size], out.images.cpu(), out.proposals.cpu()
                sq_err[s] += float((recon - tgt).pow(2).sum())
                if s == curve_steps[0]:
                    sq_err_inf += float((proposals - tgt).pow(2).sum())
                if s == steps and i == 0:
                    examples = [to_uint8(t[:8]) for t in (tgt, proposals, recon)]
    mse = {s: e / target.numel() for s, e in sq_err.items()}
    curve = [{"num_latent_steps": s, "mse": m} for s, m in mse.items()]
    results = {"num_images": len(x), "num_latent_steps": steps, "mse_inf": sq_err_inf / target.numel()}
    results.update(mse_inf_plus_l=mse[steps], curve=curve)
    settings = {k: pipe.config[k] for k in ("latent_step_size", "latent_noise_scale")}
    settings.update(sample_posterior=sample_posterior, bn_stats=bn_stats or pipe.config.bn_stats, batch_size=batch_size)
    results["settings"] = {**settings, "seed": seed, "convention": "per-pixel mean squared error on images in [0, 1]"}
    if out_dir is not None:
        out_dir = Path(out_dir)
        steps_mse = ([c["num_latent_steps"] for c in curve], [c["mse"] for c in curve])
        title = "Reconstruction MSE vs. inference steps"
        curve_png = _plot(out_dir / "recon_mse_curve.png", *steps_mse, "z-chain Langevin steps", "per-pixel MSE", title)
        grid = _grid(np.concatenate(examples), rows=3, cols=len(examples[0]))
        results["files"] = {"curve_png": curve_png, "examples_png": save_image(grid, out_dir / "recon_examples.png")}
        write_json(out_dir / "recon_mse.json", results)
    return results


def energy_profile(
    pipe,
    *,
    batch_size: int = 16,
    num_snapshots: int = 6,
    strip_rows: int = 4,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    **sampler,
) -> dict:
    """Mean (and std) energy at every x-chain step, and an image strip proposal -> revised.

    One call of the pipeline (``return_energies=True``, seed ``seed``, the ``sampler`` overrides of
    ``num_inference_steps``, ``step_size``, ``noise_scale``, ``bn_stats``) whose ``callback_on_step_end`` keeps
    ``num_snapshots`` chain states. With ``out_dir``: ``energy_profile.json``, ``energy_profile.png`` and
    ``revision_strip.png`` (rows: samples, columns: steps).
    """
    if num_snapshots < 2:
        raise ValueError(f"num_snapshots must be >= 2, got {num_snapshots}")
    sampler = sampler_settings(pipe, **sampler)
    steps = sampler["num_inference_steps"]
    snap_steps = sorted({round(v) for v in np.linspace(0, steps, num_snapshots)})
    snapshots = {}

    def record(pipe, i, t, tensors):  # after Langevin step i: the chain state (model space, float32)
        if i + 1 in snap_steps:
            snapshots[i + 1] = ((tensors["sample"].clamp(-1, 1) + 1) / 2).cpu()
        return {}

    generator = torch.Generator(device="cpu").manual_seed(seed)
    with quiet(pipe):
        kwargs = {
            "output_type": "pt",
            "return_proposals": True,
            "return_energies": True,
            "callback_on_step_end": record,
        }
        out = pipe(batch_size=batch_size, generator=generator, **kwargs, **sampler)
    snapshots[0] = out.proposals.cpu()
    energies = out.energies.double().cpu()
    std = energies.std(1) if batch_size > 1 else torch.zeros(steps + 1, dtype=torch.float64)
    mean = energies.mean(1)
    results = {"num_samples": batch_size, "steps": list(range(steps + 1)), "mean_energy": mean.tolist()}
    results.update(std_energy=std.tolist(), energy_change=float(mean[-1] - mean[0]), snapshot_steps=snap_steps)
    results["sampler"] = {**sampler, "seed": seed}
    if out_dir is not None:
        out_dir = Path(out_dir)
        args = (results["steps"], results["mean_energy"], "x-chain Langevin step", "energy E(x)")
        profile_png = _plot(out_dir / "energy_profile.png", *args, "Energy profile of the MCMC revision", std.numpy())
        rows = min(strip_rows, batch_size)
        cells = [to_uint8(snapshots[s][r : r + 1])[0] for r in range(rows) for s in snap_steps]
        grid = _grid(cells, rows, len(snap_steps))
        results["files"] = {"profile_png": profile_png, "strip_png": save_image(grid, out_dir / "revision_strip.png")}
        write_json(out_dir / "energy_profile.json", results)
    return results


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
    """Generation rows (``z_a -> z_b``, ``z ~ N(0, I)``) and, with ``images`` and an encoder, reconstruction rows
    between the inferred latents of ``images[2r], images[2r + 1]``. With ``out_dir``: ``interpolation_<kind>.png``
    and ``interpolation.json``. Returns the grids (PIL) under ``"grids"`` and the settings."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    kwargs = {"num_points": num_points, "num_inference_steps": num_inference_steps, "generator": generator}
    grids: dict[str, PIL.Image.Image] = {}
    with quiet(pipe):
        rows = []
        for _ in range(num_rows):
            z = torch.randn(2, pipe.latent_dim, generator=generator)
            rows += pipe.interpolate(start_latents=z[0], end_latents=z[1], **kwargs).images
        grids["generation"] = make_image_grid(rows, rows=num_rows, cols=num_points)
        if images is not None and pipe.encoder is not None:
            images = to_uint8(images)
            pairs = min(num_rows, images.shape[0] // 2)
            if pairs < 1:
                raise ValueError(f"reconstruction interpolation needs at least 2 images, got {images.shape[0]}")
            kwargs["num_latent_steps"] = num_latent_steps
            rows = [
                im for r in range(pairs) for im in pipe.interpolate(images[2 * r], images[2 * r + 1], **kwargs).images
            ]
            grids["reconstruction"] = make_image_grid(rows, rows=pairs, cols=num_points)
    results = {"num_rows": num_rows, "num_points": num_points, "seed": seed, "kinds": sorted(grids)}
    for key, value in (("num_inference_steps", num_inference_steps), ("num_latent_steps", num_latent_steps)):
        results[key] = pipe.config[key] if value is None else value
    if out_dir is not None:
        results["files"] = {k: save_image(g, Path(out_dir, f"interpolation_{k}.png")) for k, g in grids.items()}
        write_json(Path(out_dir, "interpolation.json"), results)
    return {**results, "grids": grids}


def markdown_table(rows: list[dict], columns: Sequence[str] | None = None, floatfmt: str = ".4g") -> str:
    """Render a list of dicts as a GitHub markdown table (missing cells are blank)."""
    if not rows:
        return ""
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        return "" if v is None else format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows])


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

    x_rows, kw = [], {"output_type": "pt", "return_energies": True}
    with quiet(pipe):
        for s in tqdm(list(x_steps), desc="ablation x-steps", disable=not progress):
            generator = torch.Generator(device="cpu").manual_seed(seed)
            samples, energies = [], []
            start = time.perf_counter()
            for i in range(0, num_samples, batch_size):
                n = min(batch_size, num_samples - i)
                out = pipe(batch_size=n, num_inference_steps=int(s), generator=generator, **kw)
                samples.append(to_uint8(out.images))
                energies.append(out.energies[-1].double().cpu())
            row = {"x_steps": int(s), "seconds_per_sample": (time.perf_counter() - start) / num_samples}
            row["mean_final_energy"] = float(torch.cat(energies).mean())
            x_rows.append({**row, **(sample_metric(np.concatenate(samples)) if sample_metric else {})})
    z_rows = []
    if images is not None and pipe.encoder is not None and len(z_steps):
        kwargs = {"batch_size": batch_size, "seed": seed, "progress": progress}
        rec = reconstruction_mse(pipe, images, num_latent_steps=int(max(z_steps)), curve_steps=z_steps, **kwargs)
        curve = {c["num_latent_steps"]: c["mse"] for c in rec["curve"]}
        z_rows = [{"z_steps": "encoder only (Inf)", "recon_mse": rec["mse_inf"]}]
        z_rows += [{"z_steps": z, "recon_mse": curve[z]} for z in sorted({int(z) for z in z_steps})]
    markdown = "### x-chain steps\n\n" + markdown_table(x_rows)
    if z_rows:
        markdown += "\n\n### z-chain steps\n\n" + markdown_table(z_rows)
    results = {"x_steps": x_rows, "z_steps": z_rows, "num_samples": num_samples, "seed": seed, "markdown": markdown}
    if out_dir is not None:
        write_json(Path(out_dir, "ablation.json"), results)
        _write(Path(out_dir, "ablation.md"), markdown + "\n")
    return results


__all__ = ["ablation_sweep", "energy_profile", "interpolation_grids", "markdown_table", "reconstruction_mse"]
__all__ += ["save_image", "write_json"]

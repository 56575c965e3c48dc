#!/usr/bin/env python
"""Interactive demo of an energy-based model learned with Dual-MCMC teaching (Gradio; runs as a Space too).

    pip install -e ".[demo]"
    python app.py --pipeline outputs/digits/pipeline        # what the README's main command exports
    python app.py --pipeline org/dualmcmc-celeba64 --reference uoft-cs/cifar10 --port 7860

As a Gradio Space (``space/``: its README front matter and requirements; docs/HUB.md) it runs as ``python app.py``
with no flags: every flag defaults to an environment variable, ``DUALMCMC_PIPELINE`` (a Hub id or a folder),
``DUALMCMC_REFERENCE`` / ``DUALMCMC_REFERENCE_SPLIT``, and Gradio's own ``GRADIO_SERVER_NAME`` (a Space sets
``0.0.0.0``) and ``GRADIO_SERVER_PORT``; flags given on the command line win.

Three tabs:

* **Sample** -- generator proposals revised by Langevin steps on the energy: the samples, the revision strip
  (proposal -> revised, step by step, captured with ``callback_on_step_end``) and the mean energy per step.
* **Score an image** -- an upload's energy, its percentile among training images' energies (``--reference``, by
  default the data of the pipeline's ``training_config.yaml``) and its reconstruction (encoder + posterior steps).
* **Interpolate** -- between the latents of two seeds, each point revised on the energy.

Uploads of any size are resized to the model's input size (the page says so); non-images, corrupt files and files
over ``--max-upload-mb`` get a message in the page, never a stack trace. So does what a baseline's pipeline cannot
do (docs/BASELINES.md): without an energy model (inference-only) no Langevin steps and no energy score, without a
generator (short-run EBM, samples start from noise) no interpolation. The app writes no files.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from diffusers.utils import make_image_grid  # noqa: E402

from hf_dualmcmc import DualMCMCPipeline  # noqa: E402
from hf_dualmcmc.data import to_mode  # noqa: E402
from hf_dualmcmc.training_config import safe_load_yaml  # noqa: E402

DEFAULT_PIPELINE = "outputs/digits/pipeline"
MAX_BATCH, MAX_STEPS, STRIP_ROWS, STRIP_COLUMNS = 64, 500, 4, 8
DISPLAY_SIZE = 96  # tiny images (8x8 digits) are shown upscaled, pixels kept sharp
LACKS = {  # a component a baseline's pipeline has not -> what that pipeline is
    "energy_model": "this pipeline has no energy model (an inference-only baseline)",
    "generator_model": "this pipeline has no generator (a short-run EBM: its samples start from noise)",
}


def _show(image: PIL.Image.Image, size: int = DISPLAY_SIZE) -> PIL.Image.Image:
    scale = max(1, size // max(image.size))
    return image.resize((image.width * scale, image.height * scale), PIL.Image.NEAREST)


def reference_energies(pipe: DualMCMCPipeline, source: str, split: str = "train", max_images: int = 1000):
    """Energies of up to ``max_images`` images of ``source`` (the training data's grammar), for percentiles."""
    from hf_dualmcmc.evaluation import load_images
    from hf_dualmcmc.evaluation.ood import ood_scores

    c, h, _ = pipe.image_shape
    images = load_images(source, split=split, image_size=h, num_channels=c, max_images=max_images)
    return np.sort(ood_scores(pipe, images, "energy"))


def training_data_source(pipeline: str) -> tuple[str, str] | None:
    """``(data.source, data.split)`` of the ``training_config.yaml`` a trained pipeline folder or Hub repository
    holds, if any."""
    path = Path(pipeline) / "training_config.yaml"
    if not Path(pipeline).is_dir():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = Path(hf_hub_download(pipeline, "training_config.yaml"))
        except EntryNotFoundError:
            return None
    if not path.is_file():
        return None
    data = (safe_load_yaml(path) or {}).get("data") or {}  # plain YAML only: the file may come from the Hub
    return (data["source"], data.get("split", "train")) if data.get("source") else None


class Demo:
    """The page's callbacks around one pipeline (kept small so that tests can call them directly)."""

    def __init__(
        self,
        pipe: DualMCMCPipeline,
        energies: np.ndarray | None = None,
        reference: str = "",
        max_upload_mb: float = 10.0,
    ):
        self.pipe, self.energies, self.reference, self.max_upload_mb = pipe, energies, reference, max_upload_mb
        pipe.set_progress_bar_config(disable=True)

    def lacks(self, component: str, cannot: str) -> str | None:
        """A note for the page when the pipeline has no ``component``: what it is and what it ``cannot`` do."""
        return None if getattr(self.pipe, component) is not None else f"**Note:** {LACKS[component]}: {cannot}."

    def sample(self, seed, batch_size, steps, progress=gr.Progress()):  # noqa: B008 (how Gradio finds the bar)
        """Samples, the revision strip (first rows, snapshots from proposal to revised) and the energy plot."""
        seed, batch_size, steps = int(seed), int(batch_size), int(steps)
        if steps and (note := self.lacks("energy_model", "no Langevin steps; set the steps to 0")):
            return [], None, None, note
        every = max(1, math.ceil(steps / (STRIP_COLUMNS - 1)))
        snapshots = {}

        def on_step(pipe, i, timestep, kwargs):
            progress((i + 1) / steps, desc=f"Langevin step {i + 1}/{steps}")
            if (i + 1) % every == 0 or i + 1 == steps:
                snapshots[i + 1] = kwargs["sample"][:STRIP_ROWS].clone()
            return {}

        progress(0, desc="generator proposals")
        out = self.pipe(
            batch_size=batch_size,
            num_inference_steps=steps,
            generator=seed,
            output_type="pt",
            return_proposals=True,
            return_energies=steps > 0,
            callback_on_step_end=on_step,
        )
        columns = [out.proposals[:STRIP_ROWS] * 2 - 1] + [snapshots[k] for k in sorted(snapshots)]
        strip = torch.stack(columns, dim=1).flatten(0, 1)  # row r: sample r from proposal to revised
        tiles = self.pipe.image_processor.postprocess(strip.clamp(-1, 1), output_type="pil")
        strip_image = _show(make_image_grid(tiles, len(columns[0]), len(columns)), DISPLAY_SIZE * len(columns) * 2)
        images = [_show(im) for im in self.pipe.image_processor.postprocess(out.images * 2 - 1, output_type="pil")]
        labels = "proposal, " + ", ".join(f"step {k}" for k in sorted(snapshots))
        if steps == 0:
            return images, strip_image, None, f"{batch_size} generator proposals (0 Langevin steps)."
        e = out.energies.mean(1).numpy()
        return (
            images,
            strip_image,
            self._energy_plot(e),
            (
                f"{batch_size} samples, seed {seed}: mean energy {e[0]:.4g} (proposals) -> {e[-1]:.4g} after {steps} "
                f"Langevin steps. Strip columns: {labels}."
            ),
        )

    @staticmethod
    def _energy_plot(energies: np.ndarray):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(np.arange(len(energies)), energies)
        ax.set_xlabel("Langevin step")
        ax.set_ylabel("mean energy E(x)")
        ax.set_title("Energy along the revision (lower = more likely)")
        fig.tight_layout()
        return fig

    def score(self, path):
        """An upload's energy, percentile among the reference energies and reconstruction; messages for bad files."""
        if not path:
            return None, None, "Upload an image first."
        size = os.path.getsize(path)
        if size > self.max_upload_mb * 2**20:
            return (
                None,
                None,
                (
                    f"**Error:** the file is {size / 2**20:.1f} MB; the limit is {self.max_upload_mb:g} "
                    "MB. Upload a smaller image."
                ),
            )
        name = Path(path).name
        try:
            with PIL.Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except (PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
            return None, None, f"**Error:** `{name}` is not an image file this demo can read (or it is corrupt): {err}"
        c, h, w = self.pipe.image_shape
        notes = []
        if image.size != (w, h):
            notes.append(f"Resized from {image.width}x{image.height} to {w}x{h} (the model's input size).")
        mode = "L" if c == 1 else "RGB"
        if image.mode != mode:
            notes.append(f"Converted from {image.mode} to {mode}.")
        try:  # 16-bit, float, alpha and palette images as training data converts them (hf_dualmcmc.data.to_mode)
            image = to_mode(image, mode).resize((w, h), PIL.Image.BILINEAR)
        except ValueError as err:
            return None, None, f"**Error:** `{name}` cannot be used: {err}"
        x = self.pipe.preprocess(images=image)
        lines = [self.lacks("energy_model", "it cannot score images")]
        if lines[0] is None:
            with torch.no_grad():
                model = self.pipe.energy_model.eval()
                energy = float(model(x.to(model.dtype)).energy.item())
            lines = [f"**Energy** E(x) = {energy:.4g} (lower = more likely under the model)."]
        if self.energies is not None and len(self.energies) and self.pipe.energy_model is not None:
            below = float(np.searchsorted(self.energies, energy, side="right")) / len(self.energies) * 100
            lines.append(
                f"**Percentile** {below:.1f}: {below:.1f}% of {len(self.energies)} training images "
                f"({self.reference}) have a lower energy."
            )
        recon = None
        if self.pipe.encoder is not None:
            recon = _show(self.pipe.reconstruct(images=image, generator=0).images[0], 192)
            lines.append("**Reconstruction**: encoder + posterior Langevin steps, decoded by the generator.")
        return _show(image, 192), recon, "\n\n".join(lines + notes)

    def interpolate(self, seed_a, seed_b, num_points, steps):
        """The interpolation strip; ``gr.Error`` (a message in the page) for what the pipeline cannot do."""
        note = self.lacks("generator_model", "there are no latents to interpolate") or (
            int(steps) and self.lacks("energy_model", "no Langevin steps; set the steps to 0")
        )
        if note:
            raise gr.Error(note.removeprefix("**Note:** "))
        z = [
            torch.randn(self.pipe.latent_dim, generator=torch.Generator().manual_seed(int(s))) for s in (seed_a, seed_b)
        ]
        out = self.pipe.interpolate(
            start_latents=z[0],
            end_latents=z[1],
            num_points=int(num_points),
            num_inference_steps=int(steps),
            generator=0,
        )
        return _show(make_image_grid(out.images, 1, len(out.images)), DISPLAY_SIZE * len(out.images))


def build_demo(demo: Demo, title: str = "Dual-MCMC EBM") -> gr.Blocks:
    pipe = demo.pipe
    c, h, _ = pipe.image_shape
    steps_default = int(min(pipe.config.num_inference_steps, MAX_STEPS))
    with gr.Blocks(title=title) as page:
        gr.Markdown(
            f"# {title}\nAn energy-based model learned with Dual-MCMC teaching (Cui & Han, NeurIPS 2023): "
            f"{c}x{h}x{h} images, lower energy = more likely."
        )
        with gr.Tab("Sample"):
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="seed")
                batch = gr.Slider(1, MAX_BATCH, value=16, step=1, label="batch size")
                steps = gr.Slider(0, MAX_STEPS, value=steps_default, step=1, label="Langevin steps")
            run = gr.Button("Sample", variant="primary")
            status = gr.Markdown(elem_id="sample-status")
            gallery = gr.Gallery(label="revised samples", columns=8, elem_id="samples")
            with gr.Row():
                strip = gr.Image(label="revision strip: proposal -> revised", type="pil", elem_id="strip")
                plot = gr.Plot(label="energy per step")
            run.click(demo.sample, [seed, batch, steps], [gallery, strip, plot, status])
        with gr.Tab("Score an image"):
            if note := demo.lacks("energy_model", "an upload gets its reconstruction, no energy score"):
                gr.Markdown(note)
            upload = gr.File(label=f"image (resized to {h}x{h})", type="filepath", elem_id="upload")
            score_status = gr.Markdown(elem_id="score-status")
            with gr.Row():
                shown = gr.Image(label="model input", type="pil")
                recon = gr.Image(label="reconstruction", type="pil")
            # the outputs end with the upload box, cleared for the next file
            upload.upload(lambda path: (*demo.score(path), None), upload, [shown, recon, score_status, upload])
        with gr.Tab("Interpolate"):
            if note := demo.lacks("generator_model", "there are no latents to interpolate"):
                gr.Markdown(note)
            with gr.Row():
                seed_a = gr.Number(value=0, precision=0, label="start seed")
                seed_b = gr.Number(value=1, precision=0, label="end seed")
                points = gr.Slider(2, 16, value=8, step=1, label="points")
                i_steps = gr.Slider(0, MAX_STEPS, value=steps_default, step=1, label="Langevin steps")
            go = gr.Button("Interpolate")
            path = gr.Image(label="interpolation", type="pil", elem_id="interpolation")
            go.click(demo.interpolate, [seed_a, seed_b, points, i_steps], path)
    return page


def load_demo(
    pipeline: str,
    reference: str | None = None,
    split: str | None = None,
    device: str = "cpu",
    max_upload_mb: float = 10.0,
) -> Demo:
    pipe = DualMCMCPipeline.from_pretrained(pipeline).to(device)
    source = (reference, split or "train") if reference else training_data_source(pipeline)
    energies = reference_energies(pipe, *source) if source and pipe.energy_model is not None else None
    return Demo(pipe, energies, f"{source[0]}, split {source[1]}" if source else "", max_upload_mb)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    p.add_argument(
        "--pipeline",
        default=env("DUALMCMC_PIPELINE", DEFAULT_PIPELINE),
        help="a save_pretrained folder or a Hub id (default: $DUALMCMC_PIPELINE, else %(default)s)",
    )
    p.add_argument(
        "--reference",
        default=env("DUALMCMC_REFERENCE"),
        help="training images for percentiles (default: $DUALMCMC_REFERENCE, else the pipeline's training data)",
    )
    p.add_argument(
        "--reference-split", default=env("DUALMCMC_REFERENCE_SPLIT"), help="split of --reference (default: train)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--host",
        default=env("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to serve on (default: $GRADIO_SERVER_NAME, else 127.0.0.1; a Space sets 0.0.0.0)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(env("GRADIO_SERVER_PORT", 7860)),
        help="port (default: $GRADIO_SERVER_PORT, else 7860)",
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0)
    args = p.parse_args(argv)
    if not Path(args.pipeline).is_dir() and args.pipeline == DEFAULT_PIPELINE:
        p.error(
            f"{DEFAULT_PIPELINE} does not exist: run the README's main command first, or pass --pipeline "
            "(or set DUALMCMC_PIPELINE to a Hub id or a folder)"
        )
    try:
        demo = load_demo(args.pipeline, args.reference, args.reference_split, args.device, args.max_upload_mb)
    except (OSError, ValueError) as err:  # a missing folder or repository, a damaged pipeline, bad reference data
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    build_demo(demo, f"Dual-MCMC EBM: {args.pipeline}").queue().launch(
        server_name=args.host, server_port=args.port, max_file_size=f"{4 * args.max_upload_mb:g}mb"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

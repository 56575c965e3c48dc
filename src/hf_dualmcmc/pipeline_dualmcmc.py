"""``DualMCMCPipeline``: sample an energy-based model learned with Dual-MCMC teaching.

Sampling = generator proposal ``x0 = G(z)``, ``z ~ N(0, I)``, revised by Langevin steps on the energy ``E``.
Reconstruction = encoder latent ``z0 ~ q(z|x)``, revised by Langevin steps on the generator posterior, decoded.

```python
>>> import hf_dualmcmc  # registers the classes
>>> from hf_dualmcmc import DualMCMCPipeline
>>> pipe = DualMCMCPipeline.from_pretrained("org/dualmcmc-celeba64")  # or a local save_pretrained directory
>>> images = pipe(batch_size=16, generator=torch.Generator().manual_seed(0)).images  # PIL images
>>> out = pipe(batch_size=16, num_inference_steps=70, output_type="np", return_proposals=True, return_energies=True)
>>> out.proposals, out.images, out.energies.shape  # (16, 64, 64, 3) arrays in [0, 1]; energies [71, 16]
>>> recon = pipe.reconstruct(images=images, num_latent_steps=10).images
```

Value conventions (the same as the pipeline's outputs): ``images`` are PIL images, numpy arrays (uint8 in
``[0, 255]`` or float in ``[0, 1]``, ``[B, H, W, C]``) or torch tensors in ``[0, 1]`` (``[B, C, H, W]``);
``pixel_values`` are torch tensors in model space ``[-1, 1]``. Values outside the range raise ``ValueError``.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .langevin import LangevinOutput, chain_mode, energy_langevin, posterior_langevin
from .modeling_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel

OUTPUT_TYPES = ("pil", "np", "pt")
PROPOSALS = ("generator", "noise")
BN_STATS = ("batch", "running")
RANGE_TOLERANCE = 1e-4


def _is_a(module, cls: type) -> bool:
    """``isinstance``, or an instance of an equally named class from another copy of this code.

    diffusers' remote-code loader (``trust_remote_code=True``, see ``hf_dualmcmc.hub.export_for_hub``) executes the
    pipeline file and each component file as separate modules, so the loaded components are instances of equal
    copies of the model classes rather than of the classes this pipeline module imported.
    """
    return isinstance(module, cls) or any(c.__name__ == cls.__name__ for c in type(module).__mro__)


def _rand_tensor(shape, generator, device) -> torch.Tensor:
    """``Uniform[0, 1)`` float32 noise drawn like ``randn_tensor`` (CPU generators, one per sample for a list)."""
    if isinstance(generator, list):
        return torch.cat([torch.rand((1, *shape[1:]), generator=g) for g in generator]).to(device)
    where = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, dtype=torch.float32, device=where).to(device)


def _renamed_steps(num_inference_steps, num_revision_steps, default=None):
    """``num_revision_steps``: the first release's name of ``num_inference_steps`` (deprecated alias)."""
    if num_revision_steps is None:
        return default if num_inference_steps is None else num_inference_steps
    warnings.warn("num_revision_steps is deprecated: use num_inference_steps", FutureWarning, stacklevel=3)
    if num_inference_steps not in (None, default, num_revision_steps):
        raise ValueError(f"got num_inference_steps={num_inference_steps} and its deprecated alias "
                         f"num_revision_steps={num_revision_steps}: pass only num_inference_steps")
    return num_revision_steps


@dataclass
class DualMCMCPipelineOutput(BaseOutput):
    """Output of :class:`DualMCMCPipeline`.

    Attributes:
        images: revised samples (or reconstructions), as PIL images, a ``[B, H, W, C]`` array or a ``[B, C, H, W]``
            tensor in ``[0, 1]`` per ``output_type``.
        proposals: the generator proposals / encoder-only reconstructions before Langevin revision, same format
            (when requested).
        energies: ``[num_steps + 1, B]`` per-sample energies along the x-chain (for ``reconstruct``: posterior
            potentials along the z-chain), when requested.
        latents: ``[B, latent_dim]`` latents used (for ``reconstruct``: the revised latents).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    proposals: list[PIL.Image.Image] | np.ndarray | torch.Tensor | None = None
    energies: torch.Tensor | None = None
    latents: torch.Tensor | None = None


class DualMCMCPipeline(DiffusionPipeline):
    r"""Generator proposals + Langevin revision on the energy (Cui & Han, NeurIPS 2023).

    Components:
        energy_model ([`DualMCMCEnergyModel`]): the EBM ``E(x)``.
        generator_model ([`DualMCMCGeneratorModel`]): the initialiser ``G(z)`` (not called ``generator``: that
            name is the diffusers argument for a ``torch.Generator``).
        encoder ([`DualMCMCEncoderModel`], optional): the inference model; needed by :meth:`reconstruct` and image
            interpolation.

    Sampler defaults are stored in ``model_index.json`` and reloaded by ``from_pretrained``; the official FID
    sampler is 70 steps of size 0.4 with noise 0.001 and generator BatchNorm on batch statistics.

    Baselines (``hf_dualmcmc.baselines``) export the same pipeline with fewer components: ``proposal="noise"``
    starts the x-chain from ``Uniform[-noise_init_range, noise_init_range]`` instead of ``G(z)`` (the short-run EBM;
    ``generator_model`` may then be ``None``), and ``energy_model=None`` (generator + encoder only) allows only
    ``num_inference_steps=0``: the samples are the generator's. Both options are off by default.
    """

    model_cpu_offload_seq = "encoder->generator_model->energy_model"
    _optional_components = ["encoder", "generator_model", "energy_model"]

    def __init__(
        self,
        energy_model: DualMCMCEnergyModel,
        generator_model: DualMCMCGeneratorModel,
        encoder: DualMCMCEncoderModel | None = None,
        num_inference_steps: int | None = None,
        step_size: float = 0.4,
        noise_scale: float = 0.001,
        bn_stats: str = "batch",
        num_latent_steps: int = 10,
        latent_step_size: float = 0.1,
        latent_noise_scale: float = 0.1,
        proposal: str = "generator",
        noise_init_range: float = 1.0,
        num_revision_steps: int | None = None,
    ):
        super().__init__()
        num_inference_steps = _renamed_steps(num_inference_steps, num_revision_steps, default=70)
        self._check_proposal(proposal, noise_init_range, energy_model, generator_model, encoder)
        self._check_components(energy_model, generator_model, encoder)
        self._check_sampler(num_inference_steps, step_size, noise_scale, bn_stats)
        self._check_sampler(num_latent_steps, latent_step_size, latent_noise_scale, bn_stats, what="latent ")
        if energy_model is None and num_inference_steps != 0:
            raise ValueError(f"a pipeline without energy_model cannot revise samples: expected num_inference_steps=0, "
                             f"got {num_inference_steps}")
        self.register_modules(energy_model=energy_model, generator_model=generator_model, encoder=encoder)
        self.register_to_config(
            num_inference_steps=num_inference_steps,
            step_size=step_size,
            noise_scale=noise_scale,
            bn_stats=bn_stats,
            num_latent_steps=num_latent_steps,
            latent_step_size=latent_step_size,
            latent_noise_scale=latent_noise_scale,
            proposal=proposal,
            noise_init_range=noise_init_range,
        )
        self.image_processor = VaeImageProcessor(do_normalize=True, do_resize=False)

    # ------------------------------------------------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_proposal(proposal, noise_init_range, energy_model, generator_model, encoder) -> None:
        if proposal not in PROPOSALS:
            raise ValueError(f"proposal must be one of {PROPOSALS}, got {proposal!r}")
        if noise_init_range is None or not noise_init_range > 0:
            raise ValueError(f"noise_init_range must be > 0, got {noise_init_range!r}")
        if proposal == "generator" and generator_model is None:
            raise ValueError("proposal='generator' needs generator_model (or use proposal='noise' for a short-run EBM)")
        if proposal == "noise" and energy_model is None:
            raise ValueError("proposal='noise' needs energy_model to revise the noise")
        if encoder is not None and generator_model is None:
            raise ValueError("encoder needs generator_model (reconstruction decodes with it)")

    @staticmethod
    def _check_components(energy_model, generator_model, encoder) -> None:
        for name, module, cls in (
            ("energy_model", energy_model, DualMCMCEnergyModel),
            ("generator_model", generator_model, DualMCMCGeneratorModel),
        ):
            if module is not None and not _is_a(module, cls):
                raise ValueError(f"{name} must be a {cls.__name__}, got {type(module).__name__}")
        if encoder is not None and not _is_a(encoder, DualMCMCEncoderModel):
            raise ValueError(f"encoder must be a DualMCMCEncoderModel or None, got {type(encoder).__name__}")
        g = generator_model.config if generator_model is not None else None
        e = energy_model.config if energy_model is not None else None
        if g is not None and e is not None and (g.image_size, g.num_channels) != (e.image_size, e.num_channels):
            raise ValueError(
                f"generator_model produces {g.num_channels}x{g.image_size}x{g.image_size} images but energy_model "
                f"expects {e.num_channels}x{e.image_size}x{e.image_size}: expected matching image_size/num_channels"
            )
        if encoder is not None and g is not None:
            c = encoder.config
            if (c.image_size, c.num_channels) != (g.image_size, g.num_channels):
                raise ValueError(
                    f"encoder expects {c.num_channels}x{c.image_size}x{c.image_size} images but generator_model "
                    f"produces {g.num_channels}x{g.image_size}x{g.image_size}: expected matching image_size/num_channels"
                )
            if c.latent_dim != g.latent_dim:
                raise ValueError(
                    f"encoder latent_dim {c.latent_dim} != generator_model latent_dim {g.latent_dim}: expected equal"
                )

    @staticmethod
    def _check_sampler(steps, step_size, noise, bn_stats, what: str = "") -> None:
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"{what}number of revision steps must be an integer >= 0, got {steps!r}")
        if step_size is None or step_size < 0:
            raise ValueError(f"{what}step size must be >= 0, got {step_size!r}")
        if noise is None or noise < 0:
            raise ValueError(f"{what}noise scale must be >= 0, got {noise!r}")
        if bn_stats not in BN_STATS:
            raise ValueError(f"bn_stats must be one of {BN_STATS}, got {bn_stats!r}")

    @staticmethod
    def _check_output_type(output_type: str) -> None:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = (self.generator_model if self.generator_model is not None else self.energy_model).config
        return (c.num_channels, c.image_size, c.image_size)

    @property
    def latent_dim(self) -> int | None:
        """The generator's latent size (``None`` for a noise-initialised pipeline without generator)."""
        return self.generator_model.config.latent_dim if self.generator_model is not None else None

    def _generators(self, generator, batch_size: int):
        if isinstance(generator, int):
            return torch.Generator(device="cpu").manual_seed(generator)
        if isinstance(generator, list):
            if len(generator) != batch_size:
                raise ValueError(f"a list of generators must have one per sample: expected {batch_size}, got {len(generator)}")
            return [torch.Generator(device="cpu").manual_seed(g) if isinstance(g, int) else g for g in generator]
        return generator

    # ------------------------------------------------------------------------------------------------------------
    # model calls (dtype-safe: chain state stays float32, the networks see their own dtype)
    # ------------------------------------------------------------------------------------------------------------

    @contextmanager
    def _sampling_state(self, bn_stats: str):
        """Energy/encoder in eval mode (stored spectral-norm vectors, no mutation), generator BN per ``bn_stats``."""
        modules = [m for m in (self.energy_model, self.encoder) if m is not None]
        modes = [m.training for m in modules]
        with ExitStack() as stack:
            for m in modules:
                m.eval()
            stack.callback(lambda: [m.train(t) for m, t in zip(modules, modes)])
            if self.generator_model is not None:
                stack.enter_context(self.generator_model.batch_norm_stats(bn_stats))
            yield

    def _energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_model.energy(x.to(self.energy_model.dtype))

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator_model.generate(z.to(self.generator_model.dtype))

    def _revise(self, x0, steps, step_size, noise, generator, return_energies, progress: bool):
        bar = self.progress_bar(total=steps) if progress and steps > 0 else None
        callback = (lambda i, x: bar.update()) if bar is not None else None
        # freeze the module itself; the chain calls the dtype-casting wrapper
        with chain_mode(self.energy_model):
            out = energy_langevin(
                self._energy, x0, steps, step_size, noise, generator=generator, return_energies=return_energies, callback=callback
            )
        if bar is not None:
            bar.close()
        return out

    def _to_output(self, x: torch.Tensor, output_type: str):
        return self.image_processor.postprocess(x.float().clamp(-1, 1), output_type=output_type)

    # ------------------------------------------------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        num_inference_steps: int | None = None,
        step_size: float | None = None,
        noise_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | int | list[int] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        return_proposals: bool = False,
        return_energies: bool = False,
        bn_stats: str | None = None,
        num_revision_steps: int | None = None,
    ) -> DualMCMCPipelineOutput | tuple:
        r"""Sample the EBM: ``x0 = G(z)``, then ``num_inference_steps`` Langevin steps on ``E``.

        Args:
            batch_size: number of images (>= 1); ignored when ``latents`` are given.
            num_inference_steps / step_size / noise_scale: x-chain settings (defaults from the pipeline config:
                70 / 0.4 / 0.001, the authors' FID sampler). 0 steps returns the generator proposals.
            generator: a ``torch.Generator``, a seed, or a list of them (one per sample) for ``z`` and the noise.
            latents: optional initial latents ``[B, latent_dim]``.
            output_type: ``"pil"``, ``"np"`` (``[B, H, W, C]`` in ``[0, 1]``) or ``"pt"`` (``[B, C, H, W]`` in ``[0, 1]``).
            return_dict: return a :class:`DualMCMCPipelineOutput` (else a tuple ``(images, proposals, energies)``).
            return_proposals: also return the unrevised generator proposals.
            return_energies: also return the ``[steps + 1, B]`` energy trajectory (a torch tensor).
            bn_stats: generator BatchNorm statistics, ``"batch"`` (the authors' sampler) or ``"running"``.
        """
        cfg = self.config
        num_inference_steps = _renamed_steps(num_inference_steps, num_revision_steps)
        steps = cfg.num_inference_steps if num_inference_steps is None else num_inference_steps
        step_size = cfg.step_size if step_size is None else step_size
        noise_scale = cfg.noise_scale if noise_scale is None else noise_scale
        bn_stats = cfg.bn_stats if bn_stats is None else bn_stats
        self._check_sampler(steps, step_size, noise_scale, bn_stats)
        self._check_output_type(output_type)
        device = self._execution_device
        noise_init = getattr(cfg, "proposal", "generator") == "noise"
        if self.energy_model is None and (steps != 0 or return_energies):
            raise ValueError("this pipeline has no energy_model (a generator + encoder baseline): expected "
                             f"num_inference_steps=0 and return_energies=False, got {steps} and {return_energies}")
        if noise_init and latents is not None:
            raise ValueError("this pipeline starts from uniform noise (proposal='noise'): it takes no latents")

        if latents is not None:
            if latents.dim() == 4:
                latents = latents.flatten(1)
            if latents.dim() != 2 or latents.shape[1] != self.latent_dim:
                raise ValueError(f"latents must have shape [batch, {self.latent_dim}], got {tuple(latents.shape)}")
            latents = latents.to(device=device, dtype=torch.float32)
            batch_size = latents.shape[0]
        elif not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        generator = self._generators(generator, batch_size)
        if noise_init:
            r = cfg.noise_init_range
            u = _rand_tensor((batch_size, *self.image_shape), generator=generator, device=device)
            proposals = (u * 2 - 1) * r
        elif latents is None:
            latents = randn_tensor((batch_size, self.latent_dim), generator=generator, device=device, dtype=torch.float32)

        with self._sampling_state(bn_stats):
            if not noise_init:
                proposals = self._decode(latents).float()
            if self.energy_model is None:
                out = LangevinOutput(sample=proposals)
            else:
                out = self._revise(proposals, steps, step_size, noise_scale, generator, return_energies, progress=True)

        images = self._to_output(out.sample, output_type)
        proposals_out = self._to_output(proposals, output_type) if return_proposals else None
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, proposals_out, out.energies)
        return DualMCMCPipelineOutput(images=images, proposals=proposals_out, energies=out.energies, latents=latents)

    # ------------------------------------------------------------------------------------------------------------
    # inference: reconstruction and interpolation
    # ------------------------------------------------------------------------------------------------------------

    def preprocess(self, images=None, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """Validate and convert user images to model-space ``[B, C, H, W]`` float32 tensors in ``[-1, 1]``.

        ``images``: PIL image(s), numpy ``[B, H, W, C]`` / ``[H, W, C]`` (uint8 or float in ``[0, 1]``), or a torch
        tensor ``[B, C, H, W]`` / ``[C, H, W]`` in ``[0, 1]``. ``pixel_values``: a torch tensor in ``[-1, 1]``.
        """
        if (images is None) == (pixel_values is None):
            raise ValueError("pass exactly one of `images` (values in [0, 1], PIL or uint8) or `pixel_values` (in [-1, 1])")
        c, h, w = self.image_shape
        if pixel_values is not None:
            if not isinstance(pixel_values, torch.Tensor):
                raise ValueError(f"pixel_values must be a torch.Tensor in [-1, 1], got {type(pixel_values).__name__}")
            x, low, name = pixel_values.float(), -1.0, "pixel_values"
        else:
            low, name = 0.0, "images"
            if isinstance(images, PIL.Image.Image):
                images = [images]
            if isinstance(images, list) and images and isinstance(images[0], PIL.Image.Image):
                mode = "L" if c == 1 else "RGB"
                images = np.stack([np.asarray(im.convert(mode)) for im in images])
            if isinstance(images, np.ndarray):
                if images.dtype == np.uint8:
                    images = images.astype(np.float32) / 255.0
                if images.ndim == 2:
                    images = images[None, :, :, None]
                elif images.ndim == 3 and c == 1 and images.shape[-1] != 1:
                    images = images[..., None]
                elif images.ndim == 3:
                    images = images[None]
                if images.ndim != 4:
                    raise ValueError(f"numpy images must be [B, H, W, C] or [H, W, C], got shape {images.shape}")
                x = torch.from_numpy(np.ascontiguousarray(images)).float().permute(0, 3, 1, 2)
            elif isinstance(images, torch.Tensor):
                x = images.float()
            else:
                raise ValueError(
                    "images must be PIL image(s), a numpy array or a torch tensor in [0, 1], "
                    f"got {type(images).__name__}"
                )
        if x.dim() == 3:
            x = x[None]
        if x.dim() != 4:
            raise ValueError(f"{name} must be [B, C, H, W] (or [C, H, W]), got shape {tuple(x.shape)}")
        if x.shape[0] < 1:
            raise ValueError(f"{name} must contain at least one image")
        if tuple(x.shape[1:]) != (c, h, w):
            raise ValueError(
                f"{name} have shape {tuple(x.shape[1:])} (channels, height, width) but this pipeline expects "
                f"{(c, h, w)}: resize/convert the images to {c} channel(s) at {h}x{w}"
            )
        lo, hi = x.min().item(), x.max().item()
        if not (lo >= low - RANGE_TOLERANCE and hi <= 1.0 + RANGE_TOLERANCE) or not np.isfinite([lo, hi]).all():
            raise ValueError(f"{name} values must lie in [{low:g}, 1], got min {lo:.4g}, max {hi:.4g}")
        if pixel_values is None:
            x = x * 2.0 - 1.0
        return x.clamp(-1, 1).to(self._execution_device)

    @torch.no_grad()
    def encode(
        self,
        images=None,
        pixel_values: torch.Tensor | None = None,
        num_latent_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | int | None = None,
        sample_posterior: bool = True,
        return_energies: bool = False,
        bn_stats: str | None = None,
    ):
        """Infer latents for images: encoder draw (or mean) then ``num_latent_steps`` posterior Langevin steps.

        Returns ``(initial latents, revised latents, LangevinOutput)``.
        """
        if self.encoder is None:
            raise ValueError("this pipeline has no encoder: reconstruction/inference needs `encoder`")
        cfg = self.config
        steps = cfg.num_latent_steps if num_latent_steps is None else num_latent_steps
        bn_stats = cfg.bn_stats if bn_stats is None else bn_stats
        self._check_sampler(steps, cfg.latent_step_size, cfg.latent_noise_scale, bn_stats, what="latent ")
        x = self.preprocess(images, pixel_values)
        generator = self._generators(generator, x.shape[0])
        gcfg = self.generator_model.config
        with self._sampling_state(bn_stats):
            q = self.encoder(x.to(self.encoder.dtype))
            z0 = (q.sample(generator) if sample_posterior else q.mean).float()
            with chain_mode(self.generator_model):
                out = posterior_langevin(
                    self._decode, z0, x, steps, cfg.latent_step_size, cfg.latent_noise_scale, gcfg.observation_std,
                    gcfg.prior_std, generator=generator, return_energies=return_energies,
                )
        return z0, out.sample, out, x

    @torch.no_grad()
    def reconstruct(
        self,
        images=None,
        pixel_values: torch.Tensor | None = None,
        num_latent_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | int | None = None,
        sample_posterior: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
        return_proposals: bool = False,
        return_energies: bool = False,
        bn_stats: str | None = None,
    ) -> DualMCMCPipelineOutput | tuple:
        """Reconstruct images: encoder initialisation + ``num_latent_steps`` z-chain steps, then ``G(z)``.

        ``return_proposals`` adds the encoder-only reconstructions (``G(z0)``), the paper's "Inf" row; the
        revised ones are "Inf+L". ``latents`` in the output are the revised latents.
        """
        self._check_output_type(output_type)
        bn = self.config.bn_stats if bn_stats is None else bn_stats
        z0, z, out, _ = self.encode(
            images, pixel_values, num_latent_steps, generator, sample_posterior, return_energies, bn_stats
        )
        with self._sampling_state(bn):
            recon = self._decode(z).float()
            initial = self._decode(z0).float() if return_proposals else None
        images_out = self._to_output(recon, output_type)
        proposals = self._to_output(initial, output_type) if initial is not None else None
        if not return_dict:
            return (images_out, proposals, out.energies)
        return DualMCMCPipelineOutput(images=images_out, proposals=proposals, energies=out.energies, latents=z)

    @torch.no_grad()
    def interpolate(
        self,
        start=None,
        end=None,
        num_points: int = 8,
        *,
        start_latents: torch.Tensor | None = None,
        end_latents: torch.Tensor | None = None,
        num_inference_steps: int | None = None,
        num_latent_steps: int | None = None,
        generator: torch.Generator | int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        bn_stats: str | None = None,
    ) -> DualMCMCPipelineOutput | tuple:
        """Linear latent interpolation (paper Fig. 4) between two latents or two images.

        Give either ``start``/``end`` images (single images in the :meth:`preprocess` ``images`` convention; their
        latents are inferred with the encoder and the z-chain, the figure's reconstruction rows) or
        ``start_latents``/``end_latents`` (``[latent_dim]``; the generation rows). Each interpolant is decoded and
        revised with ``num_inference_steps`` x-steps (0 shows the raw generator path).
        """
        if not isinstance(num_points, int) or num_points < 2:
            raise ValueError(f"num_points must be an integer >= 2, got {num_points!r}")
        if (start is None) != (end is None) or (start_latents is None) != (end_latents is None):
            raise ValueError("give both endpoints: start and end images, or start_latents and end_latents")
        if (start is None) == (start_latents is None):
            raise ValueError("interpolate between images (start, end) or latents (start_latents, end_latents), not both")
        if start is not None:
            pair = torch.cat([self.preprocess(images=start), self.preprocess(images=end)])
            if pair.shape[0] != 2:
                raise ValueError("interpolate takes a single start and a single end image")
            _, z, _, _ = self.encode(pixel_values=pair, num_latent_steps=num_latent_steps, generator=generator,
                                     sample_posterior=False, bn_stats=bn_stats)
            z_a, z_b = z[:1], z[1:]
        else:
            z_a, z_b = (t.reshape(1, -1).float().to(self._execution_device) for t in (start_latents, end_latents))
            for t in (z_a, z_b):
                if t.shape[1] != self.latent_dim:
                    raise ValueError(f"latents must have {self.latent_dim} entries, got {t.shape[1]}")
        w = torch.linspace(0, 1, num_points, device=z_a.device).unsqueeze(1)
        latents = (1 - w) * z_a + w * z_b
        return self(
            latents=latents, num_inference_steps=num_inference_steps, generator=generator, output_type=output_type,
            return_dict=return_dict, bn_stats=bn_stats,
        )

    def push_to_hub(self, repo_id: str, commit_message: str | None = None, private: bool | None = None,
                    token: str | None = None, create_pr: bool = False, **card_kwargs):
        """Upload this pipeline with this project's model card (``hf_dualmcmc.hub.push_to_hub``) instead of diffusers'
        generic one; ``card_kwargs`` (``template``, ``dataset``, ``training_config``, ``metrics``, ``extra_tags``) go
        to ``hf_dualmcmc.hub.write_model_card``. ``save_pretrained(..., push_to_hub=True)`` uploads through here."""
        import importlib  # not `from .hub import`: remote-code loaders would then look for a hub.py next to this file

        hub = importlib.import_module("hf_dualmcmc.hub")
        return hub.push_to_hub(self, repo_id, commit_message=commit_message, private=private, token=token,
                               create_pr=create_pr, **card_kwargs)

    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        """``DiffusionPipeline.save_pretrained``; ``push_to_hub=True`` then uploads with :meth:`push_to_hub` (kwargs
        ``repo_id`` (default: the folder name), ``commit_message``, ``private``, ``token``, ``create_pr``)."""
        import os

        hub_keys = ("repo_id", "commit_message", "private", "token", "create_pr")
        hub_kwargs = {k: kwargs.pop(k) for k in hub_keys if k in kwargs}
        super().save_pretrained(save_directory, *args, **kwargs)
        if push_to_hub:
            self.push_to_hub(hub_kwargs.pop("repo_id", None) or os.path.basename(os.path.abspath(save_directory)),
                             **hub_kwargs)


__all__ = ["DualMCMCPipeline", "DualMCMCPipelineOutput"]

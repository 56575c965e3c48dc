"""``DualMCMCPipeline`` (shaped like diffusers' ``DDPMPipeline``) for Dual-MCMC EBMs: generator proposals ``G(z)`` revised
by Langevin steps on the energy ``E``; reconstruction: encoder draws revised on the generator posterior, decoded."""

from __future__ import annotations

import math
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput, logging, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor

from .atomic import MODEL_INDEX_FILE, default_modes
from .configuration_dualmcmc import OFFICIAL_SAMPLER
from .langevin import GeneratorLike, chain_mode, check_int, check_real, energy_langevin, posterior_langevin
from .modeling_dualmcmc import DualMCMCEncoderModel, DualMCMCEnergyModel, DualMCMCGeneratorModel

logger = logging.get_logger(__name__)
COMPONENTS = {
    "energy_model": DualMCMCEnergyModel,
    "generator_model": DualMCMCGeneratorModel,
    "encoder": DualMCMCEncoderModel,
}
HUB_ARGUMENTS = ("revision", "cache_dir", "token", "local_files_only", "force_download")
SAMPLER_DEFAULTS = {**OFFICIAL_SAMPLER, "proposal": "generator", "noise_init_range": 1.0}
# the rules of the pipeline's arguments by name: choices, integers >= a minimum, else finite numbers > 0 or >= 0
CHOICES = {
    "output_type": ("pil", "np", "pt", "latent"),
    "proposal": ("generator", "noise"),
    "bn_stats": ("batch", "running"),
}
MIN_INT = {"num_inference_steps": 0, "num_latent_steps": 0, "batch_size": 1, "num_points": 2}
POSITIVE = ("step_size", "latent_step_size", "noise_init_range")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from hf_dualmcmc import DualMCMCPipeline
        >>> pipe = DualMCMCPipeline.from_pretrained("outputs/digits/pipeline")  # a save_pretrained dir or a Hub repo id
        >>> out = pipe(batch_size=16, generator=torch.Generator().manual_seed(0), return_proposals=True)  # + G(z)
        >>> pair = pipe(batch_size=2, generator=[3, 4], bn_stats="running").images  # = seeds 3, 4 in any batch
        >>> recon = pipe.reconstruct(images=out.images, num_latent_steps=10).images
        ```
"""


def check_argument(name: str, value):
    """``value`` checked by the rule of the pipeline argument ``name`` (numpy scalars too), else a ``ValueError``."""
    if name in CHOICES:
        if value not in CHOICES[name]:
            raise ValueError(f"{name} must be one of {CHOICES[name]}, got {value!r}")
        return value
    if name in MIN_INT:
        return check_int(value, name, MIN_INT[name])
    return check_real(value, name, positive=name in POSITIVE)


def check_sampler_settings(**settings) -> dict:
    """The sampler settings of :class:`DualMCMCPipeline` (the names of ``SAMPLER_DEFAULTS``) checked, in that order,
    with a missing or ``None`` setting set to its default (the authors' FID sampler)."""
    if unknown := sorted(set(settings) - set(SAMPLER_DEFAULTS)):
        raise ValueError(f"unknown sampler setting(s) {unknown}: expected some of {list(SAMPLER_DEFAULTS)}")
    return {
        name: check_argument(name, default if settings.get(name) is None else settings[name])
        for name, default in SAMPLER_DEFAULTS.items()
    }


def _check_finite(x: torch.Tensor, name: str, low: float = -math.inf, high: float = math.inf) -> None:
    """``ValueError`` naming ``name`` unless ``x`` is a non-empty batch of finite values in ``[low, high]`` (+-1e-4)."""
    if x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"{name} is empty: expected at least one sample, got shape {tuple(x.shape)}")
    lo, hi = x.min().item(), x.max().item()
    if not (math.isfinite(lo) and math.isfinite(hi) and lo >= low - 1e-4 and hi <= high + 1e-4):
        raise ValueError(f"{name} values must be finite, in [{low:g}, {high:g}]; got min {lo:.4g}, max {hi:.4g}")


def _generators(generator, batch_size: int) -> GeneratorLike:
    """``generator`` as a ``torch.Generator`` or one per sample (a list); integers seed CPU generators."""
    many = isinstance(generator, (list, tuple))
    if many and len(generator) != batch_size:
        raise ValueError(f"generator: a list needs one per sample: expected {batch_size}, got {len(generator)}")
    what = "generator (a torch.Generator, an integer seed, or a list of them)"
    gens = [
        g if isinstance(g, torch.Generator) else torch.Generator().manual_seed(check_int(g, what, -(2**63)))
        for g in (generator if many else [] if generator is None else [generator])
    ]
    return gens if many else (gens or [None])[0]


def _pipeline_folder(name: str, **hub_kwargs) -> str:
    """``name`` if it is a folder, else a snapshot of the files of Hub repository ``name`` that ``from_pretrained``
    reads (``OSError`` saying why when it cannot be had)."""
    if os.path.isdir(name):
        return name
    from huggingface_hub import constants, errors, snapshot_download

    reasons = {  # the first that matches
        errors.HFValidationError: f"{name!r} is neither a local folder nor a valid Hub repository id ('org/name')",
        errors.RevisionNotFoundError: f"the Hub repository {name!r} has no revision {hub_kwargs.get('revision')!r}",
        errors.RepositoryNotFoundError: f"{name!r} is not a local folder and the Hub ({constants.ENDPOINT}) has no "
        "repository of that name that you can access (check the id; for a private one log in with `hf auth login`)",
        errors.LocalEntryNotFoundError: f"{name!r} is not a local folder nor in the Hugging Face cache, and the Hub "
        f"cannot be reached (offline: HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r})",
    }
    files = [f"{c}/{f}" for c in COMPONENTS for f in ("config.json", "*.safetensors", "*.index.json")]
    try:
        return snapshot_download(name, allow_patterns=[MODEL_INDEX_FILE, *files], **hub_kwargs)
    except tuple(reasons) as err:
        raise OSError(f"{next(r for cls, r in reasons.items() if isinstance(err, cls))}: {err}") from err


@dataclass
class DualMCMCPipelineOutput(BaseOutput):
    """Revised ``images`` (per ``output_type``), unrevised ``proposals``, ``energies`` ``[steps + 1, B]``, ``latents``."""

    images: list | np.ndarray | torch.Tensor
    proposals: list | np.ndarray | torch.Tensor | None = None
    energies: torch.Tensor | None = None
    latents: torch.Tensor | None = None


class DualMCMCPipeline(DiffusionPipeline):
    r"""Components: ``energy_model`` ``E(x)``, ``generator_model`` ``G(z)`` (``generator`` is diffusers' argument for a
    ``torch.Generator``), optional ``encoder`` ``q(z|x)``. Baselines: ``proposal="noise"`` starts from uniform noise in
    ``[-noise_init_range, noise_init_range]`` (short-run EBM); without ``energy_model`` ``num_inference_steps=0``.

    Reproducibility: with ``bn_stats="batch"`` (the default, the authors' sampler) the generator's BatchNorm uses the
    batch's statistics, so a sample depends on its batch. With ``bn_stats="running"`` and one seed or generator per
    sample (``generator=[s0, s1, ...]``), seed ``s`` gives the same sample (to ~1e-6) alone or in any batch.
    """

    model_cpu_offload_seq = "encoder->generator_model->energy_model"
    _optional_components = ["encoder", "generator_model", "energy_model"]
    _callback_tensor_inputs = ["sample"]

    def __init__(
        self,
        energy_model,
        generator_model,
        encoder=None,
        num_inference_steps=None,
        step_size=None,
        noise_scale=None,
        bn_stats=None,
        num_latent_steps=None,
        latent_step_size=None,
        latent_noise_scale=None,
        proposal=None,
        noise_init_range=None,
    ):
        """The components and the sampler settings (``None``: ``SAMPLER_DEFAULTS``), checked; the settings are saved."""
        super().__init__()
        given = locals()
        settings = check_sampler_settings(**{name: given[name] for name in SAMPLER_DEFAULTS})
        proposal, steps = settings["proposal"], settings["num_inference_steps"]
        if generator_model is None and (proposal == "generator" or encoder is not None):
            raise ValueError(
                f"{'an encoder' if encoder is not None else f'proposal={proposal!r}'} needs generator_model"
            )
        if energy_model is None and (proposal == "noise" or steps != 0):
            raise ValueError(
                f"energy_model=None needs proposal='generator', num_inference_steps=0; got {proposal!r}, {steps}"
            )
        components = {"generator_model": generator_model, "energy_model": energy_model, "encoder": encoder}
        for name, module in components.items():  # by class name: remote code (hub.export_for_hub) copies our classes
            if module is not None and COMPONENTS[name].__name__ not in [c.__name__ for c in type(module).__mro__]:
                raise ValueError(f"{name} must be a {COMPONENTS[name].__name__} or None, got {type(module).__name__}")
        shapes = {n: (m.config.num_channels, m.config.image_size) for n, m in components.items() if m is not None}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"the components disagree on (num_channels, image_size): {shapes}; expected equal")
        if encoder is not None and (e := encoder.config.latent_dim) != (g := generator_model.config.latent_dim):
            raise ValueError(f"encoder latent_dim {e} != generator_model latent_dim {g}: expected equal")
        self.register_modules(energy_model=energy_model, generator_model=generator_model, encoder=encoder)
        self.register_to_config(**settings)
        self.image_processor = VaeImageProcessor(
            do_resize=False, do_convert_rgb=self.image_shape[0] == 3, do_convert_grayscale=self.image_shape[0] == 1
        )

    def sampler_settings(self, **overrides) -> dict:
        """The config's sampler settings with the ``overrides`` that are not ``None``, checked."""
        stored = {name: self.config[name] for name in SAMPLER_DEFAULTS}
        return check_sampler_settings(**{**stored, **{k: v for k, v in overrides.items() if v is not None}})

    def check_inputs(self, batch_size, latents, generator, return_energies, tensor_inputs, output_type, steps):
        """Validate :meth:`__call__`'s other arguments (``ValueError`` naming the argument); returns them normalised."""
        check_argument("output_type", output_type)
        if self.energy_model is None and (steps != 0 or return_energies):
            raise ValueError(
                "this pipeline has no energy_model (a generator + encoder baseline): expected "
                f"num_inference_steps=0 and return_energies=False, got {steps} and {return_energies}"
            )
        if not set(tensor_inputs) <= set(allowed := self._callback_tensor_inputs):
            raise ValueError(f"callback_on_step_end_tensor_inputs must be in {allowed}, got {tensor_inputs}")
        if latents is not None:  # the generator checks their shape
            if self.config.proposal == "noise" or not isinstance(latents, torch.Tensor):
                raise ValueError(
                    f"latents must be a torch.Tensor [batch, latent_dim] (with proposal='generator'), got "
                    f"{type(latents).__name__} (with proposal={self.config.proposal!r})"
                )
            _check_finite(latents, "latents")
            batch_size, latents = latents.shape[0], latents.to(device=self._execution_device, dtype=torch.float32)
        batch_size = check_argument("batch_size", batch_size)
        return batch_size, latents, _generators(generator, batch_size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = (self.generator_model if self.generator_model is not None else self.energy_model).config
        return (c.num_channels, c.image_size, c.image_size)

    @property
    def latent_dim(self) -> int | None:  # None for a noise-initialised pipeline without generator
        return self.generator_model.config.latent_dim if self.generator_model is not None else None

    @contextmanager
    def _sampling_state(self, bn_stats: str):
        """Energy/encoder in eval mode (stored spectral-norm vectors, no mutation), generator BN per ``bn_stats``."""
        modules = [m for m in (self.energy_model, self.encoder) if m is not None]
        with ExitStack() as stack:
            stack.callback(lambda modes: [m.train(t) for m, t in zip(modules, modes)], [m.training for m in modules])
            for m in modules:
                m.eval()
            if self.generator_model is not None:
                stack.enter_context(self.generator_model.batch_norm_stats(bn_stats))
            yield

    def _energy(self, x: torch.Tensor) -> torch.Tensor:  # chain states stay float32, the networks see their dtype
        return self.energy_model.energy(x.to(self.energy_model.dtype))

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator_model.generate(z.to(self.generator_model.dtype)).float()

    def _output(self, images, proposals, energies, latents, output_type, return_dict):
        images = self.image_processor.postprocess(images, output_type=output_type)
        proposals = None if proposals is None else self.image_processor.postprocess(proposals, output_type=output_type)
        self.maybe_free_model_hooks()
        output = DualMCMCPipelineOutput(images=images, proposals=proposals, energies=energies, latents=latents)
        return output if return_dict else (images, *(t for t in (proposals, energies) if t is not None))

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        batch_size: int = 1,
        num_inference_steps: int | None = None,
        step_size: float | None = None,
        noise_scale: float | None = None,
        generator=None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        return_proposals: bool = False,
        return_energies: bool = False,
        bn_stats: str | None = None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("sample",),
    ):
        r"""Sample the EBM: proposals ``x0 = G(z)``, then ``num_inference_steps`` Langevin steps on ``E``.

        ``batch_size`` is ignored when ``latents`` (``z``) are given; the sampler settings default to the config's;
        ``generator``: a ``torch.Generator``, a seed or one per sample. ``output_type``: ``"pil"``, ``"np"`` / ``"pt"``
        (``[0, 1]``) or ``"latent"`` (the float32 chain state in model space ``[-1, 1]``, not clamped);
        ``return_dict=False`` gives ``(images,)`` + ``proposals`` if ``return_proposals`` + ``energies`` if
        ``return_energies``. ``callback_on_step_end(pipe, i, i, callback_kwargs)`` runs after Langevin step ``i`` with
        ``callback_kwargs["sample"]``, the float32 chain state; a ``"sample"`` in the dict it returns replaces it.

        Examples:
        """
        # 0. settings (default: the config's) and input checks
        inputs = getattr(callback_on_step_end, "tensor_inputs", callback_on_step_end_tensor_inputs)  # PipelineCallback
        cfg = self.sampler_settings(
            num_inference_steps=num_inference_steps, step_size=step_size, noise_scale=noise_scale, bn_stats=bn_stats
        )
        chain, device = (cfg["num_inference_steps"], cfg["step_size"], cfg["noise_scale"]), self._execution_device
        checked = self.check_inputs(batch_size, latents, generator, return_energies, inputs, output_type, chain[0])
        batch_size, latents, generator = checked

        # 1. chain start: latents z ~ N(0, I); or uniform noise (proposal="noise"), drawn as randn_tensor draws
        if cfg["proposal"] == "noise":
            n, gens = (1, generator) if isinstance(generator, list) else (batch_size, [generator])
            devices = [g.device if g is not None else "cpu" for g in gens]
            u = torch.cat([torch.rand((n, *self.image_shape), generator=g, device=d) for g, d in zip(gens, devices)])
            proposals = (u.to(device) * 2 - 1) * cfg["noise_init_range"]
        elif latents is None:
            shape = (batch_size, self.latent_dim)
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)

        def on_step(i: int, x: torch.Tensor) -> torch.Tensor | None:  # a returned "sample" replaces the chain state
            bar.update()
            outputs = None if callback_on_step_end is None else callback_on_step_end(self, i, i, {k: x for k in inputs})
            if outputs is not None and not isinstance(outputs, dict):
                raise ValueError(f"callback_on_step_end must return a dict, got {type(outputs).__name__}")
            return (outputs or {}).get("sample")

        bar = self.progress_bar(total=chain[0])
        with self._sampling_state(cfg["bn_stats"]), bar, chain_mode(self.energy_model):
            # 2. proposals x0 = G(z)
            if cfg["proposal"] == "generator":
                proposals = self._decode(latents)
            # 3. Langevin revision on E (without energy_model: 0 steps, the samples are the proposals)
            kwargs = dict(generator=generator, return_energies=return_energies, callback=on_step)
            out = energy_langevin(self._energy, proposals, *chain, **kwargs)

        # 4. postprocess
        proposals = proposals if return_proposals else None
        return self._output(out.sample, proposals, out.energies, latents, output_type, return_dict)

    def preprocess(self, images=None, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """``images`` (``VaeImageProcessor`` inputs, uint8 or in ``[0, 1]``) or ``pixel_values`` (``[-1, 1]``), checked."""
        if (images is None) == (pixel_values is None):
            raise ValueError("pass exactly one of `images` (in [0, 1], PIL or uint8) or `pixel_values` (in [-1, 1])")
        name, low = ("images", 0.0) if pixel_values is None else ("pixel_values", -1.0)
        if pixel_values is not None and not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"pixel_values must be a torch.Tensor in [-1, 1], got {type(pixel_values).__name__}")
        loader = VaeImageProcessor(**{**self.image_processor.config, "do_normalize": False})  # keeps uint8 / [0, 1]
        images = list(images) if isinstance(images, tuple) else images
        try:
            x = pixel_values if images is None else loader.preprocess(images)
        except (ValueError, IndexError) as err:
            raise ValueError(f"images must be PIL image(s), numpy arrays or torch tensors (or a list): {err}") from err
        x = x / 255.0 if x.dtype == torch.uint8 else x.float()
        x = x[None] if x.dim() == 3 else x
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{name} have shape {tuple(x.shape)} but this pipeline expects {self.image_shape} "
                "(channels, height, width) per image: resize/convert the images"
            )
        _check_finite(x, name, low, 1.0)
        x = x if pixel_values is not None else self.image_processor.normalize(x)
        return x.clamp(-1, 1).contiguous().to(self._execution_device)  # one memory layout: equal values, equal results

    @torch.no_grad()
    def reconstruct(
        self,
        images=None,
        pixel_values: torch.Tensor | None = None,
        num_latent_steps: int | None = None,
        generator=None,
        sample_posterior: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
        return_proposals: bool = False,
        return_energies: bool = False,
        bn_stats: str | None = None,
    ):
        """``G(z)`` for ``z``: an encoder draw (or mean) revised by ``num_latent_steps`` posterior Langevin steps; proposals:
        ``G(z0)`` (the paper's "Inf" row; "Inf+L" revised), energies: z-chain potentials, latents: the revised ``z``."""
        if self.encoder is None:
            raise ValueError("this pipeline has no encoder: reconstruction/inference needs `encoder`")
        check_argument("output_type", output_type)
        cfg = self.sampler_settings(num_latent_steps=num_latent_steps, bn_stats=bn_stats)
        chain = (cfg["num_latent_steps"], cfg["latent_step_size"], cfg["latent_noise_scale"])
        x, g = self.preprocess(images, pixel_values), self.generator_model
        generator, stds = _generators(generator, x.shape[0]), (g.config.observation_std, g.config.prior_std)
        with self._sampling_state(cfg["bn_stats"]), chain_mode(g):
            # encoder draw z0 ~ q(z|x), Langevin revision of z on the generator posterior, decode
            q = self.encoder(x.to(self.encoder.dtype))
            z0 = (q.sample(generator) if sample_posterior else q.mean).float()
            out = posterior_langevin(
                self._decode, z0, x, *chain, *stds, generator=generator, return_energies=return_energies
            )
            recon, initial = self._decode(out.sample), self._decode(z0) if return_proposals else None
        return self._output(recon, initial, out.energies, out.sample, output_type, return_dict)

    @torch.no_grad()
    def interpolate(
        self,
        start=None,
        end=None,
        num_points: int = 8,
        *,
        start_latents=None,
        end_latents=None,
        num_inference_steps: int | None = None,
        num_latent_steps: int | None = None,
        generator=None,
        output_type: str = "pil",
        return_dict: bool = True,
        bn_stats: str | None = None,
    ):
        """Linear latent interpolation (paper Fig. 4) between two latents or two images (encoder mean + z-chain)."""
        num_points = check_argument("num_points", num_points)
        if [v is not None for v in (start, end, start_latents, end_latents)] not in ([1, 1, 0, 0], [0, 0, 1, 1]):
            raise ValueError("give both endpoints: start and end images, or start_latents and end_latents (not both)")
        if start is not None:  # the encoder's means, revised by the z-chain
            pair = torch.cat([self.preprocess(images=start), self.preprocess(images=end)])
            kwargs = dict(num_latent_steps=num_latent_steps, generator=generator, bn_stats=bn_stats)
            z = self.reconstruct(pixel_values=pair, sample_posterior=False, output_type="latent", **kwargs).latents
        else:
            z = [torch.as_tensor(t).reshape(1, -1).float() for t in (start_latents, end_latents)]
            if (a := z[0].shape[1]) != (b := z[1].shape[1]):
                raise ValueError(f"start_latents and end_latents must have equal sizes, got {a}, {b}")
            z = torch.cat(z)
        if z.shape[0] != 2:
            raise ValueError(f"interpolate takes one start and one end image or latent vector, got {z.shape[0]}")
        w = torch.linspace(0, 1, num_points, device=z.device).unsqueeze(1)
        kwargs = dict(generator=generator, output_type=output_type, return_dict=return_dict, bn_stats=bn_stats)
        return self(latents=(1 - w) * z[:1] + w * z[1:], num_inference_steps=num_inference_steps, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> DualMCMCPipeline:
        """Load a saved pipeline folder or a Hub repository (``save_pretrained``'s or ``hub.export_for_hub``'s layout)
        with this module's classes: no code from the repository runs (``trust_remote_code`` is ignored). Keyword
        arguments: components (``energy_model=...``; ``None`` leaves one out), sampler settings, ``torch_dtype`` (a
        dtype, or a dict per component with a ``"default"``), ``variant`` and ``HUB_ARGUMENTS`` (which download only
        ``model_index.json`` and the components' configs and safetensors)."""
        if kwargs.pop("custom_pipeline", None) is not None:
            raise ValueError("custom_pipeline: use DiffusionPipeline.from_pretrained (this loads DualMCMCPipeline)")
        kwargs.pop("trust_remote_code", None)
        if kwargs.pop("use_safetensors", True) is False:
            raise ValueError("use_safetensors=False: only safetensors weights are loaded (pickles can run code)")
        hub_kwargs = {k: kwargs.pop(k) for k in HUB_ARGUMENTS if k in kwargs}
        dtypes, variant = kwargs.pop("torch_dtype", None), kwargs.pop("variant", None)
        dtypes = dtypes if isinstance(dtypes, dict) else {"default": dtypes}
        passed = {k: kwargs.pop(k) for k in COMPONENTS if k in kwargs}
        settings = list(SAMPLER_DEFAULTS)
        overrides = {k: kwargs.pop(k) for k in settings if k in kwargs}
        if kwargs:
            raise ValueError(
                f"DualMCMCPipeline.from_pretrained got unexpected arguments {sorted(kwargs)}; expected "
                f"components {list(COMPONENTS)}, sampler settings {settings}, torch_dtype, variant or "
                f"{list(HUB_ARGUMENTS)}"
            )
        folder = _pipeline_folder(str(pretrained_model_name_or_path), **hub_kwargs)
        index = cls.load_config(folder)
        models = {}
        for name, model_class in COMPONENTS.items():
            if name in passed or not isinstance(spec := index.get(name), (list, tuple)) or spec[0] is None:
                models[name] = passed.get(name)
            elif spec[-1] != model_class.__name__:
                raise ValueError(f"{folder}/model_index.json names {name} {spec!r}; expected a {model_class.__name__}")
            else:
                model = model_class.from_pretrained(folder, subfolder=name, variant=variant, use_safetensors=True)
                dtype = dtypes.get(name, dtypes.get("default"))
                models[name] = model if dtype is None else model.to(dtype)
        stored = {k: v for k, v in index.items() if k in settings}
        ignored = sorted(k for k in index if not k.startswith("_") and k not in settings and k not in COMPONENTS)
        if ignored:
            logger.warning(f"{folder}/model_index.json: ignoring keys {ignored} that DualMCMCPipeline does not take")
        pipe = cls(**models, **{**stored, **overrides})
        pipe.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
        return pipe

    def push_to_hub(self, repo_id, commit_message=None, private=None, token=None, create_pr=False, **card_kwargs):
        """Upload with this project's model card (``hf_dualmcmc.hub.push_to_hub``, which takes ``card_kwargs`` too)."""
        import importlib  # not `from .hub import`: remote-code loaders would then look for a hub.py next to this file

        kwargs = dict(commit_message=commit_message, private=private, token=token, create_pr=create_pr)
        return importlib.import_module("hf_dualmcmc.hub").push_to_hub(self, repo_id, **kwargs, **card_kwargs)

    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        """``DiffusionPipeline.save_pretrained``; ``push_to_hub=True`` then uploads with :meth:`push_to_hub` (kwargs
        ``repo_id`` (default: the folder name), ``commit_message``, ``private``, ``token``, ``create_pr``)."""
        hub_keys = ("repo_id", "commit_message", "private", "token", "create_pr")
        hub_kwargs = {k: kwargs.pop(k) for k in hub_keys if k in kwargs}
        super().save_pretrained(save_directory, *args, **kwargs)
        written = [os.path.join(save_directory, name) for name in (MODEL_INDEX_FILE, *COMPONENTS)]
        default_modes(*(path for path in written if os.path.exists(path)))  # safetensors writes weights 0600
        if push_to_hub:
            repo_id = hub_kwargs.pop("repo_id", None) or os.path.basename(os.path.abspath(save_directory))
            self.push_to_hub(repo_id, **hub_kwargs)


__all__ = ["SAMPLER_DEFAULTS", "DualMCMCPipeline", "DualMCMCPipelineOutput", "check_argument", "check_sampler_settings"]

"""`from_pretrained` shared by the subject pipelines: built-in names, the published and LAVIS layouts, or ours.

Every source becomes components first (`builtin/`, `conversion/` build no pipeline); the class that owns
`from_pretrained` assembles them (`from_components`). This module holds the package's one dispatch of built-in names.
"""

from __future__ import annotations

import inspect
import os
import pickle

from ..builtin.names import is_builtin_name
from ..utils.errors import BlipdiffError


class SubjectPipelineLoaderMixin:
    """Routes built-in names to `builtin.loader.load_builtin_pipeline` (the class assembles the method's components), the published ``Salesforce/blipdiffusion*``
    layout to `load_published_components` and a LAVIS checkpoint to `lavis_components`; every other folder goes
    through `DiffusionPipeline.from_pretrained`, with failures naming the component at fault.

    Put it before `DiffusionPipeline` in the bases so that ``super()`` reaches diffusers' loader.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load our saved layout, the published diffusers layout of BLIP-Diffusion, a LAVIS checkpoint, or a built-in model.

        The published layout names a library (``blip_diffusion``) that no longer exists; it is read by
        `load_published_components`, which takes ``torch_dtype``, ``revision``, ``cache_dir``,
        ``subject_tokenizer``, ``subject_tokenizer_name_or_path``, ``resize_mode`` and component overrides. A LAVIS
        checkpoint (folder or tarball with ``blip_model/blip_weight.pt``) is read by `lavis_components`, which also
        takes ``tokenizer`` / ``tokenizer_name_or_path`` and ``subject_encoder_config``.

        ``"builtin"`` (or ``"builtin:toy"``) returns the trained toy model shipped in the package, a small model
        of the procedural toy world (`blipdiff_plugins.builtin.toy_model`); ``"builtin:random-tiny"``,
        ``"builtin:random-small"`` and ``"builtin:random-mid"`` return random weights built offline in code, whose
        images are noise (tests, benchmarks, trying the API). Which model a name gives is the class's method's
        (``method_name``: UMM-Diffusion's toy UMM for `UMMDiffusionPipeline`). Only ``dtype`` (or ``torch_dtype``)
        applies to them.
        """
        from ..conversion.lavis import is_lavis_checkpoint, lavis_components
        from ..conversion.published_layout import is_published_layout, load_published_components
        from .saved_layout import check_saved_layout, name_failing_component

        name = str(pretrained_model_name_or_path)
        # diffusers 0.42 names it `dtype` and warns on `torch_dtype`; both are accepted here, one is passed on.
        if "dtype" in kwargs and "torch_dtype" in kwargs:
            raise ValueError("Pass `dtype` or `torch_dtype` (its old name), not both.")
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        if is_builtin_name(name) and not os.path.exists(name):
            from ..builtin.loader import load_builtin_pipeline

            return load_builtin_pipeline(name, pipeline_class=cls, torch_dtype=dtype, argument="`pretrained_model_name_or_path`")
        if is_lavis_checkpoint(pretrained_model_name_or_path):
            return cls.from_components(lavis_components(pretrained_model_name_or_path, torch_dtype=dtype, **kwargs), strict=True)
        if is_published_layout(pretrained_model_name_or_path, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir")):
            components = load_published_components(
                pretrained_model_name_or_path, accepted=cls.init_parameters(), class_name=cls.__name__, torch_dtype=dtype, **kwargs
            )
            return cls(**components)
        check_saved_layout(pretrained_model_name_or_path, components=kwargs)
        if dtype is not None:
            kwargs["dtype"] = dtype
        # The constructor checks what the components must agree on (a `subject_tokenizer=` override included).
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except BlipdiffError:
            raise
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
            raise name_failing_component(pretrained_model_name_or_path, error) from error

    @classmethod
    def from_pipe(cls, pipeline, **kwargs):
        """diffusers' `from_pipe` (this pipeline on ``pipeline``'s modules, shared), for a stock pipeline as the source too.

        A stock Stable Diffusion pipeline has no subject parts: pass them, e.g.
        ``BlipDiffusionPipeline.from_pipe(sd, subject_encoder=..., subject_tokenizer=..., subject_image_processor=...)``
        (a `ValueError` names the missing ones). Unlike diffusers' (which casts to float32 unless given ``dtype``),
        the new pipeline keeps ``pipeline``'s dtype; ``dtype`` (or ``torch_dtype``) sets another. Settings of ours that
        a stock pipeline carried through its own `from_pipe` (``default_prompt_reps``, ...) come back.
        """
        from .stock_conditioning import quiet_cast_notices

        if "dtype" in kwargs and "torch_dtype" in kwargs:
            raise ValueError("Pass `dtype` or `torch_dtype` (its old name), not both.")
        kwargs["dtype"] = kwargs.pop("dtype", kwargs.pop("torch_dtype", None)) or pipeline.dtype
        expected, _ = cls._get_signature_keys(cls)
        # diffusers keeps a source's model only if its exact class is in the target's type hint; a Protocol hint
        # (``subject_encoder: SubjectEncoder``) matches no class, so pass what meets the Protocol explicitly.
        for name, hinted in cls._get_signature_types().items():
            component = pipeline.components.get(name)
            if name in expected and name not in kwargs and component is not None:
                if any(getattr(kind, "_is_protocol", False) and isinstance(component, kind) for kind in hinted):
                    kwargs[name] = component
        missing = [name for name in expected if name not in pipeline.components and name not in kwargs and name not in cls._optional_components]
        if missing:
            raise ValueError(
                f"{cls.__name__}.from_pipe: {type(pipeline).__name__} has no {missing}; pass them, e.g. "
                f"{', '.join(f'{name}=other_pipe.{name}' for name in missing)} from a {cls.__name__} of the same base model."
            )
        modules = [*pipeline.components.values(), *kwargs.values()]
        with quiet_cast_notices(modules, kwargs["dtype"]):
            return super().from_pipe(pipeline, **kwargs)

    @classmethod
    def init_parameters(cls) -> frozenset[str]:
        """The names ``__init__`` takes: its components and settings."""
        return frozenset(inspect.signature(cls.__init__).parameters) - {"self"}

    @classmethod
    def from_components(cls, components: dict, *, strict: bool = False):
        """This class from a builder's components and settings (`builtin/`, `conversion/`).

        Entries ``__init__`` does not take are left out (a BLIP-Diffusion model's ``default_prompt_reps`` for a class
        without it), or refused with ``strict``; a class that takes a ``controlnet`` and got none gets an untrained
        one shaped like the U-Net (`controlnet_from_unet`), as the built-in models always have.
        """
        parameters = cls.init_parameters()
        unknown = sorted(set(components) - parameters)
        if strict and unknown:
            raise TypeError(f"{cls.__name__} takes no {unknown}; it takes {sorted(parameters)}.")
        components = {key: value for key, value in components.items() if key in parameters}
        if "controlnet" in parameters and components.get("controlnet") is None:
            from .control_conditioning import controlnet_from_unet
            from .denoising import vae_scale_factor
            from .stock_conditioning import quiet_cast_notices

            unet = components["unet"]
            with quiet_cast_notices():  # ControlNetModel keeps no module in float32; diffusers 0.42 says so on every cast
                components["controlnet"] = controlnet_from_unet(unet, vae_scale_factor(components["vae"]), seed=0).to(dtype=unet.dtype)
        return cls(**components)

"""`from_pretrained` shared by the BLIP-Diffusion pipelines: the published layout, or ours with clear errors."""

from __future__ import annotations

import os
import pickle

from ..builtin.names import is_builtin_name


class SubjectPipelineLoaderMixin:
    """Routes the published ``Salesforce/blipdiffusion*`` layout to `load_published_pipeline`; every other
    folder goes through `DiffusionPipeline.from_pretrained`, with failures naming the component at fault.

    Put it before `DiffusionPipeline` in the bases so that ``super()`` reaches diffusers' loader.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load our saved layout, or the published diffusers layout of BLIP-Diffusion.

        The published layout names a library (``blip_diffusion``) that no longer exists; it is read by
        `load_published_pipeline`, which takes ``torch_dtype``, ``revision``, ``cache_dir``,
        ``subject_tokenizer``, ``subject_tokenizer_name_or_path``, ``resize_mode`` and component overrides.

        ``"builtin"`` (or ``"builtin:toy"``) returns the trained toy model shipped in the package, a small model
        of the procedural toy world (`blipdiff_plugins.builtin.toy_model`); ``"builtin:random-tiny"``,
        ``"builtin:random-small"`` and ``"builtin:random-mid"`` return random weights built offline in code, whose
        images are noise (tests, benchmarks, trying the API). Only ``dtype`` (or ``torch_dtype``) applies to them.
        """
        from ..conversion.published_layout import check_subject_tokenizer, is_published_layout, load_published_pipeline
        from .saved_layout import check_saved_layout, name_failing_component

        name = str(pretrained_model_name_or_path)
        # diffusers 0.42 names it `dtype` and warns on `torch_dtype`; both are accepted here, one is passed on.
        if "dtype" in kwargs and "torch_dtype" in kwargs:
            raise ValueError("Pass `dtype` or `torch_dtype` (its old name), not both.")
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        if is_builtin_name(name) and not os.path.exists(name):
            from ..builtin.loader import load_builtin_pipeline

            # A system with other components (UMM-Diffusion) names its own builders on its class.
            return load_builtin_pipeline(name, pipeline_class=cls, torch_dtype=dtype,
                                         argument="`pretrained_model_name_or_path`")
        if is_published_layout(pretrained_model_name_or_path, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir")):
            return load_published_pipeline(cls, pretrained_model_name_or_path, torch_dtype=dtype, **kwargs)
        check_saved_layout(pretrained_model_name_or_path, components=kwargs)
        if dtype is not None:
            kwargs["dtype"] = dtype
        try:
            pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
            raise name_failing_component(pretrained_model_name_or_path, error) from error
        # A `subject_tokenizer=` override (or a saved one) must still fit the Q-Former's embeddings.
        if getattr(pipe, "subject_tokenizer", None) is not None:
            check_subject_tokenizer(pipe.subject_tokenizer, pipe.subject_encoder.embeddings.word_embeddings.num_embeddings)
        return pipe

"""`from_pretrained` shared by the BLIP-Diffusion pipelines: the published layout, or ours with clear errors."""

from __future__ import annotations

import os
import pickle


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

        ``"builtin"`` (or ``"builtin:tiny"``, ``"builtin:small"``, ``"builtin:mid"``) returns the built-in
        model with random weights, built offline in code (`blipdiff_plugins.builtin`); only ``torch_dtype``
        applies to it. Its images are noise: it exists to try the API and the tools without a download.
        """
        from ..conversion.published_layout import check_subject_tokenizer, is_published_layout, load_published_pipeline
        from .saved_layout import check_saved_layout, name_failing_component

        name = str(pretrained_model_name_or_path)
        if (name == "builtin" or name.startswith("builtin:")) and not os.path.exists(name):
            from ..builtin.models import build_builtin_pipeline

            pipe = build_builtin_pipeline(name.partition(":")[2] or "small", pipeline_class=cls)
            return pipe.to(dtype=kwargs["torch_dtype"]) if kwargs.get("torch_dtype") is not None else pipe
        if is_published_layout(pretrained_model_name_or_path, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir")):
            return load_published_pipeline(cls, pretrained_model_name_or_path, **kwargs)
        check_saved_layout(pretrained_model_name_or_path, components=kwargs)
        try:
            pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
            raise name_failing_component(pretrained_model_name_or_path, error) from error
        # A `subject_tokenizer=` override (or a saved one) must still fit the Q-Former's embeddings.
        check_subject_tokenizer(pipe.subject_tokenizer, pipe.subject_encoder.embeddings.word_embeddings.num_embeddings)
        return pipe

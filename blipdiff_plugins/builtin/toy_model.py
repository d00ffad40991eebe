"""The trained toy model shipped in the package (``builtin`` / ``builtin:toy``): where it lives and how it loads.

``blipdiff_plugins/builtin/toy/`` holds a saved `BlipDiffusionPipeline` folder made by ``blipdiff toyworld train``
(its model card, ``README.md``, records how). A source checkout from before the weights were added has no such
folder; loading then says so and names the random-weight models that still work.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from ..utils.errors import ModelLoadError

SHIPPED_TOY_MODEL = Path(__file__).resolve().parent / "toy"


def toy_model_folder() -> Path:
    """The folder of the shipped toy pipeline (tests point this function at a toy model they train)."""
    return SHIPPED_TOY_MODEL


def require_toy_model_folder(*, argument: str = "`model`") -> Path:
    """`toy_model_folder`, or `ModelLoadError` naming ``argument`` when it holds no pipeline (a checkout without the weights)."""
    folder = toy_model_folder()
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(
            f"{argument}: the trained toy model ('builtin', 'builtin:toy') is not in this installation ({str(folder)!r} holds "
            "no model_index.json: a source checkout from before its weights were added); use 'builtin:random-small' "
            "(random weights), a pipeline folder or a Hub id."
        )
    return folder


def load_toy_pipeline(*, pipeline_class=None, torch_dtype=None, argument: str = "`model`"):
    """The shipped toy model as ``pipeline_class`` (`BlipDiffusionPipeline` by default), in ``torch_dtype``.

    Another BLIP-Diffusion class gets the loaded components and settings; one that takes a ``controlnet`` gets an
    untrained ControlNet shaped like the toy U-Net (`controlnet_from_unet`), as the random-weight models do.
    """
    import torch

    from ..pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline

    # The shipped weights are stored in float16 (the package's size budget); CPUs compute in float32.
    dtype = torch_dtype if torch_dtype is not None else torch.float32
    pipe = BlipDiffusionPipeline.from_pretrained(require_toy_model_folder(argument=argument), dtype=dtype)
    if pipeline_class is None or pipeline_class is BlipDiffusionPipeline:
        return pipe
    # Not diffusers' `from_pipe`: it rejects components typed by a Protocol (`subject_encoder: SubjectEncoder`).
    parameters = inspect.signature(pipeline_class.__init__).parameters
    components = dict(pipe.components)
    if "controlnet" in parameters:
        from ..pipelines.control_conditioning import controlnet_from_unet
        from ..pipelines.denoising import vae_scale_factor

        components["controlnet"] = controlnet_from_unet(pipe.unet, vae_scale_factor(pipe.vae), seed=0).to(dtype=pipe.unet.dtype)
    settings = {key: value for key, value in pipe.config.items() if key in parameters and key not in components}
    return pipeline_class(**components, **settings)

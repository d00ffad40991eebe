"""The style task: render a subject with the structure of one image and the look of another (ControlNet), writing
``control.png`` (the structure map used) and one PNG with a JSON sidecar per image."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InvalidArgumentError, ModelArgumentError
from .generate import slug, subject_image_files
from .models import ModelSettings, load_model
from .results import ResultWriter, versions
from .sampling import ImageSamplingRequest


@contextlib.contextmanager
def quiet_third_party_warnings():
    """Hide the import-time warnings of the ControlNet detectors' dependencies (timm, mediapipe, torch.jit
    deprecations inside controlnet_aux): nothing a user can act on."""
    with warnings.catch_warnings():
        for module in ("timm", "mediapipe", "controlnet_aux", "torch.jit", "google.protobuf"):
            warnings.filterwarnings("ignore", module=module.replace(".", r"\.") + r"(\.|$)")
        warnings.filterwarnings("ignore", message=r".*(timm|mediapipe|torch\.jit|TorchScript).*")
        yield


@dataclasses.dataclass
class StyleRequest(ImageSamplingRequest):
    """One style-transfer run; field names are the task's argument names.

    Args:
        style_image (`list`): files, folders or PIL images giving the appearance.
        style_subject (`str`): their category word.
        structure_image: the image whose structure is kept (a file or a PIL image).
        target_subject (`str`): the category word rendered.
        prompt (`list[str]`): scene prompts.
        preprocessor (`str`, defaults to ``"canny"``), preprocessor_param (`dict`), preprocessor_weights (`str`): the
            structure extractor (`PREPROCESSORS`), its parameters and detector weights.
        conditioning_scale (`float`, defaults to 1.0): the ControlNet's residual scale.
        negative_prompt, num_images, seed, steps, guidance, height, width: sampling settings (`ImageSamplingRequest`).
    """

    style_image: Sequence[Any]
    style_subject: str
    structure_image: Any
    target_subject: str
    prompt: Sequence[str] = ("",)
    preprocessor: str = "canny"
    preprocessor_param: dict = dataclasses.field(default_factory=dict)
    preprocessor_weights: str | None = None
    conditioning_scale: float = 1.0


def output_stems(request: StyleRequest) -> list[str]:
    return [f"{index:03d}-{slug(request.target_subject + ' ' + prompt)}" for index, prompt in enumerate(p for p in request.prompt for _ in range(request.num_images))]


def output_files(request: StyleRequest) -> list[str]:
    return ["control.png"] + [stem + suffix for stem in output_stems(request) for suffix in (".png", ".json")]


def check_request(request: StyleRequest) -> StyleRequest:
    """Everything about ``request`` that can be checked before the model loads."""
    from ..registry import PREPROCESSORS

    changes: dict[str, Any] = {
        "style_image": subject_image_files("style_image", request.style_image),
        "structure_image": subject_image_files("structure_image", [request.structure_image])[0],
    }
    for name, example in (("style_subject", "flower"), ("target_subject", "teapot")):
        value = getattr(request, name)
        if value is None or not str(value).strip():
            raise InvalidArgumentError(f"`{name}` is empty ({value!r}); pass the category word, e.g. `{name} {example}`.", argument=name)
        changes[name] = str(value).strip()
    try:
        PREPROCESSORS.entry(request.preprocessor)
    except KeyError as error:
        raise InvalidArgumentError(f"`preprocessor`: {error.args[0] if error.args else request.preprocessor}", argument="preprocessor") from None
    return dataclasses.replace(request, **changes)


def load_style_model(settings: ModelSettings, *, controlnet: str | None = None, notify: Callable[[str], None] | None = None):
    """The ControlNet pipeline of ``settings.model`` (a built-in model gets an untrained ControlNet shaped like its
    U-Net), with the ControlNet ``controlnet`` (folder or Hub id) in place of its own when given."""
    import torch

    from ..pipelines.pipeline_blip_diffusion_controlnet import BlipDiffusionControlNetPipeline

    with quiet_third_party_warnings():
        pipe = load_model(settings, BlipDiffusionControlNetPipeline, notify=notify)
        if controlnet:
            from diffusers import ControlNetModel

            try:
                net = ControlNetModel.from_pretrained(controlnet, torch_dtype=getattr(torch, settings.dtype))
            except OSError as error:
                raise ModelArgumentError(f"`controlnet`: could not load {controlnet!r} ({str(error).strip().splitlines()[0]}).",
                                         argument="controlnet") from error
            pipe.register_modules(controlnet=net.to(pipe.device))
    return pipe


def controlnet_pipeline(pipe, controlnet):
    """A `BlipDiffusionControlNetPipeline` on the modules of the loaded BLIP-Diffusion pipeline ``pipe`` (shared, not
    copied) with the `ControlNetModel` ``controlnet`` beside them."""
    from ..pipelines.pipeline_blip_diffusion_controlnet import BlipDiffusionControlNetPipeline

    return BlipDiffusionControlNetPipeline(**pipe.components, controlnet=controlnet)


def style(pipe, request: StyleRequest, *, output: str | Path | None = None, record: Callable[[], dict] | None = None):
    """Run ``request`` with ``pipe``; with ``output`` write ``control.png`` and each image with its sidecar
    (``record()``: what the sidecars record besides the image's own values). Returns the result and the files."""
    import torch

    from ..recipes.style_transfer import style_transfer

    request = check_request(request)
    total = len(request.prompt) * request.num_images
    generators = [torch.Generator(device="cpu").manual_seed(request.seed + index) for index in range(total)]
    with quiet_third_party_warnings():
        result = style_transfer(
            pipe,
            style_image=request.style_image if len(request.style_image) > 1 else request.style_image[0],
            style_subject=request.style_subject,
            structure_image=request.structure_image,
            target_subject=request.target_subject,
            prompt=list(request.prompt),
            preprocessor=request.preprocessor,
            preprocessor_params=request.preprocessor_param or None,
            preprocessor_weights=request.preprocessor_weights,
            negative_prompt=request.negative_prompt,
            guidance_scale=request.guidance,
            num_inference_steps=request.steps,
            height=request.height,
            width=request.width,
            num_images_per_prompt=request.num_images,
            controlnet_conditioning_scale=request.conditioning_scale,
            generator=generators,
        )
    files: list[Path] = []
    if output is None:
        return result, files
    extra = record() if record is not None else {"settings": request}
    with ResultWriter(output) as writer:
        files += writer.write(None, None, {"control.png": result.control_image})
        for index, (image, stem) in enumerate(zip(result.images, output_stems(request))):
            sidecar = {
                "image": f"{stem}.png",
                "control_image": "control.png",
                "prompt": request.prompt[index // request.num_images],
                "image_index": index,
                "seed": request.seed + index,
                "device": str(pipe._execution_device),
                "versions": versions(),
                **extra,
            }
            files += writer.write(f"{stem}.json", sidecar, {f"{stem}.png": image})
    return result, files

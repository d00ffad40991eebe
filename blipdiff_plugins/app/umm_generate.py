"""The Generate tab's UMM-Diffusion method: a UMM pipeline folder served beside the shared BLIP-Diffusion model.

The UMM pipeline loads on its first request (most sessions never use it). Each prompt line must name the subject
word, where the pseudo-word goes; a line that does not is refused, as the command line refuses it.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch

from .checks import check_float, check_int
from .results import GenerateResult, write_images_with_sidecars

UMM_METHOD = "UMM-Diffusion"


def load_umm_pipeline(model: str, *, device: str, dtype: torch.dtype):
    """A built-in name (``builtin:random-<size>``: random weights, offline) or a UMM pipeline folder."""
    from ..builtin.loader import load_builtin_pipeline
    from ..pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline

    if model == "builtin" or model.startswith("builtin:"):
        pipe = load_builtin_pipeline(model, pipeline_class=UMMDiffusionPipeline, torch_dtype=dtype)
    else:
        try:
            pipe = UMMDiffusionPipeline.from_pretrained(model, dtype=dtype)
        except (OSError, ValueError) as error:
            raise ValueError(f"UMM model {model!r} could not be loaded ({' '.join(str(error).split())[:200]}); pass a UMM pipeline folder.") from error
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def umm_prompts(lines: Sequence[str], subject: str) -> list[str]:
    """The lines, each of which names the subject word (whole word, any case); a line that does not is refused."""
    pattern = re.compile(r"(?<!\w)" + re.escape(subject) + r"(?!\w)", re.IGNORECASE)
    for line in lines:
        if not pattern.search(line):
            raise ValueError(
                f"Prompts: {line!r} does not name the Subject word {subject!r}; with {UMM_METHOD} the subject image takes "
                f"the subject word's place, e.g. 'a {subject} {line}'."
            )
    return list(lines)


def _scheduler(pipe, name: str | None):
    default = pipe.scheduler
    if not name or name == "default":
        return default
    classes = {cls.__name__: cls for cls in default.compatibles}
    if name not in classes:
        raise ValueError(f"Scheduler {name!r} does not fit the UMM model; choose one of default, {', '.join(sorted(classes))}.")
    return classes[name].from_config(default.config)


def generate_umm(service, *, subject_images, subject, target_subject, subject_model, prompt_list: list[str], negative_prompt: str,
                 steps: int, guidance: float, fusion_weight, seed: int, height: int, width: int, num_images: int,
                 scheduler: str | None) -> GenerateResult:
    """One Generate request with UMM-Diffusion on ``service``'s UMM model (inputs other than these already checked)."""
    if service.umm_model is None:
        raise ValueError(f"{UMM_METHOD} needs a UMM pipeline: restart with `blipdiff ui --umm-model FOLDER` (a 'blipdiff train-umm' output).")
    if subject_model not in (None, "", "(none)"):
        raise ValueError("Fine-tuned subject models are BLIP-Diffusion's; with UMM-Diffusion choose (none) and upload subject images.")
    if (target_subject or "").strip():
        raise ValueError("Target subject is BLIP-Diffusion's; with UMM-Diffusion leave it empty (the prompt names the subject word).")
    fusion_weight = check_float("Fusion weight", fusion_weight, 0.0, 1.0)
    subject = (subject or "").strip() if isinstance(subject, str) or subject is None else subject
    if not isinstance(subject, str) or not subject:
        raise ValueError("Subject word is empty: type the subject's category word, e.g. 'dog'.")
    images = service.load_images(subject_images, "Subject images")
    prompts = umm_prompts(prompt_list, subject)
    with service.lock:
        if service.umm_pipe is None:
            service.umm_pipe = load_umm_pipeline(service.umm_model, device=service.device, dtype=service.dtype)
        pipe = service.umm_pipe
        factor = int(pipe.vae_scale_factor)
        for name, value in (("Height", height), ("Width", width)):
            if check_int(name, value, factor, service.limits.max_side) % factor:
                raise ValueError(f"{name} must be a multiple of {factor} (the UMM model's VAE factor), got {value}.")
        embeds, cached = service.encode_subject(images, subject, pipe=pipe)
        generators = [torch.Generator("cpu").manual_seed(seed + index) for index in range(len(prompts) * num_images)]
        default_scheduler = pipe.scheduler
        pipe.scheduler = _scheduler(pipe, scheduler)
        try:
            output = pipe(
                prompt=prompts, subject_embeds=embeds, subject_word=subject, fusion_weight=fusion_weight,
                negative_prompt=negative_prompt or "", guidance_scale=guidance, num_inference_steps=steps, height=height,
                width=width, num_images_per_prompt=num_images, generator=generators,
            )
        finally:
            pipe.scheduler = default_scheduler
    encoding = "cached" if cached else "computed"
    settings = {
        "method": UMM_METHOD, "model": service.umm_model, "subject": subject, "prompts": prompts,
        "negative_prompt": negative_prompt or "", "fusion_weight": fusion_weight, "steps": steps, "guidance": guidance, "seed": seed,
        "height": height, "width": width, "num_images": num_images, "scheduler": scheduler or "default",
    }
    files = write_images_with_sidecars(service._new_run_dir("generate"), output.images, settings, encoding)
    return GenerateResult(list(output.images), files, encoding)

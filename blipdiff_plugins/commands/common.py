"""Helpers shared by the CLI commands: model loading, devices, schedulers (files are written by `utils.atomic`)."""

from __future__ import annotations

import sys

from ..utils.atomic import write_atomically, write_json, write_png  # noqa: F401  (used by the commands)

SCHEDULERS = {
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}
DTYPES = ("float32", "float16", "bfloat16")


def add_model_arguments(parser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="builtin",
        help="'builtin' (random weights, offline; 'builtin:tiny|small|mid'), a folder, or a Hub id such as "
        "Salesforce/blipdiffusion (default: builtin)",
    )
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default: auto)")
    group.add_argument("--dtype", default="float32", choices=DTYPES, help="weights dtype (default: float32)")
    group.add_argument("--scheduler", default=None, choices=sorted(SCHEDULERS), help="replace the model's scheduler")
    group.add_argument("--subject-tokenizer", default=None, help="Q-Former BERT tokenizer for the published layout")


def add_generation_arguments(parser, *, steps: int = 25, unit: str = "image") -> None:
    """The sampling and output options every image-making command shares."""
    parser.add_argument("--negative-prompt", default="", help="text to steer away from")
    parser.add_argument("--num-images", type=int, default=1, help=f"{unit}s per prompt")
    parser.add_argument("--seed", type=int, default=0, help=f"seed of the first {unit}; {unit} i uses seed + i")
    parser.add_argument("--steps", type=int, default=steps, help="denoising steps")
    parser.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--height", type=int, default=None, help="image height (default: the model's)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: the model's)")
    parser.add_argument("--output", default="outputs", help="output folder")


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"`--device`: {name!r} is not a device ({error}); use cpu, cuda, cuda:N or mps.") from error
    return name


def load_pipeline(args, pipeline_class=None):
    """The pipeline named by ``--model``, on ``--device`` in ``--dtype``, with ``--scheduler``."""
    import diffusers
    import torch

    from ..builtin.models import BUILTIN_NOTICE, build_builtin_pipeline

    if pipeline_class is None:
        from ..pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline as pipeline_class
    dtype = getattr(torch, args.dtype)
    device = resolve_device(args.device)
    if device == "cpu" and dtype == torch.float16:
        raise ValueError("`--dtype float16` needs a GPU; on CPU use float32 or bfloat16.")
    if args.model == "builtin" or args.model.startswith("builtin:"):
        size = args.model.partition(":")[2] or "small"
        print(f"Using the {BUILTIN_NOTICE}.", file=sys.stderr)
        pipe = build_builtin_pipeline(size, pipeline_class=pipeline_class)
        if dtype != torch.float32:
            pipe = pipe.to(dtype=dtype)
    else:
        kwargs = {"torch_dtype": dtype}
        if args.subject_tokenizer:
            from transformers import BertTokenizer

            kwargs["subject_tokenizer"] = BertTokenizer.from_pretrained(args.subject_tokenizer)
        pipe = pipeline_class.from_pretrained(args.model, **kwargs)
    if args.scheduler:
        pipe.scheduler = getattr(diffusers, SCHEDULERS[args.scheduler]).from_config(pipe.scheduler.config)
    return pipe.to(device)


def versions() -> dict:
    import importlib.metadata as metadata

    return {name: metadata.version(name) for name in ("blipdiff_plugins", "torch", "diffusers", "transformers") if _installed(name)}


def _installed(name: str) -> bool:
    import importlib.metadata as metadata

    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False

"""The generate task: images of a subject in the scenes of some prompts, for any registered method.

Generic over methods (`blipdiff_plugins.methods`): the method's pipeline class loads the model, the pipeline takes the
subject's embeddings (its `encode_subject` of the subject images, kept between runs by `subject_cache.py`) with the
subject word under the method's ``subject_word_argument``, and each of its `MethodOption`s is passed by name. Errors are `ArgumentError`s naming the fields of `GenerateRequest`; notices
(an unknown subject word, a subject model on another base) go to ``notify`` and into the result.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..adapters.region_scope import REGION_SCOPES
from .errors import InvalidArgumentError, OutputArgumentError
from .generate_subjects import SubjectEntry, check_subject_entries, pipeline_subjects, recorded_subjects, subject_model_folders
from .models import DEFAULT_MODEL, ModelSettings, check_model_settings, load_model
from .results import ResultWriter, versions
from .sampling import ImageSamplingRequest
from .subject_cache import SUBJECT_EMBEDDINGS, SubjectEmbeddingCache
from .subject_words import unknown_word_notice

NOTE = "generate again with the same settings (all prompts, seed, num_images) to reproduce this image exactly"


@dataclasses.dataclass
class GenerateRequest(ImageSamplingRequest):
    """What to generate; field names are the task's argument names (the CLI's flags with dashes).

    Args:
        prompt (`list[str]`): one or more prompts.
        subject_image (`list`, *optional*): image files, folders of images or PIL images, all of one subject.
        subject (`str`, *optional*): the subject's category word (required with ``subject_image``).
        subject_model (`str`, *optional*): a fine-tuned subject model folder, instead of ``subject_image``.
        target_subject (`str`, *optional*): the category word rendered (default: ``subject``).
        method (`str`, defaults to ``"blip_diffusion"``): a `METHODS` name or alias.
        options (`dict`): the method's own settings (`MethodOption` names -> values; missing: their defaults).
        negative_prompt, num_images, seed, steps, guidance, height, width: sampling settings (`ImageSamplingRequest`);
            image ``i`` uses seed ``seed + i``.
        subjects (`list[SubjectEntry]`, *optional*): several subjects in one image instead of ``subject_image`` /
            ``subject`` / ``subject_model``: each a word named in every prompt and its images (or one subject-model folder).
        regions (`dict`, *optional*): with ``subjects``, a subject's word -> its box ``(left, top, right, bottom)`` in
            output pixels.
        region_scope (`str`, *optional*): with ``regions``, which keys a region restricts (`adapters.region_scope`:
            subject, phrase, isolated); the pipeline's default (subject) when `None`.
        region_self_attention (`bool`, defaults to `False`): with ``regions``, also keep the regions' cells apart in the
            U-Net's self-attention (`adapters.region_self_attention`).
    """

    prompt: Sequence[str]
    subject_image: Sequence[Any] | None = None
    subject: str | None = None
    subject_model: str | None = None
    target_subject: str | None = None
    method: str = "blip_diffusion"
    options: dict = dataclasses.field(default_factory=dict)
    subjects: Sequence[SubjectEntry] | None = None
    regions: Mapping[str, Sequence[float]] | None = None
    region_scope: str | None = None
    region_self_attention: bool = False


@dataclasses.dataclass
class GenerateResult:
    """The images, the files written (each PNG and its sidecar) and the notices given on the way."""

    images: list
    files: list[Path]
    notices: list[str]
    settings: dict


def slug(text: str, limit: int = 40) -> str:
    """A safe, bounded file-name part: lower-case letters, digits and dashes only (never a path)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "image"


def output_stems(prompts: Sequence[str], num_images: int) -> list[tuple[str, str]]:
    """``(prompt, stem)`` of every image, in order: ``NNN-<prompt>``."""
    return [(prompt, f"{index:03d}-{slug(prompt)}") for index, prompt in enumerate(p for p in prompts for _ in range(num_images))]


def output_files(request: GenerateRequest) -> list[str]:
    """Every file name a run of ``request`` writes (checked against the output folder before loading)."""
    return [stem + suffix for _, stem in output_stems(request.prompt, request.num_images) for suffix in (".png", ".json")]


def get_method(name: str):
    """The registered method ``name`` (or alias); an unknown one raises naming ``method``."""
    from ..methods import get_method as lookup

    try:
        return lookup(name)
    except KeyError as error:
        raise InvalidArgumentError(f"`method`: {error.args[0] if error.args else name}", argument="method") from None


def _word(value: str | None, argument: str, example: str = "dog") -> str:
    if value is None or not str(value).strip():
        raise InvalidArgumentError(f"`{argument}` is empty ({value!r}); pass the category word, e.g. `{argument} {example}`.", argument=argument)
    return str(value).strip()


def recorded_base_model(subject_model: str) -> str | None:
    """The base model a subject model folder records (``base_model`` of its subject_model.json), if readable."""
    from ..loaders.subject_model_format import CONFIG_FILE

    try:
        return json.loads((Path(subject_model) / CONFIG_FILE).read_text(encoding="utf-8")).get("base_model") or None
    except (OSError, ValueError, AttributeError):
        return None  # load_subject reports what is wrong with the folder


def resolve_model(model: str | None, subject_model: str | None, notify: Callable[[str], None]) -> str:
    """``model``, or the base a ``subject_model`` records (the model it was trained on), or the built-in model.
    A given ``model`` other than the recorded base is said before anything loads."""
    base = recorded_base_model(subject_model) if subject_model else None
    if model is None:
        return base or DEFAULT_MODEL
    if base and base != model:
        notify(
            f"warning: `subject_model` {subject_model!r} was trained on {base!r}, not on `model` {model!r}; a different base may "
            f"refuse it or change its images (leave out `model` to use {base!r})."
        )
    return model


def check_request(request: GenerateRequest, method) -> GenerateRequest:
    """Everything about ``request`` that can be checked before the model loads; returns it with words stripped."""
    changes: dict[str, Any] = {}
    if not request.prompt or any(not isinstance(p, str) or not p.strip() for p in request.prompt):
        raise InvalidArgumentError(f"`prompt` {list(request.prompt)!r} holds an empty prompt; pass text such as 'on a beach'.", argument="prompt")
    if request.regions and request.subjects is None:
        raise InvalidArgumentError("`regions` places the subjects of `subjects`; pass `subjects` too.", argument="regions")
    if request.region_scope is not None:
        if request.region_scope not in REGION_SCOPES:
            raise InvalidArgumentError(f"`region_scope` must be one of {', '.join(REGION_SCOPES)}, got {request.region_scope!r}.", argument="region_scope")
        if not request.regions:
            raise InvalidArgumentError("`region_scope` says what `regions` restrict; pass `regions` too.", argument="region_scope")
    if not isinstance(request.region_self_attention, bool):
        raise InvalidArgumentError(f"`region_self_attention` must be True or False, got {request.region_self_attention!r}.", argument="region_self_attention")
    if request.region_self_attention and not request.regions:
        raise InvalidArgumentError("`region_self_attention` keeps `regions` apart; pass `regions` too.", argument="region_self_attention")
    if request.subjects is not None:
        changes.update(check_subject_entries(request, method, subject_image_files))
    elif request.subject_model:
        if request.subject_image:
            raise InvalidArgumentError("`subject_model` and `subject_image` exclude each other; pass one of them.", argument="subject_model")
        if "finetune" not in method.tasks:
            raise InvalidArgumentError(
                f"`subject_model` is a fine-tuned subject model, which {method.title} does not take; pass `subject_image` instead.",
                argument="subject_model",
            )
    elif not request.subject_image:
        raise InvalidArgumentError(
            "Pass `subject_image` with `subject` (e.g. `subject_image photos/` `subject dog`), or `subject_model DIR`.", argument="subject_image"
        )
    else:
        changes["subject_image"] = subject_image_files("subject_image", request.subject_image)
        changes["subject"] = _word(request.subject, "subject")
    if request.target_subject is not None:
        changes["target_subject"] = _word(request.target_subject, "target_subject")
        if method.prompt_names_subject:
            raise InvalidArgumentError(
                f"`target_subject` is not used by {method.title}: the prompt itself names `subject`.", argument="target_subject"
            )
    request = dataclasses.replace(request, **changes)
    if method.prompt_names_subject and request.subject:
        pattern = re.compile(r"(?<!\w)" + re.escape(request.subject) + r"(?!\w)", re.IGNORECASE)
        for prompt in request.prompt:
            if not pattern.search(prompt):
                raise InvalidArgumentError(
                    f"`prompt` {prompt!r} does not name `subject` {request.subject!r}; with {method.title} the subject image takes "
                    f"the subject word's place, e.g. 'a {request.subject} on a beach'.",
                    argument="prompt",
                )
    known = {option.name: option for option in method.options}
    unknown = sorted(set(request.options) - set(known))
    if unknown:
        raise InvalidArgumentError(f"`{unknown[0]}` is not a setting of {method.title}; its settings: {', '.join(known) or 'none'}.", argument=unknown[0])
    for name, value in request.options.items():
        option = known[name]
        if value is None:
            continue
        if (option.minimum is not None and value < option.minimum) or (option.maximum is not None and value > option.maximum):
            bounds = f"[{option.minimum if option.minimum is not None else '-inf'}, {option.maximum if option.maximum is not None else 'inf'}]"
            raise InvalidArgumentError(f"`{name}` must lie in {bounds}, got {value!r}.", argument=name)
    return request


def subject_image_files(argument: str, items: Sequence[Any], *, check_readable: bool = True) -> list:
    """The images of ``items``: PIL images as given, files as given, folders expanded; with ``check_readable`` each
    file is read once here (before any model loads) so a bad file fails in seconds. Errors name ``argument``."""
    from ..utils.images import IMAGE_SUFFIXES, ImageTooLargeError, open_image

    files: list = []
    for item in items:
        if not isinstance(item, (str, Path)):
            files.append(item)  # an image object (the web app's uploads)
            continue
        candidate = Path(item)
        if candidate.is_dir():
            found = sorted(p for p in candidate.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InvalidArgumentError(f"`{argument}`: folder {str(item)!r} holds no image file ({', '.join(IMAGE_SUFFIXES)}).", argument=argument)
            files += [str(p) for p in found]
        elif candidate.is_file():
            files.append(str(candidate))
        else:
            raise InvalidArgumentError(f"`{argument}`: no file or folder at {str(item)!r}; pass image files and/or folders of images.", argument=argument)
    for file in files if check_readable else ():
        if isinstance(file, str):
            try:
                open_image(file, argument=argument)
            except ImageTooLargeError as error:  # its own message names the size and the pixel limit
                raise InvalidArgumentError(str(error), argument=argument) from error
            except (ValueError, OSError) as error:
                raise InvalidArgumentError(f"`{argument}`: could not read {file!r} as an image; pass PNG/JPEG/WebP files.", argument=argument) from error
    return files


def check_output_folder(output: str | Path, names: Sequence[str], *, overwrite: bool) -> Path:
    """``output`` is (or can become) a folder and holds none of ``names`` unless ``overwrite``; errors name ``output``."""
    out_dir = Path(output)
    for folder in (out_dir, *out_dir.parents):
        if folder.exists() and not folder.is_dir():
            raise OutputArgumentError(f"`output`: {str(folder)!r} is a file, not a folder; choose another `output`.", argument="output")
    if out_dir.is_dir() and not overwrite:
        existing = [name for name in names if (out_dir / name).exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise OutputArgumentError(
                f"`output`: {str(out_dir)!r} already holds {existing[0]!r}{more} from an earlier run; pass "
                "`overwrite` to replace them, or choose another `output` folder.",
                argument="output",
            )
    return out_dir


def load_generate_model(request: GenerateRequest, settings: ModelSettings, *, notify: Callable[[str], None]):
    """The method's pipeline for ``request`` (``settings.model`` None: the subject model's base or the built-in one)."""
    method = get_method(request.method)
    model = resolve_model(settings.model, request.subject_model or next(iter(subject_model_folders(request.subjects)), None), notify)
    settings = dataclasses.replace(settings, model=model)
    check_model_settings(settings)
    return load_model(settings, method.pipeline_class(), title=method.title, notify=notify), settings


def generate(
    pipe,
    request: GenerateRequest,
    *,
    output: str | Path | None = None,
    record: Callable[[dict], dict] | None = None,
    notify: Callable[[str], None] | None = None,
    subject_cache: SubjectEmbeddingCache = SUBJECT_EMBEDDINGS,
    overwrite: bool = False,
) -> GenerateResult:
    """Generate the images of ``request`` with ``pipe`` (a loaded pipeline of its method) and, with ``output``, write
    each as ``NNN-<prompt>.png`` with a ``.json`` sidecar.

    Args:
        pipe: the method's pipeline (`load_generate_model`).
        request (`GenerateRequest`): checked by `check_request` first.
        output (`str` or `Path`, *optional*): the folder to write into; files of an earlier run there are refused before
            anything runs, unless ``overwrite``.
        record (`Callable[[dict], dict]`, *optional*): given the run's settings (the request's fields, the method's
            options resolved), what the sidecars record besides the image's own values (the CLI: the ``settings`` as
            typed and the ``command``); default: ``{"settings": settings}``.
        notify (`Callable[[str], None]`, *optional*): receives warnings about the input (an unknown subject word).
        subject_cache (`SubjectEmbeddingCache`, defaults to the shared `SUBJECT_EMBEDDINGS`): where the subject images'
            embeddings are kept between runs.
        overwrite (`bool`, defaults to `False`): replace the files of an earlier run in ``output``.
    """
    import torch

    notices: list[str] = []

    def say(line: str) -> None:
        notices.append(line)
        if notify is not None:
            notify(line)

    method = get_method(request.method)
    request = check_request(request, method)
    if output is not None:
        check_output_folder(output, output_files(request), overwrite=overwrite)
    kwargs: dict[str, Any] = {}
    if request.subjects is not None:
        subject = None
        for entry in request.subjects:
            notice = unknown_word_notice(pipe, entry.word, argument="subjects")
            if notice:
                say(notice)
        height, width = pipe.default_size(request.height, request.width)
        kwargs["subjects"] = pipeline_subjects(pipe, request, height, width)
        if request.region_scope is not None:
            kwargs["region_scope"] = request.region_scope
        if request.region_self_attention:
            kwargs["region_self_attention"] = True
    elif request.subject_model:
        loaded = pipe.load_subject(request.subject_model)  # the loaded subject stands in for subject images
        subject = request.subject or loaded.subject
    else:
        subject = request.subject
        notice = unknown_word_notice(pipe, subject, argument="subject")
        if notice:
            say(notice)
        # Encoded once per images, word, model and method (`subject_cache.py`): a repeated request skips the encoder.
        subject_embeds = subject_cache.encode(pipe, request.subject_image, subject, method=method.name)
        kwargs.update(subject_embeds=subject_embeds, **{method.subject_word_argument: subject})
        if not method.prompt_names_subject:
            kwargs["target_subject"] = subject  # the word the template renders (with embeddings it is not implied)
    if request.target_subject:
        notice = unknown_word_notice(pipe, request.target_subject, argument="target_subject")
        if notice:
            say(notice)
        kwargs["target_subject"] = request.target_subject
    options = {}
    for option in method.options:
        value = request.options.get(option.name, option.default)
        resolve = getattr(pipe, f"resolve_{option.name}", None)  # a model-dependent default (prompt_reps)
        options[option.name] = resolve(value) if resolve is not None else value
    kwargs.update({name: value for name, value in options.items() if value is not None})
    total = len(request.prompt) * request.num_images
    generators = [torch.Generator(device="cpu").manual_seed(request.seed + index) for index in range(total)]
    images = pipe(
        prompt=list(request.prompt),
        negative_prompt=request.negative_prompt,
        guidance_scale=request.guidance,
        num_inference_steps=request.steps,
        height=request.height,
        width=request.width,
        num_images_per_prompt=request.num_images,
        generator=generators,
        **kwargs,
    ).images
    settings = {field.name: getattr(request, field.name) for field in dataclasses.fields(request) if field.name not in ("options", "subject_image", "subjects", "regions", "region_scope", "region_self_attention")}
    settings.update(subject=subject, subject_image=[item if isinstance(item, str) else "<image>" for item in request.subject_image or []] or None)
    if request.subjects is not None:
        settings.update(recorded_subjects(request))
    if request.region_scope is not None:  # recorded only when given: sidecars without regions stay as they were
        settings["region_scope"] = request.region_scope
    if request.region_self_attention:  # likewise only when on
        settings["region_self_attention"] = True
    settings.update(options)
    files: list[Path] = []
    if output is not None:
        device = str(pipe._execution_device)
        extra = record(settings) if record is not None else {"settings": settings}
        with ResultWriter(output) as writer:
            for index, (image, (prompt, stem)) in enumerate(zip(images, output_stems(request.prompt, request.num_images))):
                sidecar = {"image": f"{stem}.png", "prompt": prompt, "image_index": index, "seed": request.seed + index,
                           "device": device, "versions": versions(), "note": NOTE, **extra}
                files += writer.write(f"{stem}.json", sidecar, {f"{stem}.png": image})
    return GenerateResult(images=list(images), files=files, notices=notices, settings=settings)


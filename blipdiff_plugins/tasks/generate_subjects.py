"""Several subjects in one image for the generate task: the request's ``subjects`` and ``regions``, checked and turned
into the pipeline's `Subject`s.

Each entry is a word and its images (files, folders, PIL images) or one fine-tuned subject-model folder (a folder
holding ``subject_model.json``); ``regions`` maps a subject's word to its box ``(left, top, right, bottom)`` in output
pixels. Errors name ``subjects`` / ``regions`` (the CLI's ``--subjects`` / ``--regions``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class SubjectEntry:
    """One subject of a several-subject request.

    Args:
        word (`str`): its word, named in every prompt (``"dog"``).
        image (`list`): image files, folders of images or PIL images of it, or one fine-tuned subject-model folder.
    """

    word: str
    image: Sequence[Any]


def is_subject_model_folder(items: Sequence[Any]) -> bool:
    """Whether ``items`` is one folder written by `SubjectModel.save_pretrained` (it holds ``subject_model.json``)."""
    from ..loaders.subject_model_format import CONFIG_FILE

    return len(items) == 1 and isinstance(items[0], (str, Path)) and (Path(items[0]) / CONFIG_FILE).is_file()


def subject_model_folders(subjects: Sequence[SubjectEntry] | None) -> list[str]:
    """The fine-tuned subject-model folders among ``subjects``, in order."""
    return [str(entry.image[0]) for entry in subjects or () if is_subject_model_folder(list(entry.image))]


def check_box(word: str, box) -> tuple[float, float, float, float]:
    """Four finite numbers ``left < right``, ``top < bottom``, none negative; errors name ``regions``."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        raise InvalidArgumentError(f"`regions` {word}: a box is four numbers LEFT,TOP,RIGHT,BOTTOM in output pixels, e.g. 0,0,256,512; got {box!r}.", argument="regions")
    left, top, right, bottom = box
    if not (0 <= left < right and 0 <= top < bottom):
        raise InvalidArgumentError(f"`regions` {word}={box_text(box)} needs 0 <= LEFT < RIGHT and 0 <= TOP < BOTTOM (LEFT,TOP,RIGHT,BOTTOM in output pixels).", argument="regions")
    return (left, top, right, bottom)


def box_text(box) -> str:
    """A box as the user writes it: ``0,0,256,512``."""
    return ",".join(f"{value:g}" for value in box)


def check_box_inside(word: str, box, height: int, width: int) -> None:
    """``box`` lies inside the ``width x height`` output; errors name ``regions``, ``height`` and ``width``."""
    left, top, right, bottom = box
    if right > width or bottom > height:
        raise InvalidArgumentError(
            f"`regions` {word}={box_text(box)} reaches outside the {width}x{height} output; keep RIGHT <= {width} and BOTTOM <= {height} "
            "(output pixels; `height` and `width` set the output size).",
            argument="regions",
        )


def check_subject_entries(request, method, subject_image_files) -> dict:
    """The checks of ``request.subjects`` and ``request.regions`` that need no model; returns the changed fields
    (``subject_image_files``: the generate task's image-file check, passed in as this module sits below it)."""
    for name in ("subject_image", "subject", "subject_model", "target_subject"):
        if getattr(request, name):
            raise InvalidArgumentError(f"`subjects` and `{name}` exclude each other: each subject's word and images go into `subjects`.", argument="subjects")
    if not getattr(method.pipeline_class(), "takes_several_subjects", False):
        raise InvalidArgumentError(f"`subjects`: {method.title} renders one subject per image; pass `subject_image` and `subject`, or another `method`.", argument="subjects")
    if not request.subjects:
        raise InvalidArgumentError("`subjects` is empty; pass each subject as WORD=IMAGE[,IMAGE...], e.g. dog=dog.jpg cat=cats/.", argument="subjects")
    entries = []
    for entry in request.subjects:
        word = str(entry.word or "").strip()
        if not word:
            raise InvalidArgumentError(f"`subjects`: a subject has no word ({entry!r}); write WORD=IMAGE, e.g. dog=dog.jpg.", argument="subjects")
        items = list(entry.image or ())
        if not items:
            raise InvalidArgumentError(f"`subjects` {word}: no image given; write {word}=IMAGE[,IMAGE...] or {word}=SUBJECT_MODEL_FOLDER.", argument="subjects")
        if not is_subject_model_folder(items):
            try:
                items = subject_image_files("subjects", items)
            except InvalidArgumentError as error:
                raise InvalidArgumentError(str(error).replace("`subjects`:", f"`subjects` {word}:", 1), argument="subjects") from None
        entries.append(SubjectEntry(word, items))
    words = [entry.word for entry in entries]
    for prompt in request.prompt:
        for word in dict.fromkeys(words):
            if len(re.findall(r"(?<!\w)" + re.escape(word) + r"(?!\w)", prompt, re.IGNORECASE)) < words.count(word):
                raise InvalidArgumentError(
                    f"`prompt` {prompt!r} does not name `subjects` {word} (as often as there are such subjects); each subject's "
                    f"query tokens go in front of its word, e.g. 'a {word} at the left and ...'.",
                    argument="prompt",
                )
    regions = dict(request.regions or {})
    for word, box in list(regions.items()):
        if word not in words:
            raise InvalidArgumentError(f"`regions` {word}: not a word of `subjects` ({', '.join(words)}).", argument="regions")
        if words.count(word) > 1:
            raise InvalidArgumentError(f"`regions` {word}: {words.count(word)} subjects share this word; a box by word needs one.", argument="regions")
        regions[word] = check_box(word, box)
        if request.height and request.width:  # the output size is known before the model loads
            check_box_inside(word, regions[word], request.height, request.width)
    return {"subjects": entries, "regions": regions or None}


def pipeline_subjects(pipe, request, height: int, width: int) -> list:
    """The request's subjects as the pipeline's `Subject`s (fine-tuned ones loaded with `load_subjects`), each box
    checked against the ``width x height`` output."""
    from ..pipelines.subjects import Subject

    regions: Mapping[str, tuple] = request.regions or {}
    for word, box in regions.items():
        check_box_inside(word, box, height, width)
    folders = subject_model_folders(request.subjects)
    loaded = iter(pipe.load_subjects(folders) if folders else [])
    subjects = []
    for entry in request.subjects:
        region = regions.get(entry.word)
        if is_subject_model_folder(list(entry.image)):
            subjects.append(dataclasses.replace(next(loaded), word=entry.word, region=region))
        else:
            subjects.append(Subject(entry.word, images=list(entry.image), region=region))
    return subjects


def recorded_subjects(request) -> dict:
    """What a sidecar records of the request's subjects and regions (images as paths, uploads as ``"<image>"``)."""
    subjects = [{"word": e.word, "image": [item if isinstance(item, str) else "<image>" for item in e.image]} for e in request.subjects]
    return {"subjects": subjects, "regions": {word: list(box) for word, box in (request.regions or {}).items()} or None}

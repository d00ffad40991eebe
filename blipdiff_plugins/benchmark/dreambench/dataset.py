"""DreamBench (the DreamBooth evaluation dataset): subjects, reference images and the 25 prompts.

The loader reads the original layout (``<subject>/<NN>.jpg`` plus ``prompts_and_classes.txt``) from a
local folder or from a Hub dataset repository with the same layout. Images that are missing (listed
in ``MANIFEST.jsonl`` but absent) or unreadable are reported, skipped and counted, never fatal.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import PIL.Image
from diffusers.utils import logging

from ...utils.images import open_image

logger = logging.get_logger(__name__)

PROMPTS_FILE = "prompts_and_classes.txt"
MANIFEST_FILE = "MANIFEST.jsonl"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# The DreamBooth paper's "live subjects" are its cats and dogs; they get the live prompt list.
LIVE_CLASSES = frozenset({"cat", "dog"})
CATEGORIES = ("object", "live")

# Prompt kinds by index, from the DreamBooth paper (object: 20 re-contextualisations + 5 property
# changes; live: 10 re-contextualisations, 10 accessorisations, 5 property changes).
_PROMPT_KIND_RANGES = {
    "object": (("recontextualization", 20), ("property", 5)),
    "live": (("recontextualization", 10), ("accessorization", 10), ("property", 5)),
}
_PROMPT_LITERAL = re.compile(r"""^\s*(['"])(?P<text>.*)\1\s*\.format\(\s*unique_token\s*,\s*class_token\s*\)\s*,?\s*$""")
_TEMPLATE = re.compile(r"^a (?:(?P<prefix>.+?) )?\{0\} \{1\}(?: (?P<context>.+))?$")


@dataclasses.dataclass(frozen=True)
class DreamBenchPrompt:
    """One DreamBench prompt template.

    Args:
        index (`int`): position in its list (0-24), part of every result key.
        template (`str`): the original text with ``{0}`` (identifier) and ``{1}`` (class) placeholders.
        prefix (`str`): words between "a" and the subject ("red" in "a red {0} {1}"), often empty.
        context (`str`): words after the subject ("in the jungle"), empty for property prompts.
        kind (`str`): "recontextualization", "accessorization" or "property".
    """

    index: int
    template: str
    prefix: str
    context: str
    kind: str

    def text(self, class_noun: str, identifier: str = "") -> str:
        """The prompt with the placeholders filled; without identifier it is the CLIP-T text ``"a {class} {context}"``."""
        return " ".join(self.template.format(identifier, class_noun).split())

    def target_subject(self, class_noun: str) -> str:
        """The subject words for pipelines that build ``"a {target_subject} {prompt}"`` themselves."""
        return f"{self.prefix} {class_noun}".strip()


@dataclasses.dataclass(frozen=True)
class SkippedImage:
    """A reference image that could not be used, and why."""

    subject: str
    file: str
    reason: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_prompts_and_classes(text: str) -> tuple[dict[str, str], dict[str, list[DreamBenchPrompt]]]:
    """Parse the original ``prompts_and_classes.txt``: a ``subject_name,class`` table and two Python-like
    ``prompt_list = ['a {0} {1} ...'.format(unique_token, class_token), ...]`` blocks (objects, then live).

    Returns:
        `(classes, prompts)`: subject name to class noun, and ``{"object": [...], "live": [...]}``.
    """
    lines = text.splitlines()
    classes: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().replace(" ", "") == "subject_name,class")
    except StopIteration:
        raise ValueError(f"{PROMPTS_FILE}: no 'subject_name,class' table found; is this the original DreamBench file?")
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        name, _, class_noun = line.partition(",")
        if not class_noun.strip():
            raise ValueError(f"{PROMPTS_FILE}: class table line {line!r} is not 'subject_name,class'.")
        classes[name.strip()] = class_noun.strip()

    sections = {"object": "object prompts", "live": "live subject prompts"}
    prompts: dict[str, list[DreamBenchPrompt]] = {}
    lowered = [line.strip().lower() for line in lines]
    for category, heading in sections.items():
        if heading not in lowered:
            raise ValueError(f"{PROMPTS_FILE}: section {heading.title()!r} not found.")
        position = lowered.index(heading) + 1
        templates: list[str] = []
        # Read the prompt literals of the first list after the heading, up to its closing bracket.
        while position < len(lines) and lines[position].strip() != "]":
            match = _PROMPT_LITERAL.match(lines[position])
            if match:
                templates.append(match.group("text"))
            position += 1
        prompts[category] = _make_prompts(templates, category)
    return classes, prompts


def _make_prompts(templates: list[str], category: str) -> list[DreamBenchPrompt]:
    kinds = [kind for kind, count in _PROMPT_KIND_RANGES[category] for _ in range(count)]
    if len(templates) != len(kinds):
        raise ValueError(f"{PROMPTS_FILE}: expected {len(kinds)} {category} prompts, found {len(templates)}.")
    prompts = []
    for index, (template, kind) in enumerate(zip(templates, kinds)):
        match = _TEMPLATE.match(template)
        if match is None:
            raise ValueError(
                f"{PROMPTS_FILE}: {category} prompt {index} {template!r} does not look like 'a [words] {{0}} {{1}} [words]'."
            )
        prompts.append(DreamBenchPrompt(index, template, match.group("prefix") or "", match.group("context") or "", kind))
    return prompts


def _check_image(path: Path) -> str | None:
    """Decode the whole file so truncated images fail here; return the reason it is unusable, or None."""
    if not path.is_file():
        return "missing"
    try:
        open_image(path)
    except (OSError, ValueError) as error:
        return f"unreadable ({type(error).__name__}: {error})"
    return None


def _is_folder_name(name: str) -> bool:
    """One path component that names a folder inside its parent: no separator, not ``.``/``..``, not too long."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and len(name.encode("utf-8")) <= 255


# The published DreamBench: the DreamBooth authors' dataset on the Hub, in the original layout under ``dataset/``.
DREAMBENCH_HUB_ID = "google/dreambooth"
HUB_SUBFOLDER = "dataset"
_FOLDER_HINT = "a DreamBench folder (<subject>/<NN>.jpg and prompts_and_classes.txt)"


def _resolve_root(path_or_repo_id: str | os.PathLike, revision: str | None, cache_dir: str | None, argument: str) -> Path:
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    name = str(path_or_repo_id)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not name.startswith((".", "/")):
        from huggingface_hub import snapshot_download

        try:
            root = Path(snapshot_download(name, repo_type="dataset", revision=revision, cache_dir=cache_dir))
        except Exception as error:  # offline, missing repo, no access: one clear message either way
            raise FileNotFoundError(
                f"{argument}: {name!r} is not a local folder, and downloading it as a Hub dataset failed "
                f"({type(error).__name__}; offline?). Pass {_FOLDER_HINT} instead."
            ) from error
        # The published repository keeps the original layout one folder down.
        if not (root / PROMPTS_FILE).is_file() and (root / HUB_SUBFOLDER / PROMPTS_FILE).is_file():
            root = root / HUB_SUBFOLDER
        return root
    raise FileNotFoundError(
        f"{argument}: {name!r} is neither a local folder nor a Hub dataset id ('owner/name'); pass {_FOLDER_HINT} "
        f"or a Hub dataset id such as {DREAMBENCH_HUB_ID!r}."
    )


class DreamBench:
    """DreamBench subjects as a `datasets.Dataset`, with the prompt lists and a record of skipped images.

    Use [`load_dreambench`] to build one. ``subjects`` has one row per usable subject with the columns
    ``subject``, ``subject_index`` (position among all 30, fixed, so seeds do not depend on filters),
    ``class_noun``, ``category`` ("object" or "live"; the toy-world benchmark uses its own categories),
    ``reference_images`` (file paths) and ``num_references``.
    """

    def __init__(
        self,
        *,
        root: Path,
        subjects,
        prompts: dict[str, list[DreamBenchPrompt]],
        skipped_images: Sequence[SkippedImage],
        skipped_subjects: Sequence[str],
        all_subjects: Sequence[str],
    ):
        self.root = root
        self.subjects = subjects
        self.prompts = prompts
        self.skipped_images = list(skipped_images)
        self.skipped_subjects = list(skipped_subjects)
        self.all_subjects = list(all_subjects)

    def __len__(self) -> int:
        return len(self.subjects)

    def __repr__(self) -> str:
        return (
            f"DreamBench(root={str(self.root)!r}, subjects={len(self)}, "
            f"skipped_images={len(self.skipped_images)}, skipped_subjects={len(self.skipped_subjects)})"
        )

    @property
    def subject_names(self) -> list[str]:
        return list(self.subjects["subject"])

    def subject(self, name: str) -> dict:
        """The row of one subject; unknown names raise `KeyError` with close matches."""
        names = self.subject_names
        if name not in names:
            raise KeyError(_unknown_subject_message(name, names, self.skipped_subjects))
        return self.subjects[names.index(name)]

    def prompts_for(self, subject: str | dict) -> list[DreamBenchPrompt]:
        row = self.subject(subject) if isinstance(subject, str) else subject
        return self.prompts[row["category"]]

    def load_reference_images(self, subject: str | dict) -> list[PIL.Image.Image]:
        """The subject's reference images as RGB PIL images, EXIF rotation applied."""
        row = self.subject(subject) if isinstance(subject, str) else subject
        images = []
        for path in row["reference_images"]:
            images.append(open_image(path, argument="reference_images").convert("RGB"))
        return images

    def prompt_rows(self):
        """A `datasets.Dataset` with one row per (subject, prompt): the 25 prompts of each subject, with
        ``eval_text`` = ``"a {class} {context}"`` (the CLIP-T text, no identifier token)."""
        import datasets

        rows = []
        for row in self.subjects:
            for prompt in self.prompts[row["category"]]:
                rows.append(
                    {
                        "subject": row["subject"],
                        "class_noun": row["class_noun"],
                        "category": row["category"],
                        "prompt_index": prompt.index,
                        "template": prompt.template,
                        "prefix": prompt.prefix,
                        "context": prompt.context,
                        "prompt_kind": prompt.kind,
                        "eval_text": prompt.text(row["class_noun"]),
                    }
                )
        return datasets.Dataset.from_list(rows)

    def select_subjects(self, names: Iterable[str] | None) -> "DreamBench":
        """A copy restricted to ``names`` (in dataset order); unknown names raise `KeyError` with close matches."""
        if names is None:
            return self
        names = list(names)
        known = self.subject_names
        for name in names:
            if name not in known:
                raise KeyError(_unknown_subject_message(name, known, self.skipped_subjects))
        wanted = set(names)
        indices = [i for i, name in enumerate(known) if name in wanted]
        return DreamBench(
            root=self.root,
            subjects=self.subjects.select(indices),
            prompts=self.prompts,
            skipped_images=[s for s in self.skipped_images if s.subject in wanted],
            skipped_subjects=[s for s in self.skipped_subjects if s in wanted],
            all_subjects=self.all_subjects,
        )

    def counts(self) -> dict:
        """Numbers for the summary: subjects, reference images, and what was skipped."""
        return {
            "subjects": len(self),
            "reference_images": int(sum(self.subjects["num_references"])) if len(self) else 0,
            "skipped_images": len(self.skipped_images),
            "skipped_subjects": len(self.skipped_subjects),
            "skipped": [s.to_dict() for s in self.skipped_images],
            "skipped_subject_names": list(self.skipped_subjects),
        }


def _unknown_subject_message(name: str, known: Sequence[str], skipped: Sequence[str]) -> str:
    if name in skipped:
        return f"`subjects`: subject {name!r} was skipped because none of its reference images could be read."
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"`subjects`: unknown DreamBench subject {name!r}.{hint} Known subjects: {', '.join(known)}."


def load_dreambench(
    path_or_repo_id: str | os.PathLike,
    *,
    subjects: Iterable[str] | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    argument: str = "`path_or_repo_id`",
) -> DreamBench:
    """Load DreamBench from a folder in the original layout or a Hub dataset repository with that layout.

    Args:
        path_or_repo_id (`str` or `os.PathLike`):
            A local folder (``<subject>/<NN>.jpg``, ``prompts_and_classes.txt``) or a Hub dataset id with that layout
            (at its top or under ``dataset/``, as in the published `DREAMBENCH_HUB_ID`).
        subjects (`Iterable[str]`, *optional*):
            Keep only these subjects. An unknown name raises `KeyError` naming the close matches.
        revision (`str`, *optional*): Hub revision, for a dataset id.
        cache_dir (`str`, *optional*): Hub cache folder, for a dataset id.
        argument (`str`, defaults to "`path_or_repo_id`"): how errors name the first argument (the CLI passes
            "--dataset").

    Returns:
        [`DreamBench`]: subjects whose images could be read, the prompts, and the skipped images.
    """
    import datasets

    root = _resolve_root(path_or_repo_id, revision, cache_dir, argument)
    prompts_path = root / PROMPTS_FILE
    if not prompts_path.is_file():
        raise FileNotFoundError(f"{argument}: {str(root)!r} has no {PROMPTS_FILE}; pass {_FOLDER_HINT}.")
    classes, prompts = parse_prompts_and_classes(prompts_path.read_text(encoding="utf-8"))

    # The manifest (when present) says which files should exist, so a missing file is noticed.
    listed: dict[str, list[str]] = {}
    manifest = root / MANIFEST_FILE
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                listed.setdefault(entry["subject"], []).append(entry["file"])

    rows, skipped_images, skipped_subjects = [], [], []
    for subject_index, (name, class_noun) in enumerate(classes.items()):
        if not _is_folder_name(name):
            # "/abs/x", "../x" or a 300-character name would read (and name files) outside the dataset.
            skipped_subjects.append(name)
            skipped_images.append(SkippedImage(name, "", "subject name is not a folder name inside the dataset"))
            logger.warning("DreamBench: skipping subject %r: not a folder name inside %s", name[:80], root)
            continue
        folder = root / name
        on_disk = [p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if folder.is_dir() else []
        files = sorted(set(listed.get(name, [])) | set(on_disk))
        good = []
        for file in files:
            reason = _check_image(folder / file)
            if reason is None:
                good.append(str(folder / file))
            else:
                skipped_images.append(SkippedImage(name, file, reason))
                logger.warning("DreamBench: skipping %s/%s: %s", name, file, reason)
        if not good:
            skipped_subjects.append(name)
            continue
        rows.append(
            {
                "subject": name,
                "subject_index": subject_index,
                "class_noun": class_noun,
                "category": "live" if class_noun in LIVE_CLASSES else "object",
                "reference_images": good,
                "num_references": len(good),
            }
        )
    if skipped_subjects:
        logger.warning(
            "DreamBench: skipping %d subject(s) without a readable reference image in %s: %s",
            len(skipped_subjects), root, ", ".join(skipped_subjects),
        )
    features = datasets.Features(
        {
            "subject": datasets.Value("string"),
            "subject_index": datasets.Value("int32"),
            "class_noun": datasets.Value("string"),
            "category": datasets.Value("string"),
            "reference_images": datasets.Sequence(datasets.Value("string")),
            "num_references": datasets.Value("int32"),
        }
    )
    bench = DreamBench(
        root=root,
        subjects=datasets.Dataset.from_list(rows, features=features),
        prompts=prompts,
        skipped_images=skipped_images,
        skipped_subjects=skipped_subjects,
        all_subjects=list(classes),
    )
    return bench.select_subjects(subjects)

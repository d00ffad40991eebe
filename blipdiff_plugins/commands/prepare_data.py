"""``blipdiff prepare-data``: build stage-2 training records (target, composite, caption, subject, alpha)."""

from __future__ import annotations

import argparse
import dataclasses
import re

from ..utils.errors import InvalidInputError
from .common import HelpFormatter

SEGMENTER_NAMES = ("clipseg", "mask")
FIELDS = ("image", "caption", "subject", "mask")
# Library argument names -> the flags that set them, so errors speak in flag terms.
ARGUMENT_FLAGS = {
    "source": "--source",
    "output_dir": "--output",
    "backgrounds": "--backgrounds",
    "backgrounds_column": "--background-column",
    "columns": "--column",
    "metadata": "--metadata",
    "captioner": "--captioner",
    "segmenter": "--segmenter",
    "model_id": "--segmenter-model",
    "process_index": "--process-index",
    "num_processes": "--num-processes",
    "output_format": "--format",
    "estimate_foreground": "--no-foreground-estimation",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..data.config import CAPTION_MODES, ON_BAD_RECORD, OUTPUT_FORMATS, DataBuilderConfig

    defaults = DataBuilderConfig()
    parser = subparsers.add_parser(
        "prepare-data",
        help="build stage-2 pre-training data: segment, matte and re-composite subjects",
        description="Build 'prompted context generation' records from images with a caption and a subject word: "
        "segment the subject (CLIPSeg prompted with the word, or the record's mask), build a trimap, extract it by "
        "closed-form matting and paste it onto a random background at the same place. Writes parquet (or webdataset) "
        "shards, a preview grid and a summary of dropped records. Resumable; shards across 'accelerate launch' processes.",
        formatter_class=HelpFormatter,
    )
    data = parser.add_argument_group("input and output")
    data.add_argument("--source", required=True, help="image folder with metadata.jsonl/.csv, a saved datasets folder or a Hub dataset id")
    data.add_argument("--metadata", default=None, help="metadata file of an image folder, if not inside it")
    data.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN", help=f"map a field ({', '.join(FIELDS)}) to a column; repeatable")
    data.add_argument("--split", default="train", help="split of a dataset dict or Hub id")
    data.add_argument("--backgrounds", required=True, help="folder of background pictures, or a dataset with an image column")
    data.add_argument("--background-column", default=None, help="image column of a background dataset")
    data.add_argument("--output", required=True, help="new or empty folder, or an earlier build with the same settings to resume")
    data.add_argument("--format", default=defaults.output_format, choices=OUTPUT_FORMATS, help="parquet shards (a datasets folder) or webdataset tars")
    models = parser.add_argument_group("models")
    models.add_argument("--segmenter", default="clipseg", choices=SEGMENTER_NAMES, help="clipseg: prompted with the subject word; mask: the records' masks")
    models.add_argument("--segmenter-model", default=None, help="CLIPSeg model id or folder (default CIDAS/clipseg-rd64-refined)")
    models.add_argument("--captioner", default=None, help="image-to-text model id or folder, e.g. Salesforce/blip2-opt-2.7b")
    models.add_argument("--caption-mode", default=defaults.caption_mode, choices=CAPTION_MODES, help="record: the records' captions; captioner: caption all; fill: only missing")
    models.add_argument("--device", default="auto", help="device of the segmenter and captioner: cpu, cuda, cuda:N or auto")
    settings = parser.add_argument_group("segmentation, matting and filtering (our defaults; the paper's are not public)")
    settings.add_argument("--foreground-threshold", type=float, default=defaults.foreground_threshold, help="confidence of known foreground")
    settings.add_argument("--background-threshold", type=float, default=defaults.background_threshold, help="confidence below which is known background")
    settings.add_argument("--erode-pixels", type=int, default=defaults.erode_pixels, help="erosion of the known foreground (working-resolution pixels)")
    settings.add_argument("--dilate-pixels", type=int, default=defaults.dilate_pixels, help="dilation of the not-background region")
    settings.add_argument("--working-resolution", type=int, default=defaults.working_resolution, help="long side of trimap and matting")
    settings.add_argument("--resolution", type=int, default=defaults.resolution, help="downscale images to this short side; 0 keeps them")
    settings.add_argument("--min-area", type=float, default=defaults.min_area, help="drop subjects covering less of the image")
    settings.add_argument("--max-area", type=float, default=defaults.max_area, help="drop subjects covering more of the image")
    settings.add_argument("--no-foreground-estimation", action="store_true", help="paste raw pixels in the edge band (may carry old background)")
    settings.add_argument("--seed", type=int, default=defaults.seed, help="seeds each record's background choice with its index")
    settings.add_argument("--records-per-shard", type=int, default=defaults.records_per_shard, help="unit of resume and of sharding across processes")
    settings.add_argument("--on-bad-record", default=defaults.on_bad_record, choices=ON_BAD_RECORD, help="skip (counted) or stop at a bad record")
    settings.add_argument("--preview-records", type=int, default=defaults.preview_records, help="rows of preview.png (0: none)")
    processes = parser.add_argument_group("processes (default: accelerate's)")
    processes.add_argument("--process-index", type=int, default=None, help="this process's index, for independent jobs")
    processes.add_argument("--num-processes", type=int, default=None, help="number of processes sharing the build")
    parser.set_defaults(func=run)
    return parser


def to_flags(message: str) -> str:
    """Replace the library's `argument` names in an error message by the flags that set them."""
    from ..data.config import DataBuilderConfig

    flags = dict(ARGUMENT_FLAGS)
    for field in dataclasses.fields(DataBuilderConfig):
        flags.setdefault(field.name, "--" + field.name.replace("_", "-"))
    message = re.sub(r"`(\w+)`", lambda match: f"`{flags.get(match.group(1), match.group(1))}`", message)
    return re.sub(r"\b(on_bad_record|caption_mode|segmenter)='(\w+)'", lambda m: f"{flags[m.group(1)]} {m.group(2)}", message)


def parse_columns(values: list[str]) -> dict[str, str]:
    columns = {}
    for value in values:
        field, separator, column = value.partition("=")
        if not separator or field not in FIELDS or not column:
            raise ValueError(f"`--column` expects FIELD=COLUMN with FIELD one of {', '.join(FIELDS)}, got {value!r}.")
        columns[field] = column
    return columns


def nothing_kept(result) -> str:
    """Why a complete build kept no record: the reasons by count, and the first record dropped for the commonest."""
    reasons = sorted(((count, reason) for reason, count in result.skipped.items() if count), reverse=True)
    counts = ", ".join(f"{reason} {count}" for count, reason in reasons)
    first = (result.first_skips or {}).get(reasons[0][1], "") if reasons else ""
    return (
        f"no record was kept: all {result.num_records} were dropped ({counts}); the first: {first.rstrip('.')}. "
        f"Fix the records or the flags, then build into a new --output (see {result.output_dir / 'summary.json'})."
    )


def run(args) -> int:
    from .common import resolve_device

    try:
        from ..data.builder import build_training_data
        from ..data.config import DataBuilderConfig

        config = DataBuilderConfig(
            foreground_threshold=args.foreground_threshold,
            background_threshold=args.background_threshold,
            erode_pixels=args.erode_pixels,
            dilate_pixels=args.dilate_pixels,
            working_resolution=args.working_resolution,
            resolution=args.resolution or None,
            min_area=args.min_area,
            max_area=args.max_area,
            estimate_foreground=not args.no_foreground_estimation,
            seed=args.seed,
            records_per_shard=args.records_per_shard,
            output_format=args.format,
            caption_mode=args.caption_mode,
            on_bad_record=args.on_bad_record,
            preview_records=args.preview_records,
        )
        result = build_training_data(
            args.source,
            output_dir=args.output,
            backgrounds=args.backgrounds,
            config=config,
            segmenter=args.segmenter,
            segmenter_model=args.segmenter_model,
            captioner=args.captioner,
            metadata=args.metadata,
            columns=parse_columns(args.column),
            split=args.split,
            background_column=args.background_column,
            device=resolve_device(args.device),
            process_index=args.process_index,
            num_processes=args.num_processes,
            progress_bar=True,
        )
    except ValueError as error:
        raise ValueError(to_flags(str(error))) from error
    from ..data.filtering import summary_text

    print(f"Built shards {result.shards_built} of {result.num_shards} ({result.records_processed} records, {result.records_per_second:.2f} records/s).")
    if result.complete:
        print(summary_text(records=result.num_records, kept=result.kept, skipped=result.skipped))
        if result.kept == 0:
            raise InvalidInputError(nothing_kept(result))
        print(f"Output: {result.output_dir.resolve()} (summary.json, preview.png)")
    else:
        print("Other processes' shards are not finished yet; the last process to finish writes summary.json.")
    return 0

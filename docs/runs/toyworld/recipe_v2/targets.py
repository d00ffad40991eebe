"""Every target of issues 26, 27 and 28 that the recipe-v2 run measures, read from its folders: the value, the target
and whether it is met. Run after `run_all.sh RUN` (rows not yet measured print as "not measured"):

    python docs/runs/toyworld/recipe_v2/targets.py runs/toy12 [--json runs/toy12/bench/targets.json]

The shipped model's one-subject row (issue 28's "no lower than the shipped model's by more than 0.02") is
docs/runs/toyworld/protocol_v2/zs4, measured with the same protocol (v2 contexts, 4 images per prompt, 25 steps).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHIPPED_ZERO_SHOT = Path(__file__).resolve().parents[1] / "protocol_v2" / "zs4" / "toyworld_summary.json"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _overall(summary: dict | None, metric: str) -> float | None:
    return None if summary is None else summary["scores"]["overall"][metric]["mean"]


def _flat(summary: dict | None, metric: str) -> float | None:
    return None if summary is None else summary["scores"][metric]["mean"]


def _check(rows: list, issue: int, name: str, value: float | None, target: str, met) -> None:
    rows.append({"issue": issue, "target": name, "value": value, "wanted": target,
                 "met": None if value is None else bool(met(value))})


def _finetune_rows(rows: list, zero_shot: dict | None, finetuned: dict | None) -> None:
    """Mean subject gain, the three weakest zero-shot subjects' gains, and the prompt's change (issue 26 item 5)."""
    if zero_shot is None or finetuned is None:
        for name in ("fine-tune: mean subject gain", "fine-tune: weakest three, smallest gain", "fine-tune: prompt change"):
            _check(rows, 26, name, None, "", None)
        return
    gain = _overall(finetuned, "subject_correct") - _overall(zero_shot, "subject_correct")
    _check(rows, 26, "fine-tune: mean subject gain", gain, ">= +0.08", lambda v: v >= 0.08)
    per_zs, per_ft = zero_shot["scores"]["per_subject"], finetuned["scores"]["per_subject"]
    weakest = sorted(per_zs, key=lambda s: per_zs[s]["subject_correct"])[:3]
    gains = {s: per_ft[s]["subject_correct"] - per_zs[s]["subject_correct"] for s in weakest}
    _check(rows, 26, f"fine-tune: weakest three, smallest gain ({', '.join(f'{s} {g:+.3f}' for s, g in gains.items())})",
           min(gains.values()), ">= +0.20 each", lambda v: v >= 0.20)
    change = _overall(finetuned, "prompt_correct") - _overall(zero_shot, "prompt_correct")
    _check(rows, 26, "fine-tune: prompt change", change, ">= -0.03", lambda v: v >= -0.03)


def collect(run: Path) -> list[dict]:
    bench = run / "bench"
    row = lambda name, file="toyworld_summary.json": _read(bench / name / file)  # noqa: E731
    zs, text, bricks, ft = row("zs"), row("text"), row("zs-bricks"), row("ft")
    rows: list[dict] = []
    # Issue 26.
    _check(rows, 26, "zero-shot subject accuracy", _overall(zs, "subject_correct"), ">= 0.88", lambda v: v >= 0.88)
    _check(rows, 26, "zero-shot shape", _overall(zs, "shape_correct"), ">= 0.90", lambda v: v >= 0.90)
    _check(rows, 26, "zero-shot prompt accuracy", _overall(zs, "prompt_correct"), ">= 0.90", lambda v: v >= 0.90)
    _check(rows, 26, "text only subject accuracy", _overall(text, "subject_correct"), "<= 0.05", lambda v: v <= 0.05)
    gap = None if zs is None or bricks is None else _overall(zs, "subject_correct") - _overall(bricks, "subject_correct")
    _check(rows, 26, "one background: varied minus bricks subject accuracy", gap, "<= 0.05", lambda v: v <= 0.05)
    _finetune_rows(rows, zs, ft)
    stage1 = _read(run / "qformer" / "done.json")
    retrieval = None if stage1 is None else stage1.get("retrieval_heldout")
    for way in ("image_to_text", "text_to_image"):
        value = None if retrieval is None else retrieval[way]["recall@1"]
        _check(rows, 26, f"stage-1 recall@1 {way.replace('_', ' ')} ({retrieval and retrieval['pairs']} pairs)", value,
               ">= 0.90", lambda v: v >= 0.90)
    for ablation in ("zs-trainable", "zs-nostage1"):
        _check(rows, 26, f"ablation {ablation}: subject accuracy (for the table)", _overall(row(ablation), "subject_correct"),
               "reported", lambda v: True)
    # Issue 27 (inpainting rows).
    inpaint, text_inpaint = row("inpaint-subject_inpaint", "inpaint_summary.json"), row("inpaint-text_inpaint", "inpaint_summary.json")
    _check(rows, 27, "inpainting subject accuracy in the region", _flat(inpaint, "subject_correct"), ">= 0.75", lambda v: v >= 0.75)
    _check(rows, 27, "inpainting position and size follow the region", _flat(inpaint, "placement_correct"), ">= 0.90",
           lambda v: v >= 0.90)
    outside = None if inpaint is None else inpaint["scores"]["outside_max_difference"]["max"]
    _check(rows, 27, "inpainting outside the mask, max difference (of 255)", outside, "<= 2", lambda v: v <= 2)
    _check(rows, 27, "inpainting training subject unchanged", _flat(inpaint, "other_unchanged"), ">= 0.95", lambda v: v >= 0.95)
    _check(rows, 27, "text-only inpainting subject accuracy", _flat(text_inpaint, "subject_correct"), "<= 0.05",
           lambda v: v <= 0.05)
    # Issue 28 (binding rows, and the one-subject row against the shipped model's).
    regions, no_regions = row("binding-regions", "binding_summary.json"), row("binding-no-regions", "binding_summary.json")
    _check(rows, 28, "both right, regions", _overall(regions, "both_right"), ">= 0.60", lambda v: v >= 0.60)
    _check(rows, 28, "both right, no regions", _overall(no_regions, "both_right"), ">= 0.40", lambda v: v >= 0.40)
    for label, summary in (("regions", regions), ("no regions", no_regions)):
        _check(rows, 28, f"swaps, {label}", _overall(summary, "swap"), "<= 0.05", lambda v: v <= 0.05)
        _check(rows, 28, f"missing, {label}", _overall(summary, "missing"), "<= 0.10", lambda v: v <= 0.10)
    shipped = _read(SHIPPED_ZERO_SHOT)
    for metric in ("subject_correct", "prompt_correct"):
        drop = None if zs is None else _overall(zs, metric) - _overall(shipped, metric)
        _check(rows, 28, f"one subject: {metric} minus the shipped model's ({_overall(shipped, metric):.3f})", drop,
               ">= -0.02", lambda v: v >= -0.02)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder given to run_all.sh")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    if not (args.run / "recipe.json").is_file():
        parser.error(f"run {str(args.run)!r} has no recipe.json; pass the folder given to run_all.sh")
    rows = collect(args.run)
    print("| issue | target | measured | wanted | met |\n|---|---|---|---|---|")
    for r in rows:
        value = "not measured" if r["value"] is None else f"{r['value']:.3f}"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        print(f"| {r['issue']} | {r['target']} | {value} | {r['wanted']} | {met} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

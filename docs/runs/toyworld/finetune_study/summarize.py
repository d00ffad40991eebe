"""Table of the fine-tune study (out/study.json): per setting, the subjects it ran on, zero-shot and fine-tuned accuracy
on the same images' seeds, the paired difference with a 95% bootstrap interval over images, and the cheap signals.

    python docs/runs/toyworld/finetune_study/summarize.py docs/runs/toyworld/finetune_study/out/study.json
"""

from __future__ import annotations

import json
import sys

import numpy as np


def paired_interval(differences, resamples=2000, seed=0):
    rng = np.random.default_rng(seed)
    values = np.asarray(differences, dtype=float)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(path):
    study = json.loads(open(path).read())
    settings = {}
    for run in study["runs"].values():
        settings.setdefault(run["setting"], []).append(run)
    lines = ["| setting | subjects | images | zero-shot subject | fine-tuned subject | paired difference [95%] | zero-shot prompt | "
             "fine-tuned prompt | U-Net change | embedding change | pixel difference | loss first 10 -> last 10 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for setting, runs in settings.items():
        zero_subject = [x for r in runs for x in study["zero_shot"][r["subject"]]["subject_correct_per_image"]]
        tuned_subject = [x for r in runs for x in r["subject_correct_per_image"]]
        zero_prompt = [x for r in runs for x in study["zero_shot"][r["subject"]]["prompt_correct_per_image"]]
        tuned_prompt = [x for r in runs for x in r["prompt_correct_per_image"]]
        subject_diff = paired_interval(np.array(tuned_subject, float) - np.array(zero_subject, float))
        prompt_diff = paired_interval(np.array(tuned_prompt, float) - np.array(zero_prompt, float))
        row = {
            "subjects": [r["subject"] for r in runs], "images": len(tuned_subject),
            "zero_shot_subject": float(np.mean(zero_subject)), "finetuned_subject": float(np.mean(tuned_subject)),
            "subject_difference": subject_diff, "zero_shot_prompt": float(np.mean(zero_prompt)),
            "finetuned_prompt": float(np.mean(tuned_prompt)), "prompt_difference": prompt_diff,
            "unet_relative_change": float(np.nanmean([r["unet_relative_change"] for r in runs])),
            "embedding_relative_change": float(np.mean([r["embedding_relative_change"] for r in runs])),
            "pixel_difference": float(np.mean([r["pixel_difference_to_zero_shot"] for r in runs])),
            "loss_first10": float(np.mean([r["loss_first10"] for r in runs])), "loss_last10": float(np.mean([r["loss_last10"] for r in runs])),
            "per_subject": {r["subject"]: [study["zero_shot"][r["subject"]]["subject_accuracy"], r["subject_accuracy"]] for r in runs},
        }
        summary[setting] = row
        change = "-" if np.isnan(row["unet_relative_change"]) else f"{row['unet_relative_change']:.4f}"
        lines.append(
            f"| `{setting}` | {', '.join(f'{s} {a:.2f}->{b:.2f}' for s, (a, b) in row['per_subject'].items())} | {row['images']} | "
            f"{row['zero_shot_subject']:.3f} | {row['finetuned_subject']:.3f} | {subject_diff[0]:+.3f} [{subject_diff[1]:+.3f}, {subject_diff[2]:+.3f}] | "
            f"{row['zero_shot_prompt']:.3f} | {row['finetuned_prompt']:.3f} ({prompt_diff[0]:+.3f} [{prompt_diff[1]:+.3f}, {prompt_diff[2]:+.3f}]) | "
            f"{change} | {row['embedding_relative_change']:.5f} | {row['pixel_difference']:.1f} | "
            f"{row['loss_first10']:.3f} -> {row['loss_last10']:.3f} |"
        )
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    summary = main(sys.argv[1])
    if len(sys.argv) > 2:
        open(sys.argv[2], "w").write(json.dumps(summary, indent=1))

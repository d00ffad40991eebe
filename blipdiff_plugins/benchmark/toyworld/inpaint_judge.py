"""The judge of the toy-world inpainting benchmark: the oracle reads the region, the pixel measures its placement.

The oracle and the pixel measures were made for whole toy-world images, so the judge shows them one: a probe, the
scene's clean background with the result's pixels inside one box only (our choice: the rest of the scene, the other
subject included, cannot sway the answer). Per result image:

- ``subject_correct``: the oracle names the held-out subject's shape and appearance on the region's probe, and the
  pixel measures find a subject there (an untouched region is wrong however the oracle guesses);
- ``position_correct`` / ``size_correct`` / ``placement_correct``: the subject read from the probe is at the region's
  position, of its size, and both (the region follows the world's positions and sizes);
- ``outside_max_difference``: the largest change of any channel outside the region, in 0-255 (target: 2 or less);
- ``other_unchanged`` (scenes with a training subject elsewhere): the oracle names the same shape and appearance on
  that subject's box in the result as in the photo, and it names them right in the photo (`None` without one).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from blipdiff_plugins.toyworld.measures import measure_context
from blipdiff_plugins.toyworld.oracle import classify
from blipdiff_plugins.toyworld.world import ToyWorld

from ..bootstrap import bootstrap_interval
from .inpaint_scenes import InpaintScene, box_region

OUTSIDE_TOLERANCE = 2  # of 255: the target for pixels outside the mask
RATES = ("subject_correct", "placement_correct", "position_correct", "size_correct", "outside_within_tolerance", "other_unchanged")


def probe(scene: InpaintScene, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The scene's clean background with ``image``'s pixels inside ``box``."""
    region = box_region(box, scene.background.shape[0])
    return np.where(region[..., None], image, scene.background).astype(np.uint8)


def judge(oracle, scenes: Sequence[InpaintScene], images: Sequence[Sequence], *, world: ToyWorld | None = None) -> list[dict]:
    """One row per result image: ``images[i]`` are the results (PIL or uint8 arrays, the photo's size) of ``scenes[i]``."""
    world = world or ToyWorld(image_size=scenes[0].image.shape[0] if scenes else 64)
    arrays, owners, probes, other_probes = [], [], [], []
    for scene_index, (scene, results) in enumerate(zip(scenes, images)):
        for result in results:
            array = np.asarray(result.convert("RGB") if hasattr(result, "convert") else result).astype(np.uint8)
            if array.shape != scene.image.shape:
                raise ValueError(f"`images`: a result of scene {scene_index} has shape {array.shape}, the photo {scene.image.shape}.")
            arrays.append(array)
            owners.append(scene_index)
            probes.append(probe(scene, array, scene.box))
            if scene.other is not None:
                other_probes += [probe(scene, array, scene.other_box)]
    region_answers = classify(oracle, probes) if probes else {"shape": [], "appearance": []}
    with_other = [index for index, scene in enumerate(scenes) if scene.other is not None]
    photo_answers = classify(oracle, [probe(scenes[i], scenes[i].image, scenes[i].other_box) for i in with_other]) if with_other else None
    photo_of = {scene_index: position for position, scene_index in enumerate(with_other)}
    result_answers = classify(oracle, other_probes) if other_probes else None
    rows, other_count = [], 0
    for index, (array, scene_index) in enumerate(zip(arrays, owners)):
        scene = scenes[scene_index]
        subject = world.subject(scene.subject)
        measured = measure_context(probes[index])
        found = measured.position is not None
        row = {
            "scene": scene_index,
            "subject": scene.subject,
            "prompt": scene.prompt,
            "oracle_shape": region_answers["shape"][index],
            "oracle_appearance": region_answers["appearance"][index],
            "measured_position": measured.position,
            "measured_size": measured.size,
            "subject_correct": found and region_answers["shape"][index] == subject.shape and region_answers["appearance"][index] == subject.appearance,
            "position_correct": measured.position == scene.context.position,
            "size_correct": measured.size == scene.context.size,
        }
        row["placement_correct"] = row["position_correct"] and row["size_correct"]
        outside = ~scene.region()
        row["outside_max_difference"] = int(np.abs(array.astype(int) - scene.image.astype(int))[outside].max())
        row["outside_within_tolerance"] = row["outside_max_difference"] <= OUTSIDE_TOLERANCE
        row["other_unchanged"] = None
        if scene.other is not None:
            other = world.subject(scene.other)
            before = (photo_answers["shape"][photo_of[scene_index]], photo_answers["appearance"][photo_of[scene_index]])
            after = (result_answers["shape"][other_count], result_answers["appearance"][other_count])
            row["other_unchanged"] = before == after == (other.shape, other.appearance)
            other_count += 1
        rows.append(row)
    return rows


def aggregate_inpaint(rows: Iterable[Mapping], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Each rate's mean with its 95% percentile-bootstrap interval over images, and the outside difference's maximum."""
    rows = list(rows)
    summary: dict = {"images": len(rows), "scenes": len({row["scene"] for row in rows})}
    for metric in RATES:
        values = [float(row[metric]) for row in rows if row.get(metric) is not None]
        if values:
            low, high = bootstrap_interval(values, resamples=resamples, seed=seed)
            summary[metric] = {"mean": float(np.mean(values)), "low": low, "high": high, "n": len(values)}
        else:
            summary[metric] = {"mean": None, "low": None, "high": None, "n": 0}
    differences = [row["outside_max_difference"] for row in rows]
    summary["outside_max_difference"] = {"max": max(differences) if differences else None,
                                         "mean": float(np.mean(differences)) if differences else None}
    return summary


PROTOCOL_NAME = "toyworld/inpaint"


class InpaintScorer:
    """`judge` for the shared runner: the subject comes from the reference folder (``<root>/<subject>/NN.png``), the
    scene from the prompt's index (`reads_prompt_index`), and each image gets `judge`'s row.

    Args:
        oracle ([`ToyWorldOracle`]): the subject classifier (see `load_oracle`).
        scenes (`Mapping[tuple[str, int], InpaintScene]`): ``(subject, scene index) -> scene`` (`load_inpaint_bench`).
    """

    reads_prompt_index = True

    def __init__(self, oracle, scenes: Mapping[tuple[str, int], InpaintScene]):
        self.oracle = oracle.eval()
        self.scenes = dict(scenes)
        first = next(iter(self.scenes.values()), None)
        self.world = ToyWorld(image_size=first.image.shape[0] if first is not None else 64)

    @property
    def protocol(self) -> dict:
        return {
            "name": PROTOCOL_NAME,
            "oracle": self.oracle.identity,
            "probe": "the scene's clean background with the result's pixels inside one box only",
            "outside_tolerance": OUTSIDE_TOLERANCE,
            "interval": "95% percentile bootstrap over images (2000 resamples, seed 0)",
        }

    def score(self, images: Sequence, *, reference_paths: Sequence[str], texts: Sequence[str] | None = None, prompt_index: int) -> list[dict]:
        """Judge one scene's results (``texts`` are the scene's prompt, recorded by the runner, not read)."""
        from pathlib import Path

        names = list(dict.fromkeys(Path(path).parent.name for path in reference_paths))
        key = (names[0] if len(names) == 1 else None, prompt_index)
        if key not in self.scenes:
            raise KeyError(f"`prompt_index`: no scene {prompt_index} of the subject of {list(reference_paths)[:1]}.")
        rows = judge(self.oracle, [self.scenes[key]], [list(images)], world=self.world)
        return [{**row, "scene": f"{key[0]}/{prompt_index}"} for row in rows]  # unique across subjects (aggregate counts scenes)

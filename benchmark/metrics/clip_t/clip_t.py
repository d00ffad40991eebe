"""DreamBench CLIP-T: cosine of the CLIP ViT-B/32 image embedding and the text embedding of its prompt."""

import datasets
import evaluate

from blipdiff_plugins.benchmark.dreambench.backbones import DEFAULT_CLIP_BACKBONE
from blipdiff_plugins.benchmark.dreambench.clip import ClipEmbedder
from blipdiff_plugins.benchmark.dreambench import evaluate_metric  # a module, not the base classes: evaluate takes the first Metric class it finds
from blipdiff_plugins.benchmark.metrics import paired_cosine

_DESCRIPTION = """
CLIP-T score of DreamBench (DreamBooth, BLIP-Diffusion): the cosine similarity of the CLIP ViT-B/32 image
embedding of a generated image and the text embedding of its prompt, written "a {class} {context}" (the
class noun, no identifier token). Not multiplied by 100 and not clamped at 0 (torchmetrics' CLIPScore is
100 * max(this, 0)). The result is the mean over images; pass `subjects` to also get the subject-macro mean.
Choose another backbone (CLIP ViT-L/14) by config name or `backbone=`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of PIL images or paths): generated images.
    references (`list[str]`): each image's text, "a {class} {context}".
    subjects (`list[str]`, *optional*): each prediction's subject, for the subject-macro mean.
Returns:
    clip_t (`float`): mean cosine over images.
    clip_t_per_image (`list[float]`): each image's cosine.
    clip_t_subject_macro (`float`): mean over subjects, when `subjects` is given.
    protocol (`dict`): backbone, preprocessing, text and aggregation.
Examples:
    >>> clip_t = evaluate.load("benchmark/metrics/clip_t")
    >>> clip_t.compute(predictions=[generated], references=["a dog in the jungle"])
"""

_CITATION = """
@inproceedings{ruiz2023dreambooth, title={DreamBooth: Fine Tuning Text-to-Image Diffusion Models for Subject-Driven Generation},
  author={Ruiz, Nataniel and Li, Yuanzhen and Jampani, Varun and Pritch, Yael and Rubinstein, Michael and Aberman, Kfir},
  booktitle={CVPR}, year={2023}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClipT(evaluate_metric.BackboneMetric):
    description = _DESCRIPTION
    citation = _CITATION
    inputs_description = _KWARGS_DESCRIPTION
    features = datasets.Features({"predictions": datasets.Image(), "references": datasets.Value("string")})
    embedder_class = ClipEmbedder
    default_backbone = DEFAULT_CLIP_BACKBONE

    def _compute(self, predictions, references, subjects=None):
        if len(predictions) != len(references):
            raise ValueError(f"got {len(predictions)} predictions and {len(references)} texts; pass one text per image.")
        images = [image.convert("RGB") for image in predictions]
        scores = paired_cosine(self.embedder.embed_images(images), self.embedder.embed_texts(list(references))).tolist()
        result = {"clip_t": sum(scores) / len(scores) if scores else None, "clip_t_per_image": scores}
        if subjects is not None:
            if len(subjects) != len(scores):
                raise ValueError(f"`subjects` has {len(subjects)} entries for {len(scores)} predictions; pass one per prediction.")
            by_subject = {}
            for subject, score in zip(subjects, scores):
                by_subject.setdefault(subject, []).append(score)
            means = [sum(v) / len(v) for v in by_subject.values()]
            result["clip_t_subject_macro"] = sum(means) / len(means)
        result["protocol"] = {
            "clip": self.embedder.protocol,
            "text": "a {class} {context} (class noun, no identifier token)",
            "scale": "cosine in [-1, 1]; not x100, not clamped",
            "aggregation": "mean over images",
        }
        return result

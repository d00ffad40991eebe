"""DreamBench DINO: cosine of DINO ViT-S/16 CLS tokens between generated and real images of a subject."""

import evaluate

from blipdiff_plugins.benchmark.dreambench.backbones import DEFAULT_DINO_BACKBONE
from blipdiff_plugins.benchmark.dreambench.dino import DinoEmbedder
from blipdiff_plugins.benchmark.dreambench import evaluate_metric  # a module, not the base classes: evaluate takes the first Metric class it finds

_DESCRIPTION = """
DINO score of DreamBench (DreamBooth, BLIP-Diffusion): the cosine similarity of the CLS token of a
self-supervised DINO ViT-S/16 between each generated image and each real image of its subject, with
preprocessing resize 256 (bicubic) -> centre crop 224 -> ImageNet mean/std. The result pools all
(generated, real) pairs (pair-weighted, as the BLIP-Diffusion authors); pass `subjects` to also get the
subject-macro mean. Choose another backbone (DINO ViT-S/8, DINOv2) by config name or `backbone=`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of PIL images or paths): generated images.
    references (`list` of `list` of PIL images or paths): the real images of each prediction's subject.
    subjects (`list[str]`, *optional*): each prediction's subject, for the subject-macro mean.
Returns:
    dino (`float`): mean cosine over all (generated, real) pairs.
    dino_per_image (`list[float]`): each prediction's mean over its references.
    num_pairs (`int`): number of pairs.
    dino_subject_macro (`float`): mean over subjects, when `subjects` is given.
    protocol (`dict`): backbone, preprocessing, reference set and aggregation.
Examples:
    >>> dino = evaluate.load("benchmark/metrics/dino")  # facebook/dino-vits16
    >>> dino = evaluate.load("benchmark/metrics/dino", "facebook/dinov2-small")
    >>> dino.compute(predictions=[generated], references=[[real_1, real_2]])
"""

_CITATION = """
@inproceedings{ruiz2023dreambooth, title={DreamBooth: Fine Tuning Text-to-Image Diffusion Models for Subject-Driven Generation},
  author={Ruiz, Nataniel and Li, Yuanzhen and Jampani, Varun and Pritch, Yael and Rubinstein, Michael and Aberman, Kfir},
  booktitle={CVPR}, year={2023}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Dino(evaluate_metric.PairwiseImageMetric):
    description = _DESCRIPTION
    citation = _CITATION
    inputs_description = _KWARGS_DESCRIPTION
    embedder_class = DinoEmbedder
    default_backbone = DEFAULT_DINO_BACKBONE
    metric_key = "dino"
    protocol_key = "dino"

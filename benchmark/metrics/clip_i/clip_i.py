"""DreamBench CLIP-I: cosine of CLIP ViT-B/32 image embeddings between generated and real images of a subject."""

import evaluate

from blipdiff_plugins.benchmark.dreambench.backbones import DEFAULT_CLIP_BACKBONE
from blipdiff_plugins.benchmark.dreambench.clip import ClipEmbedder
from blipdiff_plugins.benchmark.dreambench import evaluate_metric  # a module, not the base classes: evaluate takes the first Metric class it finds

_DESCRIPTION = """
CLIP-I score of DreamBench (DreamBooth, BLIP-Diffusion): the cosine similarity of CLIP ViT-B/32 image
embeddings (OpenAI CLIP preprocessing: resize 224 bicubic, centre crop 224, CLIP mean/std) between each
generated image and each real image of its subject. The result pools all (generated, real) pairs
(pair-weighted, as the BLIP-Diffusion authors); pass `subjects` to also get the subject-macro mean.
Choose another backbone (CLIP ViT-L/14) by config name or `backbone=`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of PIL images or paths): generated images.
    references (`list` of `list` of PIL images or paths): the real images of each prediction's subject.
    subjects (`list[str]`, *optional*): each prediction's subject, for the subject-macro mean.
Returns:
    clip_i (`float`): mean cosine over all (generated, real) pairs.
    clip_i_per_image (`list[float]`): each prediction's mean over its references.
    num_pairs (`int`): number of pairs.
    clip_i_subject_macro (`float`): mean over subjects, when `subjects` is given.
    protocol (`dict`): backbone, preprocessing, reference set and aggregation.
Examples:
    >>> clip_i = evaluate.load("benchmark/metrics/clip_i")  # openai/clip-vit-base-patch32
    >>> clip_i = evaluate.load("benchmark/metrics/clip_i", "openai/clip-vit-large-patch14")
    >>> clip_i.compute(predictions=[generated], references=[[real_1, real_2]])
"""

_CITATION = """
@inproceedings{ruiz2023dreambooth, title={DreamBooth: Fine Tuning Text-to-Image Diffusion Models for Subject-Driven Generation},
  author={Ruiz, Nataniel and Li, Yuanzhen and Jampani, Varun and Pritch, Yael and Rubinstein, Michael and Aberman, Kfir},
  booktitle={CVPR}, year={2023}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClipI(evaluate_metric.PairwiseImageMetric):
    description = _DESCRIPTION
    citation = _CITATION
    inputs_description = _KWARGS_DESCRIPTION
    embedder_class = ClipEmbedder
    default_backbone = DEFAULT_CLIP_BACKBONE
    metric_key = "clip_i"
    protocol_key = "clip"

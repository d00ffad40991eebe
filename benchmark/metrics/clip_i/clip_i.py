"""DreamBench CLIP-I: cosine of CLIP ViT-B/32 image embeddings between generated and real images of a subject."""

import datasets
import evaluate

from blipdiff_plugins.benchmark.backbones import DEFAULT_CLIP_BACKBONE
from blipdiff_plugins.benchmark.clip import ClipEmbedder
from blipdiff_plugins.benchmark.evaluate_support import (
    ReferenceSetCache,
    backbone_from_config_name,
    image_pair_scores,
    safe_config_name,
    summarise_pairs,
)

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
class ClipI(evaluate.Metric):
    def __init__(self, *args, backbone=None, device="cpu", batch_size=32, **kwargs):
        self._backbone_argument = backbone
        self._config_name_argument = kwargs.get("config_name", args[0] if args else None)
        self._device = device
        self._batch_size = batch_size
        super().__init__(*args, **kwargs)

    def _build_data_dir(self):
        self.config_name = safe_config_name(self.config_name)
        return super()._build_data_dir()

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Image(), "references": datasets.Sequence(datasets.Image())}
            ),
            reference_urls=["https://github.com/google/dreambooth", "https://arxiv.org/abs/2305.14720"],
        )

    def _download_and_prepare(self, dl_manager):
        # Loaded once here, never in _compute.
        backbone = backbone_from_config_name(self._config_name_argument, self._backbone_argument, DEFAULT_CLIP_BACKBONE)
        self.embedder = ClipEmbedder(backbone, device=self._device, batch_size=self._batch_size)
        self.reference_cache = ReferenceSetCache(self.embedder.embed_images)

    def _compute(self, predictions, references, subjects=None):
        pairs = image_pair_scores(self.embedder, self.reference_cache, predictions, references)
        result = summarise_pairs("clip_i", pairs, subjects)
        result["protocol"] = {
            "clip": self.embedder.protocol,
            "reference_set": "the references given for each prediction",
            "aggregation": "mean over all (generated, reference) pairs (pair-weighted)",
        }
        return result

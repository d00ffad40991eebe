"""Base classes of the ``evaluate`` modules in ``benchmark/metrics/`` (dino, clip_i, clip_t).

Each metric folder holds only its texts and a subclass naming its score, embedder and default
backbone; loading (once, in ``_download_and_prepare``), the cache-folder naming and the maths live here.
`evaluate` takes the first Metric class in a module file, so the files import this module, not its classes.
"""

from __future__ import annotations

import datasets
import evaluate

from .evaluate_support import ReferenceSetCache, backbone_from_config_name, image_pair_scores, safe_config_name, summarise_pairs

REFERENCE_URLS = ["https://github.com/google/dreambooth", "https://arxiv.org/abs/2305.14720"]


class BackboneMetric(evaluate.Metric):
    """An `evaluate.Metric` whose backbone comes from ``backbone=`` or the config name.

    Subclasses set ``description``, ``citation``, ``inputs_description``, ``features``,
    ``embedder_class`` and ``default_backbone``.
    """

    description: str
    citation: str
    inputs_description: str
    features: datasets.Features
    embedder_class: type
    default_backbone: str

    def __init__(self, *args, backbone=None, device="cpu", batch_size=32, **kwargs):  # evaluate.load passes its own kwargs
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
            description=self.description,
            citation=self.citation,
            inputs_description=self.inputs_description,
            features=self.features,
            reference_urls=REFERENCE_URLS,
        )

    def _download_and_prepare(self, dl_manager):
        # Loaded once here, never in _compute.
        backbone = backbone_from_config_name(self._config_name_argument, self._backbone_argument, self.default_backbone)
        self.embedder = self.embedder_class(backbone, device=self._device, batch_size=self._batch_size)


class PairwiseImageMetric(BackboneMetric):
    """DINO / CLIP-I: cosine between each generated image and each real image, pooled over all pairs."""

    features = datasets.Features({"predictions": datasets.Image(), "references": datasets.Sequence(datasets.Image())})
    metric_key: str  # "dino" or "clip_i": names the result keys
    protocol_key: str  # names the backbone's protocol entry

    def _download_and_prepare(self, dl_manager):
        super()._download_and_prepare(dl_manager)
        self.reference_cache = ReferenceSetCache(self.embedder.embed_images)

    def _compute(self, predictions, references, subjects=None):
        pairs = image_pair_scores(self.embedder, self.reference_cache, predictions, references)
        result = summarise_pairs(self.metric_key, pairs, subjects)
        result["protocol"] = {
            self.protocol_key: self.embedder.protocol,
            "reference_set": "the references given for each prediction",
            "aggregation": "mean over all (generated, reference) pairs (pair-weighted)",
        }
        return result

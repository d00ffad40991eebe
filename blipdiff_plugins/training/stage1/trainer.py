"""Stage-1 pre-training (BLIP-2 ITC + ITM + ITG over a frozen image encoder) on the training core."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core import TrainerCore, TrainingProgress
from .config import Stage1Config


@dataclass
class Stage1Result:
    """What `train_stage1` returns.

    Args:
        subject_encoder (`Blip2SubjectEncoder`): the trained Q-Former (query tokens, text embeddings, layers) over the
            frozen image encoder; its ``proj_layer`` is untrained (stage 2 trains it).
        heads (`Stage1Heads`): the ITC projections, the ITM head, the ITG head and the temperature.
        tokenizer: the BERT tokenizer of the captions (with the ``[DEC]`` BOS token).
        image_processor (`SubjectImageProcessor`): the image preprocessing.
        losses (`list[dict]`): per optimizer step, ``{"loss", "itc", "itm", "itg"}``.
        retrieval (`list[dict]`): the retrieval evaluation of each validation (recall@1/5 both ways).
        output_dir (`Path`, *optional*): the saved folder (``--subject-encoder-from`` of stage 2).
    """

    subject_encoder: Any
    heads: Any
    tokenizer: Any
    image_processor: Any
    losses: list[dict] = field(default_factory=list)
    retrieval: list[dict] = field(default_factory=list)
    output_dir: Path | None = None


class Stage1Trainer(TrainerCore):
    """Placeholder: the implementation follows (see `train_stage1` for the contract)."""

    description = "stage-1 pre-training"


def train_stage1(
    data,
    *,
    config: Stage1Config | Mapping[str, Any] | None = None,
    subject_encoder=None,
    image_encoder=None,
    tokenizer=None,
    image_processor=None,
    validation_data=None,
    callback: Callable[[TrainingProgress], None] | None = None,
) -> Stage1Result:
    """Pre-train a BLIP-2 Q-Former with ITC, ITM and ITG over a frozen image encoder (BLIP-Diffusion's stage 1).

    The start is, in this order: `subject_encoder` (a `Blip2SubjectEncoder`, trained in place; its vision model is
    the frozen image encoder), else ``config.init`` (``"random"``, a stage-1 folder, a BLIP-Diffusion folder, a
    `Blip2ForImageTextRetrieval` folder or a LAVIS checkpoint) with the image encoder from `image_encoder` (a
    `CLIPVisionModel`, or any model whose ``vision_model`` is one) or ``config.image_encoder``. With
    ``config.output_dir`` the result is saved there as a folder that stage 2 takes as ``subject_encoder_from``
    (``subject_encoder/``, ``subject_tokenizer/``, ``subject_image_processor/``, ``stage1_heads/``, ``stage1.json``,
    a model card ``README.md``), with ``checkpoints/`` and ``retrieval/step-<step>.json``.

    Args:
        data: image-caption records: a folder of images with ``metadata.jsonl``/``metadata.csv`` (``file_name`` and
            ``caption``), a ``save_to_disk`` folder, parquet or webdataset shards, or a `datasets.Dataset` /
            `IterableDataset` with ``image`` and ``caption`` columns (``config.columns`` maps other names).
        config (`Stage1Config` or `dict`, *optional*): every setting; BLIP-2's defaults when omitted.
        subject_encoder (`Blip2SubjectEncoder`, *optional*): start from this encoder instead of ``config.init``.
        image_encoder (`CLIPVisionModel`, *optional*): the frozen image encoder of a ``config.init`` start.
        tokenizer (*optional*): the BERT tokenizer of the captions; it must have a BOS token (``[DEC]``). Default:
            the start folder's, else ``builtin/tokenizers.build_bert_tokenizer()`` sized to the Q-Former.
        image_processor (`SubjectImageProcessor`, *optional*): default: the start folder's, else one at the image
            encoder's size.
        validation_data (*optional*): held-out image-caption pairs (the same kinds as `data`); at each validation
            the first ``config.retrieval_pairs`` give image->text and text->image recall@1/5.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.

    Returns:
        `Stage1Result`.
    """
    return Stage1Trainer(data, config=config, subject_encoder=subject_encoder, image_encoder=image_encoder, tokenizer=tokenizer,
                         image_processor=image_processor, validation_data=validation_data, callback=callback).train()

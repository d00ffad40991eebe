"""Stage-1 pre-training (BLIP-2 ITC + ITM + ITG over a frozen image encoder, SYSTEM.md section 3) on the training core.

Each micro-batch of image-caption pairs gives BLIP-2's three losses (`Stage1Module`); their weighted sum trains the
query tokens, the Q-Former, its text embeddings and the heads, with LAVIS's warm-up + cosine learning rate. The loop,
accumulation, mixed precision, checkpoints and exact resume are the training core's; the result is a folder that
stage 2 starts from (`output.py`); each validation writes the held-out retrieval recall (`retrieval.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping

import torch

from ...loaders.fingerprint import base_model_fingerprint
from ..core import TrainerCore, TrainingProgress
from ..records import PretrainRecords, tokenize_as_found
from ..settings import resolve_config
from .config import STAGE1_FIELDS, Stage1Config
from .module import Stage1Module
from .output import MARKER_FILE, save_stage1_folder, stage1_model_card
from .retrieval import caption_positives, recall_at_k, retrieval_similarity
from .starting_points import load_starting_point

LOSS_NAMES = ("itc", "itm", "itg")
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
    """Stage-1 pre-training of a BLIP-2 Q-Former; `train_stage1` is the one-call form and documents the arguments."""

    def __init__(self, data, *, config: Stage1Config | Mapping[str, Any] | None = None, subject_encoder=None, image_encoder=None,
                 tokenizer=None, image_processor=None, validation_data=None, callback: Callable[[TrainingProgress], None] | None = None):
        config = resolve_config(config, Stage1Config)
        super().__init__(config, callback=callback)
        for folder in (self.output_dir, *self.output_dir.parents) if self.output_dir is not None else ():
            if folder.exists() and not folder.is_dir():  # refused before training, not at the save after it
                raise ValueError(f"`output_dir`: {str(folder)!r} is a file, not a folder; choose another `output_dir`.")
        if self.output_dir is not None and (self.output_dir / MARKER_FILE).exists() and config.resume is None:
            raise ValueError(f"`output_dir`: {str(self.output_dir)!r} already holds a stage-1 result; pass a new folder (or `resume` to continue its checkpoints).")
        if config.validation_every is not None and validation_data is None:
            raise ValueError("`validation_every` needs `validation_data`: held-out image-caption pairs for the retrieval evaluation.")
        self.records = PretrainRecords(data, columns=dict(config.columns), streaming=config.streaming, fields=STAGE1_FIELDS)
        if self.records.num_records is not None and config.batch_size > self.records.num_records:
            # every batch would hold each pair several times (BLIP-2's default batch is for its 129M pairs)
            raise ValueError(
                f"`batch_size` {config.batch_size} is more than the {self.records.num_records} pairs of `data`; pass a `batch_size` of at "
                f"most {self.records.num_records} (2 or more)."
            )
        self.validation_records = None
        if validation_data is not None:
            try:
                self.validation_records = PretrainRecords(validation_data, columns=dict(config.columns), streaming=False, fields=STAGE1_FIELDS)
            except (ValueError, FileNotFoundError) as error:  # the reader names its input `data`; this one is `validation_data`
                error.args = (str(error).replace("`data`", "`validation_data`"), *error.args[1:])
                raise
        start = load_starting_point(config, subject_encoder=subject_encoder, image_encoder=image_encoder, tokenizer=tokenizer,
                                    image_processor=image_processor)
        self.encoder, self.heads, self.tokenizer, self.image_processor = start.encoder, start.heads, start.tokenizer, start.image_processor
        self.init_description = start.description
        self.description = "stage-1 pre-training (ITC+ITM+ITG)"
        self.loss_parts: list[dict[str, float]] = []
        self.retrieval: list[dict[str, Any]] = []

    # --------------------------------------------------------------------------------- core hooks
    def make_accelerator(self, *, log_with=None, project_dir=None):
        import importlib.util

        report_to = self.config.report_to
        if report_to == "auto":
            report_to = "tensorboard" if self.output_dir is not None and importlib.util.find_spec("tensorboard") else "none"
        if report_to == "tensorboard" and self.output_dir is None:
            raise ValueError("`report_to='tensorboard'` needs `output_dir`: logs are written to <output_dir>/logs.")
        if report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
            raise ImportError("`report_to='tensorboard'` needs tensorboard: pip install tensorboard (or pass report_to='none').")
        logging = report_to != "none"
        accelerator = super().make_accelerator(log_with=report_to if logging else None, project_dir=self.output_dir / "logs" if logging else None)
        if logging:
            settings = {key: value if isinstance(value, (int, float, str, bool)) else str(value) for key, value in self.config.to_dict().items()}
            accelerator.init_trackers("blipdiff_stage1", config=settings)
        return accelerator

    def build_module(self) -> Stage1Module:
        config, encoder, heads = self.config, self.encoder, self.heads
        encoder.to(self.device)
        heads.to(self.device)
        self.start_fingerprint = base_model_fingerprint(SimpleNamespace(encoder=encoder, heads=heads), names=("encoder", "heads"))
        self.data_fingerprint = self.records.fingerprint()
        self.micro_batch_size = config.per_process_batch(self.accelerator.num_processes)
        encoder.requires_grad_(False)
        encoder.eval()  # the image encoder stays frozen, in eval mode
        for part in (encoder.embeddings, encoder.qformer):
            part.requires_grad_(True)
            part.train()
        encoder.query_tokens.requires_grad_(True)
        heads.requires_grad_(True)
        heads.train()
        if config.gradient_checkpointing:
            encoder.qformer.gradient_checkpointing_enable()
        return Stage1Module(encoder, heads)

    def optimizer_settings(self) -> dict[str, Any]:
        config = self.config
        return {"learning_rate": config.learning_rate_at(1), "betas": (config.adam_beta1, config.adam_beta2),
                "epsilon": config.adam_epsilon, "weight_decay": config.weight_decay}

    def make_data_order(self):
        accelerator = self.accelerator
        return self.records.order(seed=self.config.seed, rank=accelerator.process_index, world=accelerator.num_processes, shuffle=self.config.shuffle)

    def run_state(self) -> dict[str, Any]:
        return {**super().run_state(), "recipe": self.config.recipe(), "start_fingerprint": self.start_fingerprint,
                "data_fingerprint": self.data_fingerprint, "loss_parts": self.loss_parts}

    def resume_checks(self):
        return (("recipe", "stage-1 settings"), ("start_fingerprint", "starting model"), ("data_fingerprint", "data"), *super().resume_checks())

    def _load_resume(self) -> None:
        super()._load_resume()
        self.loss_parts = list(self.resumed_state.get("loss_parts", []))
        # The reports up to the checkpoint (a checkpoint is written before that step's validation).
        import json

        reports = sorted((self.output_dir / "retrieval").glob("step-*.json")) if self.output_dir is not None else []
        self.retrieval = [report for report in (json.loads(path.read_text(encoding="utf-8")) for path in reports) if report["step"] <= self.start_step]

    def encode_pairs(self, records: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pixels, caption ids (``[CLS]`` first) and mask, and the ITG ids (``[DEC]`` first) of decoded records."""
        pixel_values = self.image_processor.preprocess([record["image"] for record in records], argument="image")
        tokens = tokenize_as_found(self.tokenizer, [record["caption"] for record in records], max_length=self.config.max_text_length)
        decoder_input_ids = tokens.input_ids.clone()
        decoder_input_ids[:, 0] = self.tokenizer.bos_token_id  # BLIP-2: [DEC] replaces [CLS] for ITG
        return {"pixel_values": pixel_values.to(self.device), "input_ids": tokens.input_ids.to(self.device),
                "attention_mask": tokens.attention_mask.to(self.device), "decoder_input_ids": decoder_input_ids.to(self.device)}

    def next_micro_batch(self) -> dict[str, torch.Tensor]:
        return self.encode_pairs(self.data_order.next_records(self.micro_batch_size))

    def compute_loss(self, batch) -> torch.Tensor:
        config = self.config
        losses = self.module(batch["pixel_values"], batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"],
                             generator=self.noise_generator, duplicates_positive=config.duplicate_captions_are_positives,
                             label_smoothing=config.label_smoothing)
        for name in LOSS_NAMES:
            self._step_parts[name] += float(losses[name].detach()) / config.gradient_accumulation_steps
        return config.itc_weight * losses["itc"] + config.itm_weight * losses["itm"] + config.itg_weight * losses["itg"]

    def training_step(self) -> float:
        """LAVIS's learning rate for this step, then the core's step; records the three losses."""
        step = len(self.losses) + 1
        learning_rate = self.config.learning_rate_at(step)
        for group in self.raw_optimizer().param_groups:
            group["lr"] = learning_rate
        self._step_parts = dict.fromkeys(LOSS_NAMES, 0.0)
        loss = super().training_step()
        self.loss_parts.append(self._step_parts)
        self.log({**self._step_parts, "learning_rate": learning_rate, "temperature": float(self.heads.temperature.detach())}, step)
        return loss

    # --------------------------------------------------------------------------------- validation and result
    def _retrieval_inputs(self) -> dict[str, torch.Tensor]:
        if not hasattr(self, "_held_out"):
            reader = self.validation_records.order(seed=self.config.seed, rank=0, world=1, shuffle=False)
            count = min(self.config.retrieval_pairs, self.validation_records.num_records)
            self._held_out = self.encode_pairs(reader.next_records(count))
        return self._held_out

    @torch.no_grad()
    def evaluate_retrieval(self) -> dict[str, Any]:
        """Recall@1/5 both ways on the held-out pairs (the first ``retrieval_pairs`` of `validation_data`)."""
        module = self.unwrapped_module
        modes = {part: part.training for part in module.modules()}
        module.eval()
        try:
            pairs = self._retrieval_inputs()
            similarity = retrieval_similarity(module, pairs["pixel_values"], pairs["input_ids"], pairs["attention_mask"])
        finally:
            for part, was_training in modes.items():
                part.training = was_training
        return {"pairs": similarity.shape[0], **recall_at_k(similarity.float().cpu(), caption_positives(pairs["input_ids"].cpu()))}

    def validate(self, step: int) -> None:
        """On the main process: the retrieval evaluation, written to ``retrieval/step-<step>.json`` and logged."""
        if self.accelerator.is_main_process and self.validation_records is not None:
            from ...utils.atomic import write_json

            report = {"step": step, **self.evaluate_retrieval()}
            self.retrieval.append(report)
            if self.output_dir is not None:
                write_json(self.output_dir / "retrieval" / f"step-{step:06d}.json", report)
            self.log({f"retrieval/{way}/{name}": value for way in ("image_to_text", "text_to_image") for name, value in report[way].items()}, step)
        self.accelerator.wait_for_everyone()
        return None

    def train(self) -> Stage1Result:
        """Run to ``config.steps`` (from the resume point); returns the result (saved if `output_dir`)."""
        try:
            self.run()
            if self.validation_records is not None and not self.config.validation_every:
                self.validate(self.config.steps)  # our choice: held-out pairs without an interval are evaluated once, at the end
        finally:
            self._restore_modules()
        if self.output_dir is not None and self.accelerator.is_main_process:
            save_stage1_folder(self.output_dir, encoder=self.encoder, heads=self.heads, tokenizer=self.tokenizer,
                               image_processor=self.image_processor, card=self.model_card(),
                               info={"steps": len(self.losses), "init": self.init_description})
        self.accelerator.wait_for_everyone()
        if getattr(self.accelerator, "trackers", None):
            self.accelerator.end_training()
        losses = [{"loss": loss, **parts} for loss, parts in zip(self.losses, self.loss_parts)]
        return Stage1Result(self.encoder, self.heads, self.tokenizer, self.image_processor, losses, list(self.retrieval), self.output_dir)

    def _restore_modules(self) -> None:
        for part in (self.encoder, self.heads):
            part.eval()
            part.requires_grad_(False)
        if self.config.gradient_checkpointing:
            self.encoder.qformer.gradient_checkpointing_disable()

    def model_card(self) -> str:
        records = self.records
        data = {"source": records.source, "format": records.format, "records": records.num_records, "columns": dict(records.columns)}
        run = {"steps": len(self.losses), "processes": self.accelerator.num_processes, "mixed_precision": self.mixed_precision,
               "final_losses": ({"loss": self.losses[-1], **self.loss_parts[-1]} if self.losses else None), "init": self.init_description,
               "num_query_tokens": self.encoder.num_query_tokens, "temperature": float(self.heads.temperature.detach())}
        return stage1_model_card(settings=self.config.to_dict(), data=data, run=run, retrieval=self.retrieval[-1] if self.retrieval else None)


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
            (every ``config.validation_every`` steps, else once at the end) the first ``config.retrieval_pairs`` give
            image->text and text->image recall@1/5.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.

    Returns:
        `Stage1Result`.
    """
    return Stage1Trainer(data, config=config, subject_encoder=subject_encoder, image_encoder=image_encoder, tokenizer=tokenizer,
                         image_processor=image_processor, validation_data=validation_data, callback=callback).train()

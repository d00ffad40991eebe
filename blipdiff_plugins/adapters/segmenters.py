"""Subject segmenters for the stage-2 data builder: a confidence map in [0, 1] at the image's size.

``clipseg``: transformers' `CLIPSegForImageSegmentation`, prompted with the subject's category word, as
the paper does (default ``CIDAS/clipseg-rd64-refined``). ``mask``: the record's own mask (OpenImages-style
records). Both take batches: ``segmenter(images, subjects, masks)`` -> one ``(height, width)`` map each.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import PIL.Image
import torch

DEFAULT_CLIPSEG = "CIDAS/clipseg-rd64-refined"


class MaskSegmenter:
    """The record's own mask as the confidence map (no model); every record must carry one."""

    needs_mask = True
    name = "mask"

    @classmethod
    def load(cls, *, model_id: str | None = None, device: str | torch.device = "cpu", batch_size: int = 8) -> "MaskSegmenter":
        if model_id is not None:
            raise ValueError(f"`model_id`: the 'mask' segmenter uses the records' masks and takes no model, got {model_id!r}.")
        return cls()

    def __call__(self, images: Sequence[PIL.Image.Image], subjects: Sequence[str], masks: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        maps = []
        for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
            if mask is None:
                raise ValueError(f"`masks[{index}]` is None: the 'mask' segmenter needs a mask per record; use the 'clipseg' segmenter otherwise.")
            mask = np.asarray(mask, dtype=np.float32)
            if mask.shape != (image.height, image.width):
                raise ValueError(f"`masks[{index}]` has shape {mask.shape}, its image is {image.height}x{image.width} (height x width).")
            maps.append(np.clip(mask, 0.0, 1.0))
        return maps


class CLIPSegSegmenter:
    """CLIPSeg prompted with the subject word: sigmoid of its logits, bilinearly resized to each image.

    Args:
        model (`CLIPSegForImageSegmentation`): the segmentation model (eval mode is set).
        processor (`CLIPSegProcessor`): its processor (tokenizer and image processor).
        prompt_template (`str`, defaults to `"{subject}"`): the text prompt; CLIPSeg was trained on bare class names.
        batch_size (`int`, defaults to 8): images per forward pass.
    """

    needs_mask = False
    name = "clipseg"

    def __init__(self, model, processor, *, prompt_template: str = "{subject}", batch_size: int = 8):
        if "{subject}" not in prompt_template:
            raise ValueError(f"`prompt_template` must contain '{{subject}}', got {prompt_template!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        self.model = model.eval()
        self.processor = processor
        self.prompt_template = prompt_template
        self.batch_size = batch_size

    @classmethod
    def load(cls, *, model_id: str | None = None, device: str | torch.device = "cpu", batch_size: int = 8) -> "CLIPSegSegmenter":
        """Load a CLIPSeg model and processor (Hub id or local folder; default ``CIDAS/clipseg-rd64-refined``)."""
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        model_id = model_id or DEFAULT_CLIPSEG
        try:
            model = CLIPSegForImageSegmentation.from_pretrained(model_id).to(device)
            processor = CLIPSegProcessor.from_pretrained(model_id)
        except OSError as error:
            other = f"a Hub id such as {DEFAULT_CLIPSEG!r}" if model_id != DEFAULT_CLIPSEG else f"a copy of {DEFAULT_CLIPSEG!r} saved where the Hub is reachable"
            raise ValueError(
                f"`model_id`: cannot load a CLIPSeg model and processor from {model_id!r} ({error}); pass a folder saved with "
                f"save_pretrained ({other}), or segment with the records' own masks: segmenter='mask'."
            ) from error
        return cls(model, processor, batch_size=batch_size)

    @torch.no_grad()
    def __call__(self, images: Sequence[PIL.Image.Image], subjects: Sequence[str], masks: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
        if len(images) != len(subjects):
            raise ValueError(f"`subjects` must have one word per image: {len(subjects)} words for {len(images)} images.")
        device = self.model.device
        maps: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            prompts = [self.prompt_template.format(subject=subject) for subject in subjects[start : start + self.batch_size]]
            inputs = self.processor(text=prompts, images=batch, padding=True, return_tensors="pt").to(device)
            logits = self.model(**inputs).logits
            logits = logits.reshape(len(batch), *logits.shape[-2:])  # (batch, height, width); one image comes squeezed
            probabilities = torch.sigmoid(logits.float())[:, None]
            for image, probability in zip(batch, probabilities):
                resized = torch.nn.functional.interpolate(probability[None], size=(image.height, image.width), mode="bilinear", align_corners=False)
                maps.append(resized[0, 0].clamp(0.0, 1.0).cpu().numpy())
        return maps


def tiny_clipseg(*, seed: int = 0, image_size: int = 64, batch_size: int = 8) -> CLIPSegSegmenter:
    """A CLIPSeg with a tiny random configuration and an in-code tokenizer (offline tests and benchmarks)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, CLIPTokenizer, ViTImageProcessor

    # CLIP's byte-level BPE with no merges: every character a token, so any word tokenizes, offline.
    symbols = sorted(ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(symbols + [symbol + "</w>" for symbol in symbols] + ["<|startoftext|>", "<|endoftext|>"])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    config = CLIPSegConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77, **special),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=image_size, patch_size=16),
        projection_dim=16,
        extract_layers=(0, 1),
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPSegForImageSegmentation(config)
    # CIDAS/clipseg-rd64-refined's image processor settings (ImageNet mean/std, bilinear), at the tiny size.
    image_processor = ViTImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=PIL.Image.BILINEAR,
    )
    return CLIPSegSegmenter(model, CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer), batch_size=batch_size)

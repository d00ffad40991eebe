"""Settings of the toy UMM run, without torch (the command line reads the defaults): the toy CLIP's and the MLP's."""

from __future__ import annotations

import dataclasses

from ...utils.dict_config import DictRoundTrip
from ...utils.checks import check_non_negative_int, check_positive_floats, check_positive_ints, check_shares
from blipdiff_plugins.toyworld.appearances import APPEARANCE_NAMES
from blipdiff_plugins.toyworld.shapes import SHAPE_NAMES

CAPTION_TEMPLATE = "a {subject} {caption}"
# Our toy defaults for `UMMTrainConfig` (the paper's numbers are not public; these fit a 64-px model on a CPU):
# an MLP of width 256 for a 64-wide text encoder, a higher learning rate than the SD default for a small MLP.
TOY_UMM_DEFAULTS = {
    "steps": 400,
    "batch_size": 16,
    "learning_rate": 1e-3,
    "mlp_hidden_size": 256,
    "checkpoint_every": 100,
    "mixed_precision": "no",
    "caption_template": CAPTION_TEMPLATE,
    "validation_prompts": ("a {subject} on grass at the left, small", "a {subject} on bricks at the top, large"),
    "validation_steps": 25,
}


CAPTION_CONTEXTS = ("background", "full")


@dataclasses.dataclass(frozen=True)
class ToyClipConfig(DictRoundTrip):
    """Sizes and schedule of the toy CLIP (our choices: small enough to train in minutes on a CPU).

    Args:
        seed (`int`, defaults to 0): weights, render stream and caption draws.
        steps (`int`, defaults to 1500): optimizer steps (about 5 CPU-minutes with one thread; docs/UMM.md has its accuracy).
        batch_size (`int`, defaults to 56): renders per step, each of a different training subject (at most 56).
        learning_rate (`float`, defaults to 1e-3): peak AdamW learning rate (warmup, then cosine decay).
        image_size (`int`, defaults to 64): render side and the tower's input size.
        patch_size (`int`, defaults to 8): ViT patch side.
        hidden_size (`int`, defaults to 64): width of both towers.
        vision_layers (`int`, defaults to 2), text_layers (`int`, defaults to 2): transformer depths.
        projection_dim (`int`, defaults to 64): width of the shared embedding space (``image_embeds``).
        context_rate (`float`, defaults to 0.5): share of captions that also name the context (`caption_context`).
        caption_context (`str`, defaults to "background"): what those captions name: "background" (``"a tiger star
            on grass"``, the toy UMM's) or "full", the background, position and size (``"a tiger star on grass at the
            left, small"``, the stage-1 caption form; recipe v2's image encoder, our choice: a CLIP trained on
            background words alone keeps too little of where and how large the subject is for stage 1 to retrieve
            captions by position and size, docs/toyworld_plan.md).
        warmup_fraction (`float`, defaults to 0.05): warmup share of the steps.
        checkpoint_every (`int`, defaults to 200): steps between checkpoints.
        eval_renders_per_subject (`int`, defaults to 32): fresh renders per subject of the retrieval evaluation.
    """

    seed: int = 0
    steps: int = 1500
    batch_size: int = 56
    learning_rate: float = 1e-3
    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 64
    vision_layers: int = 2
    text_layers: int = 2
    projection_dim: int = 64
    context_rate: float = 0.5
    caption_context: str = "background"
    warmup_fraction: float = 0.05
    checkpoint_every: int = 200
    eval_renders_per_subject: int = 32

    def __post_init__(self):
        fields = lambda *names: {name: getattr(self, name) for name in names}
        check_positive_ints(**fields("steps", "batch_size", "image_size", "patch_size", "hidden_size", "vision_layers", "text_layers",
                                     "projection_dim", "checkpoint_every", "eval_renders_per_subject"))
        check_non_negative_int("seed", self.seed)
        training = len(SHAPE_NAMES) * (len(APPEARANCE_NAMES) - 1)  # one held-out appearance per shape
        if self.batch_size > training:
            raise ValueError(f"`batch_size` must be at most {training} (one render per training subject), got {self.batch_size}.")
        if self.image_size % self.patch_size:
            raise ValueError(f"`image_size` {self.image_size} must be a multiple of `patch_size` {self.patch_size}.")
        check_shares(context_rate=self.context_rate, warmup_fraction=self.warmup_fraction)
        if self.caption_context not in CAPTION_CONTEXTS:
            raise ValueError(f"`caption_context`: {self.caption_context!r} is not one of {', '.join(CAPTION_CONTEXTS)}.")
        check_positive_floats(learning_rate=self.learning_rate)


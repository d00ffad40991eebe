"""The recipe's plan as data: sizes, steps and schedule (no torch import, so the command line builds fast)."""

from __future__ import annotations

import dataclasses

from ...utils.dict_config import DictRoundTrip
from ...utils.checks import check_positive_floats, check_positive_ints, check_shares
from .sizes import toy_size

# In run order. "image_encoder" and "qformer" are recipe v2's (the paper's stage 1 and the image encoder it stands on);
# a config with `qformer_pretraining` off skips them (`active_stages`).
STAGES = ("vae", "t2i", "image_encoder", "qformer", "prompted")
PAPER_STAGES = ("image_encoder", "qformer")
IMAGE_ENCODER_MODES = ("frozen", "trainable")
PREDICTION_TYPES = ("epsilon", "v_prediction")
# The toy model is trained on single captions ("a {subject} {context}"), so its pipelines repeat prompts once.
TOY_PROMPT_REPS = 1
# Settings added after runs were recorded, with the value those runs used (their recipe.json lacks the key).
SETTINGS_BEFORE_THEY_EXISTED = {"snr_shift": 1.0, "prompted_ema_decay": 0.0, "qformer_pretraining": False,
                                "prompted_image_encoder": "trainable", "prompted_two_subject_rate": 0.0,
                                "image_encoder_caption_context": "background"}
# The least share of held-out renders the oracle must read right through the stage-1 VAE (`vae_gate.py`).
DEFAULT_VAE_GATE = 0.95


@dataclasses.dataclass(frozen=True)
class RecipeConfig(DictRoundTrip):
    """Sizes, steps and schedule of the recipe (the defaults are the 2-hour plan of docs/toyworld_plan.md).

    Args:
        size (`str`, defaults to "s2"): a `TOY_SIZES` name (factor-2 latents since run 4, whose stages 1-3 fit
            the 2 hours: docs/toyworld_plan.md).
        image_size (`int`, defaults to 64): render and model side.
        seed (`int`, defaults to 0): weights, data stream and noise.
        prediction_type (`str`, defaults to "v_prediction"): what the U-Net predicts, in the scheduler's config and so in
            every stage, fine-tune and sampler: "epsilon" (Stable Diffusion 1.x) or "v_prediction" (SD 2.x), whose
            loss weighs the clean-image error at the noisiest timesteps by 1 + SNR instead of SNR (about 0.005
            there), the timesteps where the layout (shape, position) is decided.
        zero_terminal_snr (`bool`, defaults to `True`): rescale Stable Diffusion's betas so the last timestep is
            pure noise (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps Are Flawed"), sampled
            with DDIM's trailing timesteps. With the released schedule the noisiest training latent still keeps
            sqrt(0.0047) of the image; over a shape of ~100 latent pixels that is enough to see where the shape is,
            so the model learns to follow that leak and, started from pure noise, draws where the noise happens to
            point. Needs "v_prediction" (the noise cannot be predicted from pure noise). With v-prediction and the
            moving average, the defaults since run 3 (docs/toyworld_plan.md): on the stage-2 probe, appearance
            0.24 -> 0.98 and size 0.74 -> 0.95; shape and position stayed at chance until `snr_shift` (run 4).
        snr_shift (`float`, defaults to 4): divides every timestep's signal-to-noise ratio by its square (the
            schedule shift of Hoogeboom et al. 2023 and Stable Diffusion 3; 1 keeps the schedule). Our choice for the
            toy world: iid noise hides a coarse layout (where a shape is, its outline) long after it hides pixels, so
            with the plain schedule the model finds the layout in the noise instead of reading it from the caption.
            On the stage-2 probe after 3000 steps (run 4, docs/toyworld_plan.md): position 0.19 -> 1.0, shape
            0.21 -> 0.67.
        vae_steps (`int`), vae_batch_size (`int`), vae_learning_rate (`float`), vae_kl_weight (`float`): stage 1.
        t2i_steps (`int`), t2i_batch_size (`int`), t2i_learning_rate (`float`): stage 2.
        t2i_snr_gamma (`float`, defaults to 0): min-SNR-gamma loss weighting of stage 2 (Hang et al. 2023: each
            timestep's loss times min(SNR, gamma) / SNR, which spends less of the model on nearly clean latents);
            0 turns it off.
        t2i_ema_decay (`float`, defaults to 0.999): when positive, stage 2 keeps an exponential moving average of the
            U-Net and text-encoder weights with this decay and saves the averaged weights (diffusers' `EMAModel`, as
            its text-to-image script's ``--use_ema``); 0 saves the last step's weights.
        caption_dropout (`float`, defaults to 0.1): stage 2 share of empty captions (classifier-free guidance).
        t2i_appearance_rate (`float`, defaults to 0.5): stage 2 share of captions that name the appearance
            ("a tiger star on grass ..."); the rest name the category only. Our choice: the toy text encoder then
            knows appearance words as Stable Diffusion knows attribute words (stage 3 teaches the subject encoder
            to say them), and the category word alone draws a random appearance (the text-only floor).
        prompted_records (`int`), prompted_steps (`int`), prompted_batch_size (`int`), prompted_learning_rate
            (`float`), subject_drop_rate (`float`, defaults to 0.15): stage 3 (data-builder records rendered from
            the training split; steps and schedule of the pre-trainer; the paper's subject drop).
        prompted_ema_decay (`float`, defaults to 0.999): when positive, stage 3 saves a moving average of its
            trained weights (the pre-trainer's ``ema``; diffusers' `EMAModel`, whose decay warm-up caps it at
            (1 + step) / (10 + step), 0.996 at step 2400); 0 saves the last step's weights. Our choice, since run 5
            (docs/toyworld_plan.md): at the paper's constant learning rate the last step's weights are one noisy
            sample; the rerun of run 4 scored 0.661 at its last step and 0.740 at its checkpoint 200 steps earlier.
        qformer_pretraining (`bool`, defaults to `True`): recipe v2, the paper's way (docs/toyworld_plan.md, "Recipe v2"):
            before the prompted stage, train the toy image encoder contrastively on the toy world (stage
            "image_encoder": the toy CLIP of `toy_clip`, whose vision tower has the subject encoder's sizes) and then
            BLIP-2's stage 1 (stage "qformer": ITC, ITM and ITG over that frozen encoder, `training.stage1`) on toy
            image-caption pairs; the prompted stage starts from that subject encoder. `False` is the recipe of runs
            1-5 (the image encoder and the Q-Former start random in the prompted stage).
        prompted_image_encoder (`str`, defaults to "frozen"): whether the prompted stage trains the image encoder:
            "frozen" (the paper, which freezes its CLIP) or "trainable" (runs 1-5, whose encoder started random; with
            `qformer_pretraining`, the ablation "stage 1, encoder trainable in stage 2"). "frozen" needs
            `qformer_pretraining` (a frozen random encoder keeps no texture detail).
        image_encoder_steps (`int`), image_encoder_batch_size (`int`, at most 56, one render per training subject),
            image_encoder_learning_rate (`float`): the toy CLIP stage (`ToyClipConfig`; towers at the size's vision
            width, depth and patch).
        image_encoder_caption_context (`str`, defaults to "full"): what the toy CLIP's captions name beside the
            subject (`ToyClipConfig.caption_context`): "full" (background, position and size; our choice, so that
            the frozen encoder keeps where and how large the subject is, which stage 1's captions name) or
            "background".
        qformer_records (`int`), qformer_steps (`int`), qformer_batch_size (`int`), qformer_learning_rate (`float`):
            the stage-1 Q-Former stage: image-caption pairs rendered from the training split (caption
            ``"a {appearance} {shape} {context}"``, our choice: a toy caption names everything in the picture, as
            BLIP-2's captions describe a photo), steps, pairs per step (ITC negatives) and peak learning rate
            (linear warm-up over `warmup_fraction`, cosine decay; 2e-3, our choice for the toy widths: at 5e-4 the ITM
            head never left its prior, docs/toyworld_plan.md "Stage-1 retrieval").
        prompted_two_subject_rate (`float`, defaults to 0.25): the share of prompted-stage records that are toy-world
            two-subject scenes (issue 28, our choice; `pair_records.py`): training pairs at two opposite positions,
            captioned ``"a star at the left and a heart at the right on grass"``, each subject encoded from its own
            render elsewhere. 0 is the one-subject recipe of runs 1-5; below 1.
        warmup_fraction (`float`, defaults to 0.05): warmup share of each stage's steps.
        checkpoint_every (`int`, defaults to 200): steps between checkpoints.
    """

    size: str = "s2"
    image_size: int = 64
    seed: int = 0
    prediction_type: str = "v_prediction"
    zero_terminal_snr: bool = True
    snr_shift: float = 4.0
    vae_steps: int = 800
    vae_batch_size: int = 32
    vae_learning_rate: float = 1e-3
    vae_kl_weight: float = 1e-6
    t2i_steps: int = 3000
    t2i_batch_size: int = 32
    t2i_learning_rate: float = 5e-4
    t2i_snr_gamma: float = 0.0
    t2i_ema_decay: float = 0.999
    caption_dropout: float = 0.1
    t2i_appearance_rate: float = 0.5
    prompted_records: int = 8192
    prompted_steps: int = 2400
    prompted_batch_size: int = 16
    prompted_learning_rate: float = 2e-4
    subject_drop_rate: float = 0.15
    prompted_ema_decay: float = 0.999
    qformer_pretraining: bool = True
    prompted_image_encoder: str = "frozen"
    image_encoder_steps: int = 1500
    image_encoder_batch_size: int = 56
    image_encoder_learning_rate: float = 1e-3
    image_encoder_caption_context: str = "full"
    qformer_records: int = 8192
    qformer_steps: int = 1200
    qformer_batch_size: int = 64
    qformer_learning_rate: float = 2e-3
    prompted_two_subject_rate: float = 0.25
    warmup_fraction: float = 0.05
    checkpoint_every: int = 200

    @classmethod
    def from_recorded(cls, recorded: dict) -> "RecipeConfig":
        """The settings of a run's recipe.json, a key added since it was written read as that run used it."""
        return cls.from_dict({**SETTINGS_BEFORE_THEY_EXISTED, **recorded})

    def active_stages(self) -> tuple[str, ...]:
        """The stages this config runs, in order (`qformer_pretraining` off skips the paper's two)."""
        return tuple(stage for stage in STAGES if self.qformer_pretraining or stage not in PAPER_STAGES)

    def toy_clip_config(self):
        """The `ToyClipConfig` of the "image_encoder" stage: its vision tower has this size's subject-encoder sizes."""
        from .toy_umm_config import ToyClipConfig

        spec = toy_size(self.size)
        return ToyClipConfig(seed=self.seed, steps=self.image_encoder_steps, batch_size=self.image_encoder_batch_size,
                             learning_rate=self.image_encoder_learning_rate, image_size=self.image_size, patch_size=spec.patch_size,
                             hidden_size=spec.vision_hidden, vision_layers=spec.vision_layers, warmup_fraction=self.warmup_fraction,
                             checkpoint_every=self.checkpoint_every, caption_context=self.image_encoder_caption_context)

    def __post_init__(self):
        toy_size(self.size)
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"`prediction_type`: {self.prediction_type!r} is not one of {', '.join(PREDICTION_TYPES)}.")
        if self.zero_terminal_snr and self.prediction_type != "v_prediction":
            raise ValueError(f"`zero_terminal_snr` needs `prediction_type` 'v_prediction', got {self.prediction_type!r}; "
                             "set zero_terminal_snr=False for an epsilon model.")
        fields = lambda *names: {name: getattr(self, name) for name in names}
        check_positive_ints(**fields("image_size", "vae_steps", "vae_batch_size", "t2i_steps", "t2i_batch_size", "checkpoint_every",
                                     "prompted_records", "prompted_steps", "prompted_batch_size", "image_encoder_steps",
                                     "image_encoder_batch_size", "qformer_records", "qformer_steps", "qformer_batch_size"))
        check_shares(**fields("caption_dropout", "warmup_fraction", "t2i_appearance_rate", "subject_drop_rate", "prompted_two_subject_rate"))
        if not isinstance(self.qformer_pretraining, bool):
            raise ValueError(f"`qformer_pretraining` must be True or False, got {self.qformer_pretraining!r}.")
        if self.prompted_image_encoder not in IMAGE_ENCODER_MODES:
            raise ValueError(f"`prompted_image_encoder`: {self.prompted_image_encoder!r} is not one of {', '.join(IMAGE_ENCODER_MODES)}.")
        if self.prompted_image_encoder == "frozen" and not self.qformer_pretraining:
            raise ValueError("`prompted_image_encoder` 'frozen' needs `qformer_pretraining` (its image encoder is trained first); "
                             "without it the encoder starts random, so use 'trainable'.")
        if self.qformer_pretraining:
            self.toy_clip_config()  # its checks (batch at most one render per training subject, patch divides the side)
        if self.qformer_batch_size < 2:
            raise ValueError(f"`qformer_batch_size` must be at least 2 (ITC and ITM need negatives), got {self.qformer_batch_size}.")
        if self.qformer_pretraining and self.qformer_batch_size > self.qformer_records:  # refused here, not hours later at the stage
            raise ValueError(f"`qformer_batch_size` {self.qformer_batch_size} is more than the {self.qformer_records} pairs of "
                             f"`qformer_records`; pass a batch of at most {self.qformer_records}, or more records.")
        shift = self.snr_shift
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not 1 <= shift < float("inf"):
            raise ValueError(f"`snr_shift` must be a finite number of at least 1 (1 keeps the schedule), got {shift!r}.")
        check_positive_floats(**fields("vae_learning_rate", "t2i_learning_rate", "prompted_learning_rate", "image_encoder_learning_rate",
                                       "qformer_learning_rate"))
        if not self.t2i_snr_gamma >= 0:
            raise ValueError(f"`t2i_snr_gamma` must be 0 (off) or positive, got {self.t2i_snr_gamma!r}.")
        for name in ("t2i_ema_decay", "prompted_ema_decay"):
            decay = getattr(self, name)
            if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
                raise ValueError(f"`{name}` must be 0 (off) or in (0, 1), got {decay!r}.")


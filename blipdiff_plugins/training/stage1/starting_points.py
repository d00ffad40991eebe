"""Where stage 1 starts: a fresh Q-Former over a given image encoder, a stage-1 folder, a BLIP-Diffusion folder, a
transformers `Blip2ForImageTextRetrieval` folder or a LAVIS BLIP-2 checkpoint; each gives a `Blip2SubjectEncoder`
(its ``vision_model`` the frozen image encoder), the stage-1 heads, the caption tokenizer and the image processor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...conversion.state_dict import CheckpointError, check_against, convert_published_subject_encoder, lavis_to_published_keys
from ...builtin.names import is_builtin_name, parse_builtin_name
from .module import Stage1Heads

INITIALIZER_RANGE = 0.02  # BERT's / LAVIS's initialisation of the query tokens
QFORMER_PREFIXES = ("query_tokens", "embeddings.", "qformer.")
# LAVIS BLIP-2 head keys -> `Stage1Heads` keys (the ITG head is LAVIS's ``Qformer.cls.predictions``).
LAVIS_HEAD_KEYS = {
    "vision_proj.weight": "vision_projection.weight", "vision_proj.bias": "vision_projection.bias",
    "text_proj.weight": "text_projection.weight", "text_proj.bias": "text_projection.bias",
    "itm_head.weight": "itm_head.weight", "itm_head.bias": "itm_head.bias", "temp": "temperature",
    "Qformer.cls.predictions.bias": "lm_bias",
    "Qformer.cls.predictions.transform.dense.weight": "lm_transform.dense.weight",
    "Qformer.cls.predictions.transform.dense.bias": "lm_transform.dense.bias",
    "Qformer.cls.predictions.transform.LayerNorm.weight": "lm_transform.LayerNorm.weight",
    "Qformer.cls.predictions.transform.LayerNorm.bias": "lm_transform.LayerNorm.bias",
}


@dataclass
class StartingPoint:
    encoder: Any
    heads: Stage1Heads
    tokenizer: Any
    image_processor: Any
    description: str


def _vision_model(image_encoder):
    """A `CLIPVisionModel` from a model or a folder / Hub id (a `CLIPModel` or `...WithProjection` gives its tower)."""
    from transformers import CLIPVisionModel

    if isinstance(image_encoder, (str, Path)):
        try:
            return CLIPVisionModel.from_pretrained(image_encoder)
        except (OSError, ValueError) as error:  # no such folder / Hub id (offline: OSError), or not a CLIP model
            raise ValueError(
                f"`image_encoder`: could not load a CLIP vision model from {str(image_encoder)!r} ({str(error).splitlines()[0]}); pass a "
                "folder saved with save_pretrained (CLIPVisionModel or CLIPModel) or a Hub id such as openai/clip-vit-large-patch14."
            ) from error
    if isinstance(image_encoder, CLIPVisionModel):
        return image_encoder
    tower = getattr(image_encoder, "vision_model", None)
    if tower is not None and hasattr(image_encoder, "config"):
        model = CLIPVisionModel(getattr(image_encoder.config, "vision_config", image_encoder.config))
        model.load_state_dict(tower.state_dict())  # a CLIPVisionModel holds the tower's modules at its top level
        return model
    raise ValueError(f"`image_encoder` must be a CLIPVisionModel (or a CLIP model with a vision_model), got {type(image_encoder).__name__}.")


def _fresh_encoder(vision, qformer_config: dict, num_query_tokens: int, seed: int):
    """A `Blip2SubjectEncoder` with ``vision``'s weights and a Q-Former initialised from ``seed``."""
    from ...adapters.blip2_qformer import Blip2SubjectEncoder

    vision_config = {key: value for key, value in vision.config.to_dict().items() if not key.startswith("_")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = Blip2SubjectEncoder(vision_config=vision_config, qformer_config=qformer_config, num_query_tokens=num_query_tokens)
        torch.nn.init.normal_(encoder.query_tokens, std=INITIALIZER_RANGE)
    encoder.vision_model.load_state_dict(vision.state_dict())
    return encoder


def break_query_symmetry(encoder, seed: int) -> bool:
    """Queries that are all equal (a freshly built encoder holds zeros) get identical outputs and gradients and never
    differ: draw them from N(0, 0.02) as LAVIS does (our check). Returns whether it did."""
    tokens = encoder.query_tokens
    if tokens.shape[1] > 1 and bool((tokens == tokens[:, :1]).all()):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            tokens.copy_(torch.randn(tokens.shape, generator=generator) * INITIALIZER_RANGE)
        return True
    return False


def make_heads(encoder, config, *, seed: int) -> Stage1Heads:
    qformer = encoder.qformer.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Stage1Heads(hidden_size=encoder.hidden_size, vocab_size=encoder.subject_vocab_size, embed_dim=config.embed_dim,
                           initial_temperature=config.temperature, hidden_act=qformer.hidden_act, layer_norm_eps=qformer.layer_norm_eps)


def _default_tokenizer(encoder):
    tokenizer = _builtin_tokenizer()
    if len(tokenizer) > encoder.subject_vocab_size:
        raise ValueError(f"`tokenizer` is required: the Q-Former's {encoder.subject_vocab_size} word embeddings do not fit the built-in one.")
    return tokenizer


def _check_image_width(encoder_hidden: int, vision, where: str) -> None:
    if vision.config.hidden_size != encoder_hidden:
        raise ValueError(
            f"`image_encoder`: its width {vision.config.hidden_size} differs from the width {encoder_hidden} the Q-Former of {where} "
            "cross-attends to; pass an image encoder of that width."
        )


def _from_retrieval_model(folder: Path, vision, config) -> tuple[Any, Stage1Heads]:
    """A transformers `Blip2ForImageTextRetrieval` folder: its Q-Former, queries, text embeddings and heads."""
    from transformers import Blip2ForImageTextRetrieval

    model = Blip2ForImageTextRetrieval.from_pretrained(folder)
    qformer_config = model.config.qformer_config
    if not qformer_config.use_qformer_text_input:
        raise ValueError(f"`init`: {str(folder)!r} has a Q-Former without its text branch (use_qformer_text_input=False); stage 1 needs it.")
    _check_image_width(qformer_config.encoder_hidden_size, vision, repr(str(folder)))
    settings = {key: value for key, value in qformer_config.to_dict().items() if key in _QFORMER_FIELDS}
    encoder = _fresh_encoder(vision, settings, model.config.num_query_tokens, config.seed)
    state = {key: value for key, value in model.state_dict().items() if key.startswith(QFORMER_PREFIXES)}
    expected = {key: value.shape for key, value in encoder.state_dict().items() if key.startswith(QFORMER_PREFIXES)}
    check_against(state, expected, component="init")
    encoder.load_state_dict(state, strict=False)
    heads = make_heads(encoder, config, seed=config.seed + 1)
    heads.load_state_dict({**heads.state_dict(), **{key: value for key, value in model.state_dict().items()
                                                   if key.startswith(("vision_projection.", "text_projection.", "itm_head."))}})
    return encoder, heads


_QFORMER_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                   "max_position_embeddings", "layer_norm_eps", "cross_attention_frequency", "pad_token_id",
                   "hidden_dropout_prob", "attention_probs_dropout_prob")


def lavis_qformer_config(state: dict[str, torch.Tensor], *, head_dim: int = 64) -> tuple[dict, int]:
    """Q-Former sizes and the number of queries read off LAVIS BLIP-2 weights (``Qformer.bert.*``)."""
    import re

    try:
        words = state["Qformer.bert.embeddings.word_embeddings.weight"]
        intermediate = state["Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"].shape[0]
        positions = state["Qformer.bert.embeddings.position_embeddings.weight"].shape[0]
        queries = state["query_tokens"].shape[1]
    except KeyError as error:
        raise CheckpointError(f"`init`: the LAVIS checkpoint lacks {error.args[0]!r}; is it a BLIP-2 Q-Former checkpoint?") from error
    layers = {int(m.group(1)) for key in state if (m := re.match(r"Qformer\.bert\.encoder\.layer\.(\d+)\.", key))}
    cross = sorted({int(m.group(1)) for key in state if (m := re.match(r"Qformer\.bert\.encoder\.layer\.(\d+)\.crossattention\.", key))})
    return {
        "vocab_size": words.shape[0], "hidden_size": words.shape[1], "num_hidden_layers": len(layers),
        "num_attention_heads": max(1, words.shape[1] // head_dim), "intermediate_size": intermediate, "max_position_embeddings": positions,
        "cross_attention_frequency": cross[1] - cross[0] if len(cross) > 1 else max(1, len(layers)),
    }, queries


def from_lavis_state(state: dict[str, torch.Tensor], vision, config, *, head_dim: int = 64) -> tuple[Any, Stage1Heads, list[str]]:
    """A LAVIS BLIP-2 state dict (``blip2_qformer``): the Q-Former through the project's LAVIS key map, the heads by
    `LAVIS_HEAD_KEYS`; returns the keys it did not use (the image encoder's among them)."""
    qformer_config, queries = lavis_qformer_config(state, head_dim=head_dim)
    cross_key = next(key for key in state if ".crossattention.self.key.weight" in key)
    _check_image_width(state[cross_key].shape[1], vision, "the LAVIS checkpoint")
    encoder = _fresh_encoder(vision, qformer_config, queries, config.seed)
    qformer_keys = {key: value for key, value in state.items() if key.startswith(("Qformer.bert.", "query_tokens", "blip.Qformer.bert."))}
    published = lavis_to_published_keys(qformer_keys)
    expected = {key: value.shape for key, value in encoder.state_dict().items() if key.startswith(QFORMER_PREFIXES)}
    converted = convert_published_subject_encoder(published.state_dict, expected)
    encoder.load_state_dict(converted.state_dict, strict=False)
    heads = make_heads(encoder, config, seed=config.seed + 1)
    head_state = {target: state[source].reshape(heads.state_dict()[target].shape) for source, target in LAVIS_HEAD_KEYS.items() if source in state}
    heads.load_state_dict({**heads.state_dict(), **head_state})
    unused = sorted(set(state) - set(qformer_keys) - set(LAVIS_HEAD_KEYS))
    return encoder, heads, unused


def load_starting_point(config, *, subject_encoder=None, image_encoder=None, tokenizer=None, image_processor=None) -> StartingPoint:
    """The start `train_stage1` documents (`Stage1Config.init`), with defaults for the tokenizer and image processor."""
    from ...adapters.subject_image_processor import SubjectImageProcessor
    from .output import is_stage1_folder, load_stage1_folder

    heads, carries_vision = None, True
    init = config.init
    if image_encoder is None and config.image_encoder is not None:
        image_encoder = config.image_encoder
    vision = _vision_model(image_encoder) if image_encoder is not None else None
    if tokenizer is None and config.tokenizer is not None:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(config.tokenizer)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"`tokenizer`: could not load a tokenizer from {config.tokenizer!r} ({str(error).splitlines()[0]}); pass a BERT tokenizer "
                "folder or Hub id (with the [DEC] token), or leave it out for the start's own."
            ) from error
    if subject_encoder is not None:
        encoder, description = subject_encoder, "a subject encoder passed to train_stage1()"
    elif init == "random":
        if vision is None:
            raise ValueError("`image_encoder` is required when `init` is 'random': pass the frozen CLIP vision model (a folder or Hub id).")
        tokenizer = tokenizer if tokenizer is not None else _builtin_tokenizer()
        qformer_config = {"vocab_size": len(tokenizer)}
        if config.qformer_layers is not None:
            qformer_config["num_hidden_layers"] = config.qformer_layers
        encoder, description = _fresh_encoder(vision, qformer_config, config.num_query_tokens, config.seed), "random"
        carries_vision = False
    elif is_builtin_name(init):  # a built-in BLIP-Diffusion model (as `--model builtin` elsewhere): its subject encoder
        from ...pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline

        parse_builtin_name(init, argument="`init`")
        pipe = BlipDiffusionPipeline.from_pretrained(init)
        encoder, description = pipe.subject_encoder, f"the built-in model {init!r}"
        tokenizer = tokenizer if tokenizer is not None else pipe.subject_tokenizer
        image_processor = image_processor if image_processor is not None else pipe.subject_image_processor
    else:
        path = Path(init)
        if not path.exists():
            raise FileNotFoundError(
                f"`init`: no folder or file at {init!r}; pass 'random', a built-in model ('builtin', 'builtin:random-tiny', ...), a "
                "stage-1 / BLIP-Diffusion / Blip2ForImageTextRetrieval folder or a LAVIS .pth."
            )
        description = str(path.resolve())
        if is_stage1_folder(path):
            parts = load_stage1_folder(path, argument="init")
            encoder, heads = parts["subject_encoder"], parts["heads"]
            tokenizer = tokenizer if tokenizer is not None else parts["subject_tokenizer"]
            image_processor = image_processor if image_processor is not None else parts["subject_image_processor"]
        elif (path / "model_index.json").is_file() and (path / "subject_encoder").is_dir():
            from transformers import AutoTokenizer

            from ...adapters.blip2_qformer import Blip2SubjectEncoder

            encoder = Blip2SubjectEncoder.from_pretrained(path / "subject_encoder")
            tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path / "subject_tokenizer")
            if image_processor is None:
                image_processor = SubjectImageProcessor.from_pretrained(path / "subject_image_processor")
        elif (path / "config.json").is_file() and "Blip2ForImageTextRetrieval" in json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures", []):
            if vision is None:
                raise ValueError(f"`image_encoder` is required with a Blip2ForImageTextRetrieval `init` ({init!r}): BLIP-Diffusion's Q-Former reads a CLIP image encoder.")
            encoder, heads = _from_retrieval_model(path, vision, config)
            carries_vision = False
            if tokenizer is None and (path / "tokenizer_config.json").is_file():
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(path)
        elif path.is_file():
            from ...conversion.state_dict import load_pickle_checkpoint

            if vision is None:
                raise ValueError(f"`image_encoder` is required with a LAVIS `init` ({init!r}): pass the frozen CLIP vision model.")
            checkpoint = load_pickle_checkpoint(path, component="init")
            state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
            encoder, heads, _unused = from_lavis_state(state, vision, config)
            carries_vision = False
        else:
            raise ValueError(f"`init`: {init!r} is not a stage-1, BLIP-Diffusion or Blip2ForImageTextRetrieval folder, nor a LAVIS checkpoint file.")
    if vision is not None and carries_vision:  # the given image encoder replaces the start's own
        _check_image_width(encoder.vision_model.config.hidden_size, vision, "the start")
        encoder.vision_model.load_state_dict(vision.state_dict())
    break_query_symmetry(encoder, config.seed)
    if heads is None:
        heads = make_heads(encoder, config, seed=config.seed + 1)
    if tokenizer is None:
        tokenizer = _default_tokenizer(encoder)
    if getattr(tokenizer, "bos_token_id", None) is None:
        raise ValueError("`tokenizer` needs a BOS token, BLIP-2's `[DEC]` that starts ITG's text: tokenizer.add_special_tokens({'bos_token': '[DEC]'}).")
    if len(tokenizer) > encoder.subject_vocab_size:
        raise ValueError(f"`tokenizer` has {len(tokenizer)} tokens, more than the Q-Former's {encoder.subject_vocab_size} word embeddings.")
    if image_processor is None:
        image_processor = SubjectImageProcessor(image_size=encoder.image_size)
    return StartingPoint(encoder, heads, tokenizer, image_processor, description)


def _builtin_tokenizer():
    from ...builtin.tokenizers import build_bert_tokenizer

    return build_bert_tokenizer()

"""``blipdiff convert``: a LAVIS BLIP-Diffusion checkpoint (folder or tarball) into our saved layout."""

from __future__ import annotations

import argparse

from .common import HelpFormatter


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        help="convert an original LAVIS or published diffusers checkpoint to our folder layout",
        description="Convert the original LAVIS BLIP-Diffusion checkpoint (blip_model/, proj_layer/, unet/, vae/, "
        "text_encoder/; a folder or .tar.gz), or the published diffusers layout (Salesforce/blipdiffusion, whose "
        "model_index.json names the vanished 'blip_diffusion' library), into a folder that "
        "BlipDiffusionPipeline.from_pretrained and DiffusionPipeline.from_pretrained(custom_pipeline=...) load. "
        "Pickles are read with torch.load(weights_only=True) only.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("source", help="LAVIS checkpoint folder or tarball, or a published-layout folder or Hub id")
    parser.add_argument("output", help="new output folder (must not exist)")
    parser.add_argument("--tokenizer", default="openai/clip-vit-large-patch14", help="CLIP tokenizer folder or Hub id")
    parser.add_argument("--subject-tokenizer", default="google-bert/bert-base-uncased", help="BERT tokenizer folder or Hub id")
    parser.add_argument("--resize-mode", default="crop", choices=("crop", "squash"), help="subject image preprocessing")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..tasks.convert import convert_checkpoint

    convert_checkpoint(args.source, args.output, tokenizer=args.tokenizer, subject_tokenizer=args.subject_tokenizer, resize_mode=args.resize_mode)
    print(f"Wrote {args.output}; load it with BlipDiffusionPipeline.from_pretrained({args.output!r}).")
    return 0

"""Stage-1 trainer step / a hand-written minimal step of the same three losses (a script, not a test).

    OMP_NUM_THREADS=1 .venv/bin/python benchmark/speed/bench_stage1.py [--batch-size 16] [--repeats 10]

On the CPU (mixed precision off).

``trainer``: `Stage1Trainer.training_step`: reading the batch's records (an in-memory `datasets.Dataset` of PIL
images), image preprocessing and tokenisation, the frozen image encoder, ITC + ITM (hard negatives drawn from the
ITC similarities) + ITG under accelerate, backward, AdamW over the decay groups with the scheduled learning rate.
``floor``: the same work written as a bare loop over the same modules, with the batch tensors prepared once: the
image encoder under no_grad, one Q-Former pass with the multimodal-causal mask (ITG, and its query rows for ITC),
one text pass, one bidirectional ITM pass, the three losses in plain torch, backward, a plain AdamW step. The two
alternate step by step (the machine's load hits both alike); the ratio is of the medians. Target <= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

WORDS = "a an the red blue green yellow purple circle square star heart cat dog on grass snow sand bricks with stripes dots".split()


def make_pairs(count: int, size: int):
    import datasets

    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(count)]
    captions = [f"a {WORDS[3 + i % 5]} {WORDS[8 + (i // 5) % 6]} on {WORDS[15 + i % 4]}" for i in range(count)]
    return datasets.Dataset.from_dict({"image": images, "caption": captions}, features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}))


def build_encoder(tokenizer, size: int):
    from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder

    torch.manual_seed(0)
    return Blip2SubjectEncoder(
        vision_config={"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 4, "patch_size": 8, "image_size": size},
        qformer_config={"vocab_size": len(tokenizer), "hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4,
                        "num_attention_heads": 4, "max_position_embeddings": 64, "cross_attention_frequency": 2},
        num_query_tokens=16,
    )


def floor_step_factory(module, batch, optimizer, smoothing: float = 0.1):
    """The minimal step: plain torch over the trainer's own modules and one prepared batch."""
    encoder, heads = module.encoder, module.heads
    pixels, ids, mask, dec = batch["pixel_values"], batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"]
    size, queries, text_len = ids.shape[0], encoder.num_query_tokens, ids.shape[1]
    generator = torch.Generator().manual_seed(0)
    # multimodal-causal mask, built once: queries see queries; text sees queries and earlier, non-padding text
    allowed = torch.ones(queries + text_len, queries + text_len, dtype=torch.bool).tril()
    allowed[:, :queries] = True
    allowed[:queries, queries:] = False
    keys = torch.cat([torch.ones(size, queries, dtype=torch.bool), mask.bool()], 1)
    causal = torch.zeros(size, 1, queries + text_len, queries + text_len).masked_fill(~(allowed[None] & keys[:, None])[:, None], torch.finfo(torch.float32).min)
    full_mask = torch.cat([torch.ones(size, queries, dtype=mask.dtype), mask], 1)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            heads.temperature.clamp_(0.001, 0.5)
            image = encoder.vision_model.post_layernorm(encoder.vision_model(pixel_values=pixels).last_hidden_state)
        query_tokens = encoder.query_tokens.expand(size, -1, -1)
        joint = encoder.qformer(query_embeds=encoder.embeddings(input_ids=dec, query_embeds=query_tokens), query_length=queries,
                                attention_mask=causal, encoder_hidden_states=image).last_hidden_state
        logits = F.linear(heads.lm_transform(joint[:, queries:]), encoder.embeddings.word_embeddings.weight, heads.lm_bias)
        labels = dec.masked_fill(mask == 0, -100)
        itg = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, label_smoothing=smoothing)
        image_feats = F.normalize(heads.vision_projection(joint[:, :queries]), dim=-1)
        text = encoder.qformer(query_embeds=encoder.embeddings(input_ids=ids), query_length=0, attention_mask=mask).last_hidden_state
        text_feat = F.normalize(heads.text_projection(text[:, 0]), dim=-1)
        sim_i2t = torch.einsum("bqd,nd->bnq", image_feats, text_feat).amax(-1) / heads.temperature
        sim_t2i = torch.einsum("bd,nqd->bnq", text_feat, image_feats).amax(-1) / heads.temperature
        targets = torch.arange(size)
        itc = (F.cross_entropy(sim_i2t, targets, label_smoothing=smoothing) + F.cross_entropy(sim_t2i, targets, label_smoothing=smoothing)) / 2
        with torch.no_grad():
            eye = torch.eye(size, dtype=torch.bool)
            negative_text = torch.multinomial(F.softmax(sim_i2t.masked_fill(eye, -1e4), 1), 1, generator=generator).squeeze(1)
            negative_image = torch.multinomial(F.softmax(sim_t2i.masked_fill(eye, -1e4), 1), 1, generator=generator).squeeze(1)
        itm_ids = torch.cat([ids, ids[negative_text], ids])
        itm_mask = torch.cat([full_mask, full_mask[negative_text], full_mask])
        itm_image = torch.cat([image, image, image[negative_image]])
        itm_out = encoder.qformer(query_embeds=encoder.embeddings(input_ids=itm_ids, query_embeds=encoder.query_tokens.expand(3 * size, -1, -1)),
                                  query_length=queries, attention_mask=itm_mask, encoder_hidden_states=itm_image).last_hidden_state
        itm_labels = torch.cat([torch.ones(size), torch.zeros(2 * size)]).long()
        itm = F.cross_entropy(heads.itm_head(itm_out[:, :queries].mean(1)), itm_labels)
        (itc + itm + itg).backward()
        optimizer.step()

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from blipdiff_plugins.builtin.tokenizers import build_bert_tokenizer
    from blipdiff_plugins.training.stage1 import Stage1Trainer

    tokenizer = build_bert_tokenizer(WORDS)
    encoder = build_encoder(tokenizer, args.image_size)
    config = {"steps": 10_000, "batch_size": args.batch_size, "warmup_steps": 0, "max_text_length": 32, "mixed_precision": "no",
              "progress_bar": False, "report_to": "none", "duplicate_captions_are_positives": False, "seed": 0}
    trainer = Stage1Trainer(make_pairs(4 * args.batch_size, args.image_size), config=config, subject_encoder=encoder, tokenizer=tokenizer)
    trainer.setup()
    module = trainer.unwrapped_module
    batch = trainer.encode_pairs(trainer.records.order(seed=1, rank=0, world=1, shuffle=False).next_records(args.batch_size))
    plain = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5, betas=(0.9, 0.98), weight_decay=0.05)
    floor_step = floor_step_factory(module, batch, plain)
    timings = {"trainer": [], "floor": []}
    for repeat in range(args.repeats + 2):  # the first two rounds warm up
        for name, step in (("trainer", trainer.training_step), ("floor", floor_step)):
            started = time.perf_counter()
            step()
            if repeat >= 2:
                timings[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    parameters = sum(p.numel() for p in module.parameters() if p.requires_grad)
    print(f"config: batch {args.batch_size}, {args.image_size} px, CLIP ViT 256 x 4 (patch 8), Q-Former 256 x 4 (cross-attention every 2nd), "
          f"16 queries, 32 tokens, vocab {len(tokenizer)}, {parameters / 1e6:.1f}M trained; CPU, {torch.get_num_threads()} thread(s)")
    print(f"median step: trainer {medians['trainer'] * 1000:.1f} ms, hand-written floor {medians['floor'] * 1000:.1f} ms over {args.repeats} alternating steps")
    print(f"stage-1 step / hand-written minimal step: {medians['trainer'] / medians['floor']:.3f} (target <= 1.05)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which caption parts does a toy stage-1 model confuse? (issue 26: where the held-out recall@1 is lost)

    OMP_NUM_THREADS=1 .venv/bin/python docs/runs/toyworld/stage1_errors/analyse.py RUN_FOLDER [PAIRS] [STREAM]

Loads ``RUN_FOLDER/qformer/output`` (a stage-1 folder), renders the retrieval evaluation's held-out pairs (the same
stream as the stage's validation, or PAIRS of them; or another render STREAM, held-out subjects still, so that settings
chosen on the stage's 64 pairs can be checked on pairs they were not chosen on), and for every image whose best caption is wrong, counts which
attributes of the caption differ (subject, background, position, size). Prints recall@1/5 both ways and the counts.
"""

import collections
import json
import sys
from pathlib import Path

import torch

from blipdiff_plugins.training.stage1.module import Stage1Module
from blipdiff_plugins.training.stage1.output import load_stage1_folder
from blipdiff_plugins.training.stage1.retrieval import caption_positives, recall_at_k, retrieval_similarity
from blipdiff_plugins.training.toy_recipe.paper_stages import HELDOUT_STREAM, RETRIEVAL_PAIRS
from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig
from blipdiff_plugins.toyworld.world import ToyWorld


def main(run: str, pairs: str = str(RETRIEVAL_PAIRS), stream: str = str(HELDOUT_STREAM)) -> None:
    config = RecipeConfig.from_dict(json.loads((Path(run) / "recipe.json").read_text()))
    parts = load_stage1_folder(Path(run) / "qformer" / "output")
    module = Stage1Module(parts["subject_encoder"].eval(), parts["heads"].eval())
    world = ToyWorld(image_size=config.image_size)
    renders = [world.sample(index, split="heldout", seed=config.seed * 1_000 + int(stream)) for index in range(int(pairs))]
    captions = [f"a {r.subject.appearance} {r.subject.shape} {r.context.text()}" for r in renders]
    pixels = parts["subject_image_processor"].preprocess([r.image for r in renders], argument="image")
    tokens = parts["subject_tokenizer"](captions, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    similarity = retrieval_similarity(module, pixels, tokens.input_ids, tokens.attention_mask).float()
    print(json.dumps(recall_at_k(similarity, caption_positives(tokens.input_ids))))
    differs = collections.Counter()
    wrong = 0
    for image, best in enumerate(similarity.argmax(dim=1).tolist()):
        if captions[best] == captions[image]:
            continue
        wrong += 1
        a, b = renders[image], renders[best]
        for name, same in (("subject", a.subject == b.subject), ("background", a.context.background == b.context.background),
                           ("position", a.context.position == b.context.position), ("size", a.context.size == b.context.size)):
            differs[name] += not same
    print(json.dumps({"images": len(renders), "wrong_top1": wrong, "attribute_differs_in_wrong_top1": dict(differs)}))
    # BLIP-2's full protocol: re-rank each query's ITC top-k by the ITM head's match probability.
    with torch.no_grad():
        images = module.image_features(pixels)
        itm = torch.zeros_like(similarity)
        for image in range(len(renders)):
            joint = module.joint_pass(images[image : image + 1].expand(len(renders), -1, -1), tokens.input_ids, tokens.attention_mask)
            itm[image] = module.heads.itm_head(joint[:, : module.num_queries].mean(dim=1)).softmax(dim=-1)[:, 1]
    print(json.dumps({"itm_alone": recall_at_k(itm, caption_positives(tokens.input_ids)),
                      "itm_match_probability_diagonal_mean": float(itm.diagonal().mean()), "itm_match_probability_mean": float(itm.mean())}))
    for k in (5, 10):
        directions = []
        for scores, rerank in ((similarity, itm), (similarity.t(), itm.t())):
            top = scores.topk(k, dim=1).indices
            reranked = torch.full_like(scores, -1.0)  # outside the top k: below every re-ranked one
            reranked.scatter_(1, top, torch.gather(rerank, 1, top))
            directions.append(reranked)
        image_to_text = recall_at_k(directions[0], caption_positives(tokens.input_ids))["image_to_text"]
        text_to_image = recall_at_k(directions[1], caption_positives(tokens.input_ids))["image_to_text"]
        print(json.dumps({"itm_rerank_top_k": k, "image_to_text": image_to_text, "text_to_image": text_to_image}))


if __name__ == "__main__":
    main(*sys.argv[1:])

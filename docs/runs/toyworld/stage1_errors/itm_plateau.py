"""ITM alone, on easy (random) negatives: does the toy Q-Former leave the loss plateau? (issue 26)

    OMP_NUM_THREADS=1 .venv/bin/python docs/runs/toyworld/stage1_errors/itm_plateau.py LR STEPS fresh|trained

Builds recipe v2's subject encoder over the toy CLIP of runs/s1_ctx (fresh Q-Former, seed 0) or loads runs/s1_ctx's
stage-1 result, and trains only the ITM loss on 256 training renders (32 matching + 32 mismatched pairs per step,
negatives by rolling the batch). Prints the loss every 50 steps. Measured: fresh at 5e-4: 0.69 for 300 steps; fresh at
3e-3: 0.63 at step 100, 0.37 at step 400.
"""
import sys

import torch
from pathlib import Path
from blipdiff_plugins.training.stage1.module import Stage1Module
from blipdiff_plugins.training.stage1.output import load_stage1_folder
from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
from blipdiff_plugins.training.toy_recipe import paper_stages
from blipdiff_plugins.toyworld.world import ToyWorld
lr = float(sys.argv[1]); steps = int(sys.argv[2]); source = sys.argv[3]
p = load_stage1_folder(Path("runs/s1_ctx/qformer/output"))
if source == "fresh":
    comps = build_toy_components(toy_size("s2"), image_size=64, seed=0, prediction_type="v_prediction", zero_terminal_snr=True, snr_shift=4.0)
    paper_stages.load_image_encoder(Path("runs/s1_ctx/image_encoder"), comps)
    enc = comps["subject_encoder"]
    heads = p["heads"].__class__(hidden_size=64, vocab_size=enc.embeddings.word_embeddings.weight.shape[0], embed_dim=64)
else:
    enc, heads = p["subject_encoder"], p["heads"]
m = Stage1Module(enc, heads)
w = ToyWorld(image_size=64)
tokz, proc = p["subject_tokenizer"], p["subject_image_processor"]
rs = [w.sample(i, split="train", seed=9) for i in range(256)]
allpix = proc.preprocess([r.image for r in rs], argument="image")
alltok = tokz([f"a {r.subject.appearance} {r.subject.shape} {r.context.text()}" for r in rs], padding="max_length", max_length=16, truncation=True, return_tensors="pt")
with torch.no_grad(): allimg = m.image_features(allpix)
m.train()
params = [q for n, q in m.named_parameters() if not n.startswith("encoder.vision_model")]
opt = torch.optim.AdamW(params, lr=lr)
g = torch.Generator().manual_seed(0)
for step in range(steps):
    idx = torch.randperm(256, generator=g)[:32]; neg = idx.roll(1)
    ids = torch.cat([alltok.input_ids[idx], alltok.input_ids[neg]]); msk = torch.cat([alltok.attention_mask[idx], alltok.attention_mask[neg]])
    out = m.joint_pass(torch.cat([allimg[idx], allimg[idx]]), ids, msk)[:, :m.num_queries].mean(1)
    loss = torch.nn.functional.cross_entropy(m.heads.itm_head(out), torch.cat([torch.ones(32), torch.zeros(32)]).long())
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 50 == 0 or step == steps - 1: print(source, lr, step, round(loss.item(), 4), flush=True)

#!/usr/bin/env bash
# Recipe v2 (issues 26 and 28, one retrain): the run, its ablations and every measurement the two issues and the
# inpainting issue (27) ask of it, in order, one job at a time. Rerun the same command after an interruption: every
# step resumes (the recipe from its newest checkpoint, a benchmark with --resume) or is skipped when its summary exists.
#
#   OMP_NUM_THREADS=2 docs/runs/toyworld/recipe_v2/run_all.sh runs/toy12
#
# Seed 0 everywhere. Protocols: the issues' (held-out subjects, contexts drawn from all 60 (protocol v2), 4 images per
# prompt, 25 DDIM trailing steps, guidance 7.5).
set -euo pipefail
RUN=${1:?usage: run_all.sh RUN_FOLDER}
BLIPDIFF=${BLIPDIFF:-.venv/bin/blipdiff}
BENCH="$RUN/bench"
mkdir -p "$BENCH"

# 1. The recipe (the paper's way + two-subject scenes): vae, t2i, image_encoder, qformer (stage 1 with its retrieval
#    evaluation on 64 held-out pairs in qformer/done.json), prompted. All defaults.
"$BLIPDIFF" toyworld train --output "$RUN" --seed 0

bench() {  # bench NAME ARGS...: a toy-world benchmark row, resumed until its summary exists
    local name=$1; shift
    if [ ! -f "$BENCH/$name/toyworld_summary.json" ] && [ ! -f "$BENCH/$name/binding_summary.json" ] \
        && [ ! -f "$BENCH/$name/inpaint_summary.json" ]; then
        local resume=(); [ -d "$BENCH/$name" ] && resume=(--resume)
        "$BLIPDIFF" bench --dataset toyworld --seed 0 --steps 25 --protocol v2 --no-plots --output "$BENCH/$name" "${resume[@]}" "$@"
    fi
}
# 2. Zero-shot first (it decides whether the model ships), then the short rows of issues 28 and 27 (binding: 128 images
#    a row, inpainting: 64) before the long ones (384 images a row, and the fine-tunes), so that a stop midway leaves
#    the most targets measured.
bench zs --model "$RUN/model" --method blip_diffusion --num-images 4
# 3. Binding (issue 28): 16 held-out pairs x 2 prompts x 4 images.
BIND="--task binding --num-pairs 16 --num-prompts 2 --num-images 4"
bench binding-regions $BIND --model "$RUN/model" --method blip_diffusion
bench binding-no-regions $BIND --model "$RUN/model" --method blip_diffusion --no-regions
# 4. Inpainting (issue 27) at its protocol: 8 held-out subjects x 2 scenes x 4 images per row.
INPAINT="--task inpaint --model $RUN/model --num-prompts 2 --num-images 4"
bench inpaint-subject_inpaint $INPAINT --method subject_inpaint
# 5. Every reference on one background (the context-separation target), the floors, the fine-tune with the toy
#    defaults fixed in advance (docs/runs/toyworld/finetune_study).
bench zs-bricks --model "$RUN/model" --method blip_diffusion --num-images 4 --reference-background bricks
bench binding-text $BIND --model "$RUN/model" --method text_only
bench inpaint-text_inpaint $INPAINT --method text_inpaint
# 5b. The toy UMM-Diffusion on the new model (its text encoder changed), on the one-subject records (UMM takes one
#    subject), before the remaining rows: the model ships only together with its UMM (the shipped UMM is built on the
#    shipped model). Its benchmark row, at the fusion weight the README reports, after the text-only floor and the
#    fine-tune (issue 26).
[ -f "$RUN/umm/model_index.json" ] || "$BLIPDIFF" toyworld train-umm --toy-model "$RUN/model" \
    --records "$RUN/stage3_prompted/records_one_subject" --output "$RUN/umm" --seed 0
bench text --model "$RUN/model" --method text_only --num-images 4
bench ft --model "$RUN/model" --method blip_diffusion_finetuned --finetune-strategy full_unet --finetune-learning-rate 2e-4 \
    --finetune-steps 40 --finetune-reference-captions --num-images 4
bench umm-a0.75 --model "$RUN/umm" --method umm --fusion-weight 0.75 --num-images 4
bench copy --model "$RUN/model" --method copy_reference --num-images 4
bench inpaint-copy_reference $INPAINT --method copy_reference
for S in 0.5 0.8; do bench "inpaint-img2img_$S" $INPAINT --method img2img --strength "$S"; done
# 6. The ablation rows, after every row of the run itself so that its figures come first. They reuse the finished
#    stages they share (same settings, same seed, so the same weights) and retrain the prompted stage only; the
#    prompted stage's records are the same too.
ablation() {  # ablation FOLDER STAGES... -- FLAGS...
    local folder=$1; shift
    local stages=()
    while [ "$1" != "--" ]; do stages+=("$1"); shift; done; shift
    if [ ! -f "$folder/stage3_prompted/done.json" ]; then
        mkdir -p "$folder/stage3_prompted"
        for stage in "${stages[@]}"; do [ -d "$folder/$stage" ] || cp -r "$RUN/$stage" "$folder/$stage"; done
        for records in records records_one_subject; do
            [ -d "$folder/stage3_prompted/$records" ] || cp -r "$RUN/stage3_prompted/$records" "$folder/stage3_prompted/$records"
        done
        "$BLIPDIFF" toyworld train --output "$folder" --seed 0 "$@"
    fi
}
ablation "$RUN-trainable" stage1_vae stage2_t2i image_encoder qformer -- --prompted-image-encoder trainable
ablation "$RUN-nostage1" stage1_vae stage2_t2i -- --no-qformer-pretraining --prompted-image-encoder trainable

bench zs-trainable --model "$RUN-trainable/model" --method blip_diffusion --num-images 4
bench zs-nostage1 --model "$RUN-nostage1/model" --method blip_diffusion --num-images 4
# 7. Tables.
"$BLIPDIFF" toyworld compare --run zero-shot="$BENCH/zs" --run text-only="$BENCH/text" --run copy="$BENCH/copy" \
    --run one-background="$BENCH/zs-bricks" --run fine-tuned="$BENCH/ft" --run stage1-encoder-trainable="$BENCH/zs-trainable" \
    --run no-stage1="$BENCH/zs-nostage1" --output "$BENCH/compare"
.venv/bin/python -c "from blipdiff_plugins.benchmark.toyworld.binding_report import compare_binding; import sys; \
compare_binding({'regions': sys.argv[1] + '/binding-regions', 'no regions': sys.argv[1] + '/binding-no-regions', \
'text only': sys.argv[1] + '/binding-text'}, sys.argv[1] + '/binding-compare')" "$BENCH"
.venv/bin/python -c "from blipdiff_plugins.benchmark.toyworld.inpaint_report import compare_inpaint; import sys; \
compare_inpaint({row: sys.argv[1] + '/inpaint-' + row for row in ('subject_inpaint', 'text_inpaint', 'copy_reference', \
'img2img_0.5', 'img2img_0.8')}, sys.argv[1] + '/inpaint-compare')" "$BENCH"
# 8. Ship (pack) the model only where its zero-shot row beats run 5's: docs/runs/toyworld/pack_toy_model.py, pack_toy_umm.py.
# 9. Every target of issues 26, 27 and 28 that these rows measure, met or not.
.venv/bin/python docs/runs/toyworld/recipe_v2/targets.py "$RUN" --json "$BENCH/targets.json" | tee "$BENCH/targets.md"

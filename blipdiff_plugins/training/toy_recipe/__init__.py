"""The recipe that trains the toy model on the toy world (``blipdiff toyworld train``) and the toy UMM parts
(``blipdiff toyworld train-umm``).

- ``sizes`` / ``components``: toy model sizes and the components built from them
- ``recipe_config`` / ``recipe``: the staged recipe (VAE, text-to-image, recipe v2's image encoder and stage-1
  Q-Former, stage-2 prompted generation), resumable
- ``stage_loop`` / ``paper_stages`` / ``prompted_stage`` / ``vae_gate``: one stage's loop, the image-encoder and
  stage-1 stages, the prompted stage on the pre-training trainer, the oracle check of the VAE
- ``toy_clip`` / ``toy_umm_config`` / ``toy_umm``: the toy CLIP image tower and the toy UMM-Diffusion training

The world itself (renderer, oracle, measures, dataset) is `blipdiff_plugins.toyworld`.
"""

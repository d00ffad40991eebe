"""The recipe that trains the toy model on the toy world (``blipdiff toyworld train``) and the toy UMM parts
(``blipdiff toyworld train-umm``).

- ``sizes`` / ``components``: toy model sizes and the components built from them
- ``recipe_config`` / ``recipe``: the staged recipe (VAE, text-to-image, stage-2 prompted generation), resumable
- ``stage_loop`` / ``prompted_stage`` / ``vae_gate``: one stage's loop, the prompted stage on the pre-training
  trainer, the oracle check of the VAE
- ``toy_clip`` / ``toy_umm_config`` / ``toy_umm``: the toy CLIP image tower and the toy UMM-Diffusion training

The world itself (renderer, oracle, measures, dataset) is `blipdiff_plugins.toyworld`.
"""

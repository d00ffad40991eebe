"""Reading original checkpoints: the published diffusers layout, LAVIS checkpoints, state-dict key maps."""

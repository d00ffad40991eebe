"""DreamBench (the DreamBooth evaluation dataset) under the BLIP-Diffusion authors' protocol: dataset, DINO / CLIP-I /
CLIP-T backbones and scorer, the ``evaluate`` metric support, published scores, reports and plots."""

"""Published DreamBench scores (DINO, CLIP-I, CLIP-T), as collected in SYSTEM.md section 7.

Most come from the BLIP-Diffusion paper's table (pair-weighted DINO/CLIP-I, CLIP-T mean over images);
IP-Adapter was measured by others. ``None`` where a score was not reported.
"""

from __future__ import annotations

from types import MappingProxyType

PUBLISHED_SCORES = MappingProxyType(
    {
        "Real images": MappingProxyType({"dino": 0.774, "clip_i": 0.885, "clip_t": None}),
        "BLIP-Diffusion (zero-shot)": MappingProxyType({"dino": 0.594, "clip_i": 0.779, "clip_t": 0.300}),
        "BLIP-Diffusion (fine-tuned)": MappingProxyType({"dino": 0.670, "clip_i": 0.805, "clip_t": 0.302}),
        "DreamBooth (SD)": MappingProxyType({"dino": 0.668, "clip_i": 0.803, "clip_t": 0.305}),
        "Textual Inversion": MappingProxyType({"dino": 0.569, "clip_i": 0.780, "clip_t": 0.255}),
        "Re-Imagen": MappingProxyType({"dino": 0.600, "clip_i": 0.740, "clip_t": 0.270}),
        "SuTI": MappingProxyType({"dino": 0.741, "clip_i": 0.819, "clip_t": 0.304}),
        "ELITE": MappingProxyType({"dino": 0.621, "clip_i": 0.771, "clip_t": 0.293}),
        "IP-Adapter (SD1.5, measured by others)": MappingProxyType({"dino": 0.667, "clip_i": 0.813, "clip_t": 0.289}),
        "Kosmos-G": MappingProxyType({"dino": 0.694, "clip_i": 0.847, "clip_t": 0.287}),
    }
)

# Which published row a method of ours should be read against.
COMPARABLE = MappingProxyType(
    {"blip_diffusion": "BLIP-Diffusion (zero-shot)", "blip_diffusion_finetuned": "BLIP-Diffusion (fine-tuned)"}
)


def published_scores() -> dict[str, dict]:
    """A fresh, mutable copy of the published scores."""
    return {name: dict(scores) for name, scores in PUBLISHED_SCORES.items()}

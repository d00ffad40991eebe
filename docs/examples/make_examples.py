# Makes the example grids in docs/examples with the built-in "small" model (random weights): python docs/examples/make_examples.py
import torch, numpy as np, PIL.Image
from blipdiff_plugins.builtin.models import build_builtin_components
from blipdiff_plugins import BlipDiffusionPipeline, BlipDiffusionEditPipeline
from blipdiff_plugins.recipes.interpolation import labelled_grid, render_interpolation
from blipdiff_plugins.recipes.attention_maps import subject_attention_maps, attention_grid
c = build_builtin_components("small")
plain = BlipDiffusionPipeline(**c); editor = BlipDiffusionEditPipeline(**c)
for p in (plain, editor): p.set_progress_bar_config(disable=True)
rows, cols = np.mgrid[0:96, 0:96]
a_img = PIL.Image.fromarray(np.stack([rows*2%256, cols*2%256, (rows+cols)%256], -1).astype(np.uint8))
b_img = PIL.Image.fromarray((255 - np.asarray(a_img)).astype(np.uint8))
a = plain.encode_subject(a_img, "cat"); b = plain.encode_subject(b_img, "dog")
out = editor("sitting on the beach", "dog", "cat", subject_embeds=a, num_inference_steps=10, generator=torch.Generator().manual_seed(0))
labelled_grid([out.source_images[0], out.edited_images[0]], ["src: dog", "edit: cat"]).save("docs/examples/edit_source_target.png", optimize=True)
ts, frames = render_interpolation(plain, a, b, prompt="on the grass", target_subject="dog", num_frames=5, method="spherical", num_inference_steps=10)
labelled_grid(frames, [f"t={t:.2f}" for t in ts]).save("docs/examples/interpolation_grid.png", optimize=True)
r = subject_attention_maps(plain, prompt="on the grass", subject_embeds=a, target_subject="cat", words=["grass"], num_inference_steps=10)
attention_grid(r, columns=7).save("docs/examples/attention_grid.png", optimize=True)

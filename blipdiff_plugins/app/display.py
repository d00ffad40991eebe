"""Results shown in the page at a size one can see, with sharp pixels, by the page's CSS alone.

The image Gradio serves, which the gallery's and each image's download button give, is the result itself at its
generated size (a toy model's 32-64 px); only the browser scales it to the box (`PAGE_CSS`)."""

from __future__ import annotations

# The class of every component that shows a result image (``elem_classes=RESULT``).
RESULT = "blipdiff-result"

# `image-rendering: pixelated` (CSS Images 3) scales up by nearest neighbour, so a 32 px result shows as sharp squares,
# and scales down smoothly, so a 512 px one stays a photo. Gradio's gr.Image shows an image at most at its own size
# (`object-fit: scale-down` in a frame as wide as the image): a result fills its box instead, whole (`contain`).
PAGE_CSS = f"""
.{RESULT} img {{ image-rendering: pixelated; }}
.{RESULT} .image-frame {{ width: 100%; }}
.{RESULT} .image-frame img {{ object-fit: contain; }}
"""

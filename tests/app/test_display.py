import numpy as np
import PIL.Image

from blipdiff_plugins.app.display import for_display


def test_small_images_grow_by_a_whole_factor_and_keep_their_pixels():
    small = PIL.Image.fromarray(np.arange(32 * 48 * 3, dtype=np.uint8).reshape(32, 48, 3))
    shown = for_display(small, min_side=100)
    assert shown.size == (48 * 4, 32 * 4)  # ceil(100 / 32) = 4
    np.testing.assert_array_equal(np.asarray(shown)[::4, ::4], np.asarray(small))
    large = PIL.Image.new("RGB", (300, 256))
    assert for_display(large) is large and for_display(None) is None

"""ControlNet preprocessors: canny and shuffle for real, weight-based detectors with random networks."""

import sys

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.registry import PREPROCESSORS, Registry

pytest.importorskip("controlnet_aux")

# Smaller backbones that controlnet_aux's networks accept: the same detector code, half the build time
SMALLER_BACKBONES = {"midas": "vitb16_384", "leres": "resnet50"}
WEIGHTED = ["hed", "pidi", "midas", "mlsd", "lineart", "lineart_anime", "openpose", "normalbae", "zoe", "leres"]


@pytest.fixture(scope="module")
def photo():
    rows, cols = np.mgrid[0:60, 0:80]
    array = np.stack([rows * 4 % 256, cols * 3 % 256, (rows * cols) % 256], axis=-1).astype(np.uint8)
    array[15:45, 20:60] = (240, 240, 240)
    return PIL.Image.fromarray(array)


def test_every_issue_detector_is_registered():
    assert set(WEIGHTED + ["canny", "shuffle"]) <= set(PREPROCESSORS.names())
    for name in PREPROCESSORS.names():
        assert PREPROCESSORS.entry(name).extra == "controlnet"
        assert "detect_resolution" in PREPROCESSORS.defaults(name)


def test_canny_real_output(photo):
    from blipdiff_plugins.adapters.preprocessors import load_preprocessor

    canny = load_preprocessor("canny", params={"low_threshold": 30, "high_threshold": 70, "detect_resolution": 64})
    control = canny(photo, height=48, width=40)
    assert control.mode == "RGB" and control.size == (40, 48)
    array = np.asarray(canny(photo))  # the source image's size by default
    assert array.shape == (60, 80, 3)
    assert set(np.unique(array)) - {0} and array.mean() < 128  # white edges on black


def test_shuffle_real_output_is_seeded(photo):
    from blipdiff_plugins.adapters.preprocessors import load_preprocessor

    state = np.random.get_state()
    first = load_preprocessor("shuffle", params={"seed": 3, "detect_resolution": 64})(photo, height=32, width=32)
    second = load_preprocessor("shuffle", params={"seed": 3, "detect_resolution": 64})(photo, height=32, width=32)
    other = load_preprocessor("shuffle", params={"seed": 4, "detect_resolution": 64})(photo, height=32, width=32)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    assert first.size == (32, 32) and first.mode == "RGB"
    assert np.all(np.random.get_state()[1] == state[1])  # the caller's global RNG is untouched


@pytest.mark.parametrize("name", WEIGHTED)
def test_weight_based_detectors_with_random_networks(name, photo):
    preprocessor_class = PREPROCESSORS.get(name)
    if name == "zoe":  # BEiT-L at 384x512 takes ~30 s on 2 CPU cores; the smaller BEiT-B runs the same code, and at
        # the detect resolution (64 px) ZoeDepth's own resize to `img_size` costs 0.7 s of CPU against 7 s at 256 px
        detector = preprocessor_class.random_detector("DPT_BEiT_B_384", (64, 64))
    elif name in SMALLER_BACKBONES:  # building the random networks is most of these tests' time
        detector = preprocessor_class.random_detector(SMALLER_BACKBONES[name])
    else:
        detector = preprocessor_class.random_detector()
    preprocessor = preprocessor_class(detector=detector, params={"detect_resolution": 64})
    assert preprocessor.weights == "lllyasviel/Annotators"
    control = preprocessor(photo, height=40, width=56)
    assert control.mode == "RGB" and control.size == (56, 40)


def test_defaults_immutable_and_unknown_params_rejected():
    from blipdiff_plugins.adapters.preprocessors import load_preprocessor

    canny = load_preprocessor("canny", params={"low_threshold": 5})
    assert PREPROCESSORS.defaults("canny")["low_threshold"] == 100
    with pytest.raises(TypeError):
        canny.params["low_threshold"] = 1
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['low'\]; it takes \['detect_resolution', 'high_threshold', 'low_threshold'\]"):
        load_preprocessor("canny", params={"low": 5})


def test_local_weights_folder_is_used_and_named_on_failure(tmp_path):
    with pytest.raises(OSError, match=r"'hed': could not load its weights from the folder .*Pass `weights=`"):
        PREPROCESSORS.get("hed")(weights=tmp_path)


def test_unknown_name_suggests_close_matches():
    from blipdiff_plugins.adapters.preprocessors import load_preprocessor

    with pytest.raises(KeyError, match=r"Unknown preprocessor 'midass'\. Did you mean 'midas'"):
        load_preprocessor("midass")


def test_missing_controlnet_aux_gives_install_line(monkeypatch):
    registry = Registry("preprocessor")
    registry.register("canny", "blipdiff_plugins.adapters.preprocessors:CannyPreprocessor", extra="controlnet")
    monkeypatch.setitem(sys.modules, "controlnet_aux", None)
    monkeypatch.delitem(sys.modules, "blipdiff_plugins.adapters.preprocessors", raising=False)
    with pytest.raises(ImportError, match=r"controlnet_aux.*pip install 'blipdiff_plugins\[controlnet\]'"):
        registry.get("canny")


# That importing the package, its ControlNet pipeline, the preprocessor names or the style recipe imports neither
# controlnet_aux nor timm is checked in tests/test_layout.py's fresh interpreter (one start of torch and diffusers).

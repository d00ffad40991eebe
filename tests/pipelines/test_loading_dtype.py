"""`from_pretrained` takes diffusers 0.42's `dtype` and its deprecated name `torch_dtype` alike, without passing the
deprecation warning on to users of our pipelines, and refuses both at once."""

from __future__ import annotations

import warnings

import pytest
import torch

from blipdiff_plugins import BlipDiffusionPipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "pipe"
    BlipDiffusionPipeline.from_pretrained("builtin:random-tiny").save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name", ["dtype", "torch_dtype"])
@pytest.mark.parametrize("source", ["folder", "builtin:random-tiny"])
def test_either_name_sets_the_dtype_without_a_deprecation_warning(saved, name, source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = BlipDiffusionPipeline.from_pretrained(str(saved) if source == "folder" else source, **{name: torch.bfloat16})
    assert pipe.unet.dtype == pipe.text_encoder.dtype == torch.bfloat16
    assert not [w for w in caught if "torch_dtype" in str(w.message)]


def test_both_names_at_once_are_refused(saved):
    with pytest.raises(ValueError, match="Pass `dtype` or `torch_dtype`"):
        BlipDiffusionPipeline.from_pretrained(saved, dtype=torch.float32, torch_dtype=torch.float32)

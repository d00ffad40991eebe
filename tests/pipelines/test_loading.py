import re
import shutil
import tarfile

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from blipdiff_plugins import BlipDiffusionPipeline
from blipdiff_plugins.conversion.state_dict import CheckpointError, load_pickle_checkpoint
from blipdiff_plugins.conversion.lavis import lavis_components, save_atomically
from blipdiff_plugins.utils.errors import UnsafeCheckpointError

from tests.helpers import PARITY_DIR, REPO_ROOT, generator
from tests.lavis_layout import write_lavis_checkpoint


def images(pipe, subject_image):
    """2 steps at 16 px: a loaded copy must give the same bits at any size; 16 px costs a third of the default 32 px."""
    pipe.set_progress_bar_config(disable=True)
    return pipe("on a beach", subject_image, "dog", num_inference_steps=2, height=16, width=16, generator=generator(0), output_type="np").images


def test_saved_layout_round_trip(tiny_pipeline, saved_tiny_pipeline, subject_image):
    loaded = BlipDiffusionPipeline.from_pretrained(saved_tiny_pipeline)
    assert (saved_tiny_pipeline / "subject_encoder" / "diffusion_pytorch_model.safetensors").is_file()
    assert (saved_tiny_pipeline / "subject_tokenizer").is_dir()
    np.testing.assert_array_equal(images(loaded, subject_image), images(tiny_pipeline, subject_image))


def test_community_shim_loads_saved_layout(tiny_pipeline, saved_tiny_pipeline, subject_image):
    pipe = DiffusionPipeline.from_pretrained(
        saved_tiny_pipeline, custom_pipeline=str(REPO_ROOT / "pipelines" / "blip_diffusion.py"), trust_remote_code=True
    )
    assert type(pipe).__name__ == "BlipDiffusionPipeline"
    np.testing.assert_array_equal(images(pipe, subject_image), images(tiny_pipeline, subject_image))


def test_published_layout_saves_to_our_layout(tmp_path, subject_image):
    published = BlipDiffusionPipeline.from_pretrained(PARITY_DIR / "tiny16", subject_tokenizer_name_or_path=str(PARITY_DIR / "bert_tokenizer"))
    published.save_pretrained(tmp_path / "ours")
    reloaded = BlipDiffusionPipeline.from_pretrained(tmp_path / "ours")
    np.testing.assert_array_equal(images(reloaded, subject_image), images(published, subject_image))


def test_published_layout_missing_component(tmp_path):
    folder = tmp_path / "published"
    shutil.copytree(PARITY_DIR / "tiny16", folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(CheckpointError, match=r"^vae: .*no 'vae' sub-folder"):
        BlipDiffusionPipeline.from_pretrained(folder, subject_tokenizer_name_or_path=str(PARITY_DIR / "bert_tokenizer"))


def test_published_layout_mismatching_shape(tmp_path):
    folder = tmp_path / "published"
    shutil.copytree(PARITY_DIR / "tiny16", folder)
    state = torch.load(folder / "qformer" / "pytorch_model.bin", weights_only=True)
    state["query_tokens"] = torch.zeros(1, 8, 32)
    torch.save(state, folder / "qformer" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"subject_encoder: key 'query_tokens' has shape \(1, 8, 32\)"):
        BlipDiffusionPipeline.from_pretrained(folder, subject_tokenizer_name_or_path=str(PARITY_DIR / "bert_tokenizer"))


def test_saved_layout_missing_component(tmp_path, saved_tiny_pipeline):
    folder = tmp_path / "pipe"
    shutil.copytree(saved_tiny_pipeline, folder)
    shutil.rmtree(folder / "unet")
    with pytest.raises(CheckpointError, match=r"^unet: .*no 'unet' sub-folder"):
        BlipDiffusionPipeline.from_pretrained(folder)


def test_saved_layout_mismatching_shape(tmp_path, saved_tiny_pipeline):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "pipe"
    shutil.copytree(saved_tiny_pipeline, folder)
    weights = folder / "subject_encoder" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["query_tokens"] = torch.zeros(1, 8, 32)
    save_file(state, weights)
    with pytest.raises(CheckpointError, match=r"^subject_encoder: .*query_tokens"):
        BlipDiffusionPipeline.from_pretrained(folder)


class NotATensor:
    pass


def test_unsafe_pickle_refused(tmp_path):
    path = tmp_path / "blip_weight.pt"
    torch.save({"weights": torch.zeros(2), "payload": NotATensor()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"^subject_encoder: refused .*blip_weight\.pt': it is a pickle that needs more "
                                                    r"than tensors to load, and loading it would run its code\. Give the weights as a "
                                                    r"\.safetensors file or a pickle of plain tensors instead"):
        load_pickle_checkpoint(path, component="subject_encoder")


def _pickle_with_code(path, state):
    """``state`` plus an object torch's safe unpickler refuses: what a malicious checkpoint looks like to the loader."""
    torch.save({**state, "payload": NotATensor()}, path)


# Issue 25 item 29: the three command paths that showed a raw traceback, at the library level (the CLI prints one line).
def test_lavis_text_encoder_pickle_is_refused_in_one_clear_error(tmp_path, tiny_components):
    source = write_lavis_checkpoint(tiny_components, tmp_path / "lavis")
    bad = source / "text_encoder" / "pytorch_model.bin"
    _pickle_with_code(bad, torch.load(bad, weights_only=True))
    with pytest.raises(UnsafeCheckpointError, match=rf"^text_encoder: refused '{re.escape(str(bad))}': .*would run its code\. Give the weights as model\.safetensors instead") as caught:
        BlipDiffusionPipeline.from_pretrained(source, tokenizer=tiny_components["tokenizer"], subject_tokenizer=tiny_components["subject_tokenizer"])
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_lavis_unet_pickle_is_refused_in_one_clear_error(tmp_path, tiny_components):
    from safetensors.torch import load_file

    source = write_lavis_checkpoint(tiny_components, tmp_path / "lavis")
    weights = source / "unet" / "diffusion_pytorch_model.safetensors"
    _pickle_with_code(source / "unet" / "diffusion_pytorch_model.bin", load_file(weights))
    weights.unlink()
    with pytest.raises(UnsafeCheckpointError, match=r"^unet: refused .*unet/diffusion_pytorch_model\.bin'.*Give the weights as "
                                                    r"diffusion_pytorch_model\.safetensors instead"):
        BlipDiffusionPipeline.from_pretrained(source, tokenizer=tiny_components["tokenizer"], subject_tokenizer=tiny_components["subject_tokenizer"])


def test_published_layout_text_encoder_pickle_is_refused_in_one_clear_error(tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "published"
    shutil.copytree(PARITY_DIR / "tiny16", folder)
    weights = folder / "text_encoder" / "model.safetensors"
    _pickle_with_code(folder / "text_encoder" / "pytorch_model.bin", load_file(weights))
    weights.unlink()
    with pytest.raises(UnsafeCheckpointError, match=r"^text_encoder: refused .*text_encoder/pytorch_model\.bin'.*Give the weights as "
                                                    r"model\.safetensors instead"):
        BlipDiffusionPipeline.from_pretrained(folder, subject_tokenizer_name_or_path=str(PARITY_DIR / "bert_tokenizer"))


@pytest.mark.parametrize("as_tarball", [False, True])
def test_lavis_layout_converts_and_generates(tmp_path, tiny_components, tiny_pipeline, subject_image, as_tarball):
    source = write_lavis_checkpoint(tiny_components, tmp_path / "lavis" / "BLIP-Diffusion_v1")
    if as_tarball:
        with tarfile.open(tmp_path / "blip-diffusion.tar.gz", "w:gz") as archive:
            archive.add(source, arcname="BLIP-Diffusion_v1")
        source = tmp_path / "blip-diffusion.tar.gz"
    pipe = BlipDiffusionPipeline.from_pretrained(
        source, tokenizer=tiny_components["tokenizer"], subject_tokenizer=tiny_components["subject_tokenizer"]
    )
    save_atomically(pipe, tmp_path / "converted")
    # Same weights (safetensors round trip is exact), same shapes and kernels: equal bits in practice; 1e-5 only allows
    # for a library choosing another kernel on reload.
    torch.testing.assert_close(pipe.encode_subject(subject_image, "dog"), tiny_pipeline.encode_subject(subject_image, "dog"), atol=1e-5, rtol=1e-5)
    reloaded = BlipDiffusionPipeline.from_pretrained(tmp_path / "converted")
    np.testing.assert_allclose(images(reloaded, subject_image), images(tiny_pipeline, subject_image), atol=1e-5)


def test_lavis_conversion_refuses_existing_output_and_missing_parts(tmp_path, tiny_components):
    source = write_lavis_checkpoint(tiny_components, tmp_path / "lavis")
    (tmp_path / "exists").mkdir()
    pipe = BlipDiffusionPipeline.from_pretrained(source, tokenizer=tiny_components["tokenizer"], subject_tokenizer=tiny_components["subject_tokenizer"])
    with pytest.raises(FileExistsError, match="already exists"):
        save_atomically(pipe, tmp_path / "exists")
    assert not any((tmp_path / "exists").iterdir())
    shutil.rmtree(source / "proj_layer")
    with pytest.raises(CheckpointError, match="proj_layer"):
        BlipDiffusionPipeline.from_pretrained(source, tokenizer=tiny_components["tokenizer"], subject_tokenizer=tiny_components["subject_tokenizer"])


def test_lavis_components_build_no_pipeline(tmp_path, tiny_components):
    source = write_lavis_checkpoint(tiny_components, tmp_path / "lavis")
    components = lavis_components(source, tokenizer=tiny_components["tokenizer"], subject_tokenizer=tiny_components["subject_tokenizer"])
    assert sorted(components) == sorted(BlipDiffusionPipeline.init_parameters() - {"subject_position", "subject_encoder_name",
                                                                                   "prompt_injector_name", "default_prompt_reps"})


def test_every_pipeline_shares_the_checked_loader(tmp_path, saved_tiny_pipeline):
    from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionEditPipeline

    folder = tmp_path / "pipe"
    shutil.copytree(saved_tiny_pipeline, folder)
    shutil.rmtree(folder / "vae")
    for pipeline_class in (BlipDiffusionEditPipeline, BlipDiffusionControlNetPipeline):
        with pytest.raises(CheckpointError, match=r"^vae: .*no 'vae' sub-folder"):
            pipeline_class.from_pretrained(folder)

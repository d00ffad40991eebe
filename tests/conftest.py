"""Shared fixtures: tiny BLIP-Diffusion components built in code, offline, float32, CPU."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
# Where PYTHONDONTWRITEBYTECODE is set (this project's CI image sets it, and uv installs no bytecode), every interpreter
# the suite starts (two xdist workers a step, fresh-interpreter checks, torchrun children) compiled torch, transformers
# and diffusers from source again: ~24 s of CPU an import against ~10 s from bytecode. The first one writes it now.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `datasets` caches every non-streamed folder or parquet dataset it loads (Arrow copies and lock files, hundreds a run):
# into a folder of this run, removed at its end, not the user's ~/.cache.
if "HF_DATASETS_CACHE" not in os.environ:
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="blipdiff-tests-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (the README's `-n 2`) each worker owns one core: a second torch thread per worker, or per
    # child process it starts, would only make the workers take turns.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pickle  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Under ``-n``: pymatting's numba functions compile once, in the background (tests/pymatting_compile.py)."""
    from tests import pymatting_compile

    if os.environ.get("PYTEST_XDIST_WORKER"):
        pymatting_compile.wait_before_import()
    elif getattr(config.option, "numprocesses", None):
        pymatting_compile.start_compile()


def pytest_runtest_setup(item):
    """Under pytest-xdist every test starts on the worker's one torch thread (before its fixtures). numba, which
    pymatting loads (a test module's import, a matting call), sets the OpenMP thread count torch shares to every
    core, for the rest of the worker's life: two workers of two threads each on two cores took turns, and the tests
    that ran after it took up to 10x longer."""
    torch = sys.modules.get("torch")
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if torch is not None and os.environ.get("PYTEST_XDIST_WORKER") and threads.isdigit() and int(threads) > 0 and torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


@pytest.fixture(scope="session")
def tiny_components():
    """Components of the built-in 'tiny' model; tests must not modify them (copy with `fresh_tiny_pipeline`)."""
    from blipdiff_plugins.builtin.models import build_builtin_components

    return build_builtin_components("tiny", seed=0)


@pytest.fixture()
def tiny_pipeline(tiny_components):
    from blipdiff_plugins import BlipDiffusionPipeline

    pipe = BlipDiffusionPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def saved_tiny_pipeline(tiny_components, tmp_path_factory):
    """The tiny pipeline written by our `save_pretrained`."""
    from blipdiff_plugins import BlipDiffusionPipeline

    folder = tmp_path_factory.mktemp("tiny_pipeline")
    BlipDiffusionPipeline(**tiny_components).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def subject_image():
    """A non-square RGB test image with structure (a gradient and a square)."""
    rows, cols = np.mgrid[0:72, 0:96]
    array = np.stack([rows * 3 % 256, cols * 2 % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)
    array[20:50, 30:60] = (250, 40, 40)
    return PIL.Image.fromarray(array)


@pytest.fixture()
def fresh_pipeline(tiny_components):
    """A factory of tiny pipelines with their own copy of the weights."""
    import copy

    from blipdiff_plugins import BlipDiffusionPipeline

    def make():
        components = {name: copy.deepcopy(value) for name, value in tiny_components.items()}
        pipe = BlipDiffusionPipeline(**components)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return make


def once_per_run(tmp_path_factory, name: str, build):
    """``build(folder)`` once for the whole test run, returning its (picklable) value.

    Under pytest-xdist every worker is a session of its own, so a session fixture would run once per worker; here the
    first worker builds into the run's shared temporary folder and the others wait for it and read the pickled value.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # one folder per run, above every worker's own
    stored = shared / f"{name}.pickle"
    with FileLock(f"{stored}.lock"):
        if not stored.is_file():
            folder = shared / name
            folder.mkdir()
            stored.write_bytes(pickle.dumps(build(folder)))
        return pickle.loads(stored.read_bytes())


@pytest.fixture(scope="session")
def toy_recipe_run(tmp_path_factory):
    """One smoke run of the toy-world recipe at size "micro" (a minute or two), shared by the run:
    ``(run folder, report)``; its ``model/`` folder stands in for the shipped toy model (see `toy_model`)."""

    def train(folder):
        from blipdiff_plugins.training.toy_recipe.recipe import train_toyworld

        from tests.helpers import one_torch_thread
        from tests.toyworld.helpers import TINY_RECIPE

        with one_torch_thread():  # test_recipe.py resumes a copy of it and compares weights
            return folder, train_toyworld(folder, config=TINY_RECIPE, progress=False, vae_gate=0)

    return once_per_run(tmp_path_factory, "toy_recipe", train)


@pytest.fixture()
def toy_model(toy_recipe_run, monkeypatch, tmp_path):
    """``builtin`` / ``builtin:toy`` load the micro toy model of `toy_recipe_run` instead of the shipped one (a test
    model, fast and independent of the shipped weights), with no toy UMM on it (`toy_umm_model` adds one). Returns
    its folder."""
    import blipdiff_plugins.builtin.toy_model as toy_model_module
    import blipdiff_plugins.builtin.toy_umm as toy_umm_module

    folder = toy_recipe_run[0] / "model"
    monkeypatch.setattr(toy_model_module, "toy_model_folder", lambda: folder)
    monkeypatch.setattr(toy_umm_module, "toy_umm_folder", lambda: tmp_path / "no-toy-umm")
    return folder


@pytest.fixture()
def toy_umm_model(toy_model, micro_toy_umm, tmp_path, monkeypatch):
    """``builtin`` for UMM-Diffusion: the micro toy UMM packed by `pack_toy_umm` (the maintainer's path) on the micro
    toy model of `toy_model`. Returns the packed folder."""
    import blipdiff_plugins.builtin.toy_umm as toy_umm_module

    packed = toy_umm_module.pack_toy_umm(micro_toy_umm[0], tmp_path / "toy_umm")
    monkeypatch.setattr(toy_umm_module, "toy_umm_folder", lambda: packed)
    return packed


@pytest.fixture()
def no_toy_model(tmp_path, monkeypatch):
    """``builtin`` / ``builtin:toy`` find no shipped toy model (a source checkout before its weights were added)."""
    import blipdiff_plugins.builtin.toy_model as toy_model_module
    import blipdiff_plugins.builtin.toy_umm as toy_umm_module

    monkeypatch.setattr(toy_model_module, "toy_model_folder", lambda: tmp_path / "no-toy-model")
    monkeypatch.setattr(toy_umm_module, "toy_umm_folder", lambda: tmp_path / "no-toy-umm")


@pytest.fixture(scope="session")
def micro_toy_run(toy_recipe_run):
    """RUN/model (a `BlipDiffusionPipeline`, 32 px) and RUN/stage3_prompted/records, as `blipdiff toyworld train` writes them:
    the session's smoke run (`toy_recipe_run`)."""
    return toy_recipe_run[0]


@pytest.fixture(scope="session")
def micro_toy_umm(micro_toy_run, tmp_path_factory):
    """A toy UMM pipeline folder trained on the micro run through the command line."""

    def train(folder):
        from blipdiff_plugins.cli import main

        from tests.toyworld.helpers import MICRO_UMM_FLAGS

        output = folder / "umm"
        argv = ["toyworld", "train-umm", "--toy-model", str(micro_toy_run / "model"), "--records",
                str(micro_toy_run / "stage3_prompted" / "records"), "--output", str(output), *MICRO_UMM_FLAGS]
        assert main(argv) == 0
        return output, argv

    return once_per_run(tmp_path_factory, "micro_toy_umm", train)

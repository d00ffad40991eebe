"""The README's Python snippets run as written, with the built-in model standing in for Hub ids (doctest-style)."""

from __future__ import annotations

import os
import re

import numpy as np
import PIL.Image
import pytest

from tests.helpers import REPO_ROOT

README = REPO_ROOT / "README.md"
# Hub ids become the built-in model, GPU settings the CPU, step counts the fewest that exercise the code.
SUBSTITUTIONS = (
    ('"Salesforce/blipdiffusion-controlnet"', '"builtin:random-tiny"'),
    ('"Salesforce/blipdiffusion"', '"builtin:random-tiny"'),
    ("torch.float16", "torch.float32"),
    ('.to("cuda")', '.to("cpu")'),
    ("num_inference_steps=25", "num_inference_steps=2"),
    ('strategy="lora", steps=40)', 'strategy="lora", steps=1, validation_steps=1)'),  # one step, and its sample in one
    ("steps=40", "steps=1"),
    ('Stage1Config(steps=1000, batch_size=64, output_dir="my-qformer")',
     'Stage1Config(steps=1, batch_size=2, output_dir="my-qformer", report_to="none", progress_bar=False)'),
    ("steps=50", "steps=2"),  # img2img at strength 0.6: one denoising step
)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    from blipdiff_plugins import BlipDiffusionPipeline

    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    source = "\n".join(blocks)
    for old, new in SUBSTITUTIONS:
        source = source.replace(old, new)
    assert "Salesforce/" not in source
    # The files the snippets name, in a scratch folder.
    rng = np.random.default_rng(0)
    for name in ("dog1.jpg", "dog2.jpg", "dog.jpg", "pose.jpg", "flower.jpg", "teapot.jpg", "photos/1.jpg", "photos/2.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        PIL.Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / name)
    for folder in ("pairs", "held-out-pairs"):  # stage 1's image-caption pairs
        (tmp_path / folder).mkdir()
        for index in range(2):
            PIL.Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / folder / f"{index}.png")
        (tmp_path / folder / "metadata.jsonl").write_text("".join(f'{{"file_name": "{i}.png", "caption": "a dog {i}"}}\n' for i in range(2)))
    BlipDiffusionPipeline.from_pretrained("builtin:random-tiny").save_pretrained(tmp_path / "blipdiffusion-converted")
    os.symlink(REPO_ROOT / "pipelines", tmp_path / "pipelines")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(source, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    assert len(namespace["images"]) == 2 and namespace["dog"].shape[0] == 1
    assert (tmp_path / "rex" / "subject_model.json").is_file() and namespace["image"].size == (32, 32)
    assert namespace["result"].images and namespace["out"].control_images
    assert namespace["both"].size == (namespace["side"],) * 2  # two subjects inpainted through the stock pipeline
    assert (tmp_path / "my-qformer" / "stage1.json").is_file() and (tmp_path / "my-qformer" / "retrieval" / "step-000001.json").is_file()


def test_from_pretrained_builtin_random_is_the_random_builtin_model():
    import torch

    from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionPipeline
    from blipdiff_plugins import build_builtin_pipeline

    pipe = BlipDiffusionPipeline.from_pretrained("builtin:random-tiny", torch_dtype=torch.bfloat16)
    reference = build_builtin_pipeline("tiny")
    assert pipe.unet.dtype == torch.bfloat16
    assert torch.equal(pipe.unet.conv_in.weight.float(), reference.unet.conv_in.weight.to(torch.bfloat16).float())
    assert BlipDiffusionPipeline.from_pretrained("builtin:random-small").unet.config.sample_size == 16
    assert BlipDiffusionControlNetPipeline.from_pretrained("builtin:random-tiny").controlnet is not None
    with pytest.raises(ValueError, match="unknown built-in model 'builtin:huge'.*builtin:random-mid"):
        BlipDiffusionPipeline.from_pretrained("builtin:huge")
    # The old names of the random sizes say what they are called now.
    with pytest.raises(ValueError, match="'builtin:mid' is the old name of a random-weight model; use 'builtin:random-mid'"):
        BlipDiffusionPipeline.from_pretrained("builtin:mid")


@pytest.mark.slow  # the shipped model, the README's main command
def test_readme_main_command_renders_a_heldout_toy_subject_with_the_shipped_model(tmp_path, monkeypatch, capsys):
    """The first bash block after the install: `toyworld references` then `generate --model builtin`, as written."""
    import shlex

    from blipdiff_plugins.cli import main

    block = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)[0]
    commands = [shlex.split(part.strip()) for part in block.strip().split("&&")]
    ours = [argv[1:] for argv in commands if argv[0] == ".venv/bin/blipdiff"]
    assert [argv[0] for argv in ours] == ["toyworld", "generate"] and "builtin" in ours[1]
    monkeypatch.chdir(tmp_path)
    for argv in ours:
        assert main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "toy world" in err and "not Stable Diffusion" in err  # the notice says what the model is
    prompts = ours[1][ours[1].index("--prompt") + 1 : ours[1].index("--output")]
    written = sorted(p.name for p in (tmp_path / "outputs").glob("*.png"))
    assert len(written) == len(prompts) == 4
    with PIL.Image.open(tmp_path / "outputs" / written[0]) as image:
        assert image.size == (64, 64)


def test_readme_test_command_leaves_out_the_slow_tests_that_ci_runs_second():
    command = re.search(r"<!-- test-command -->\n```bash\n(.*?)\n", README.read_text(encoding="utf-8")).group(1)
    assert command.endswith('.venv/bin/python -m pytest -q -n 2 -m "not slow"')  # -n 2: pytest-xdist, two workers
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index('bash -c "$cmd"') < ci.index('slow=".venv/bin/python -m pytest -q -n 2 -m slow"')
    assert '[ "$status" -ne 0 ] && [ "$status" -ne 5 ]' in ci  # "no test collected" passes the second step only
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "--strict-markers" in pyproject and 'markers = ["slow:' in pyproject
    assert '"pytest-xdist' in pyproject  # the test extra installs what `-n 2` needs

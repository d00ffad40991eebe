"""A method registered in a test module gets its --method value and its option flags in the CLI's generate
(their bounds; other methods refuse them)."""

import json

import pytest

from blipdiff_plugins.cli import main
from blipdiff_plugins.methods import METHODS, Method, MethodOption
from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline

CALLS = []


class EchoPipeline(BlipDiffusionPipeline):
    """BLIP-Diffusion that records its own option (a stand-in for a new method's pipeline)."""

    def __call__(self, *args, echo_strength: float = 0.0, **kwargs):
        CALLS.append({"echo_strength": echo_strength, "source_subject": kwargs.get("source_subject")})
        return super().__call__(*args, **kwargs)


METHOD = Method(
    name="echo_diffusion", title="Echo-Diffusion", aliases=("echo",), pipeline=f"{__name__}:EchoPipeline",
    subject_encoder="blip2_qformer", prompt_injectors=("infix",), guidance="blipdiff_plugins.pipelines.denoising:classifier_free_guidance",
    subject_word_argument="source_subject", tasks=frozenset({"generate"}),
    options=(MethodOption("echo_strength", "how loud the echo is", kind=float, default=0.25, minimum=0.0, maximum=2.0),),
)


@pytest.fixture()
def echo_method():
    METHODS.register("echo_diffusion", f"{__name__}:METHOD")
    yield METHOD
    METHODS.unregister("echo_diffusion")


def test_a_registered_method_gets_its_flag_and_runs_through_generate(echo_method, tmp_path, subject_image, capsys):
    photo = tmp_path / "dog.png"
    subject_image.save(photo)
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = capsys.readouterr().out
    assert "--echo-strength" in help_text and "Echo-Diffusion: how loud the echo is" in help_text
    CALLS.clear()
    argv = ["generate", "--method", "echo", "--model", "builtin:random-tiny", "--subject-image", str(photo), "--subject", "dog",
            "--prompt", "on a beach", "--steps", "1", "--height", "16", "--width", "16", "--echo-strength", "1.5",
            "--output", str(tmp_path / "out")]
    assert main(argv) == 0, capsys.readouterr().err
    assert CALLS == [{"echo_strength": 1.5, "source_subject": "dog"}]
    sidecar = json.loads((tmp_path / "out" / "000-on-a-beach.json").read_text())
    assert sidecar["settings"]["method"] == "echo" and sidecar["settings"]["echo_strength"] == 1.5
    # Its option's bounds come from its record; other methods refuse its flag.
    with pytest.raises(SystemExit):
        main(argv[:-2] + ["--echo-strength", "3", "--output", str(tmp_path / "o2")])
    assert "--echo-strength: must lie between 0 and 2, got 3.0." in capsys.readouterr().err
    assert main(["generate", "--method", "blip"] + argv[3:-2] + ["--output", str(tmp_path / "o3")]) == 2
    assert "`--echo-strength` is not a setting of BLIP-Diffusion" in capsys.readouterr().err

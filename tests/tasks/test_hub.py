import os
import subprocess
import sys

import pytest

from blipdiff_plugins.cli import main
from blipdiff_plugins.tasks.errors import ModelArgumentError, cli_flag
from blipdiff_plugins.tasks.hub import check_hub_model


def test_offline_mode_and_an_uncached_id_is_one_line_at_once(tmp_path, monkeypatch, capsys, subject_image):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # conftest sets it too; stated here because the test is about it
    with pytest.raises(ModelArgumentError) as error:
        check_hub_model("nobody-here/no-such-model")
    assert error.value.argument == "model"
    assert error.value.message_for(cli_flag).startswith(
        "`--model`: could not load 'nobody-here/no-such-model': no network to the Hub (HF_HUB_OFFLINE is set) and the id is not in the Hub cache;"
    )
    assert "`--model FOLDER`" in error.value.message_for(cli_flag) and "`--model builtin`" in error.value.message_for(cli_flag)
    photo = tmp_path / "dog.png"
    subject_image.save(photo)
    assert main(["generate", "--model", "nobody-here/no-such-model", "--subject-image", str(photo), "--subject", "dog",
                 "--prompt", "x", "--output", str(tmp_path / "o")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and "HF_HUB_OFFLINE is set" in errors[0] and "Retrying" not in errors[0]


@pytest.mark.slow
def test_an_unreachable_hub_is_one_line_without_retries(tmp_path, subject_image):
    """A fake Hub endpoint on loopback that refuses connections: one request, one error line, no "Retrying in"."""
    photo = tmp_path / "dog.png"
    subject_image.save(photo)
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(tmp_path / "empty-cache"), PYTHONPATH=os.pathsep.join(sys.path),
               OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "blipdiff_plugins.cli", "generate", "--model", "nobody-here/no-such-model", "--subject-image", str(photo),
         "--subject", "dog", "--prompt", "x", "--output", str(tmp_path / "o")],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode == 2
    assert "Retrying" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("blipdiff generate: error: `--model`: could not load 'nobody-here/no-such-model': no network to the Hub (ConnectError")
    assert "http://127.0.0.1:9" in errors[0] and not (tmp_path / "o").exists()

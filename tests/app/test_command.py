"""`blipdiff ui`: registered, safe defaults (127.0.0.1, no share link), flags checked before anything loads."""

from __future__ import annotations

import pytest

from blipdiff_plugins.cli import build_parser, main


def test_defaults_bind_localhost_without_a_share_link():
    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.share, args.model, args.concurrency) == ("127.0.0.1", 7860, "off", "builtin", 1)


@pytest.mark.parametrize(("argv", "message"), [(["--port", "70000"], "`--port` must be from 1 to 65535, got 70000"), (["--concurrency", "0"], "`--concurrency` must be at least 1, got 0")])
def test_bad_flags_are_named(argv, message, capsys):
    assert main(["ui", *argv]) == 2
    assert message in capsys.readouterr().err


def test_builder_rejects_zero_concurrency(tmp_path):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")
    from blipdiff_plugins.app.builder import build_app
    from blipdiff_plugins.app.service import ModelService

    with pytest.raises(ValueError, match="`concurrency` must be at least 1, got 0"):
        build_app(ModelService(model="builtin:random-tiny", output_dir=tmp_path), concurrency=0)

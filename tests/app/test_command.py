"""`blipdiff ui`: registered, safe defaults (127.0.0.1, no share link), flags checked before anything loads."""

from __future__ import annotations

import socket

import pytest

from blipdiff_plugins.cli import build_parser, main


def test_defaults_bind_localhost_without_a_share_link():
    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.share, args.model, args.concurrency) == ("127.0.0.1", 7860, "off", "builtin", 1)


@pytest.mark.parametrize(("argv", "message"), [(["--port", "70000"], "`--port` must be from 1 to 65535 (or 0 for a free one), got 70000"), (["--concurrency", "0"], "`--concurrency` must be at least 1, got 0")])
def test_bad_flags_are_named(argv, message, capsys):
    assert main(["ui", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_port_in_use_is_one_line_naming_the_flag_before_the_model_loads(capsys, monkeypatch):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")
    import blipdiff_plugins.app.service as service_module

    def no_model(**kwargs):
        raise AssertionError("the model must not load when the port is taken")

    monkeypatch.setattr(service_module, "ModelService", no_model)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"blipdiff ui: error: `--port` {port} is in use on 127.0.0.1 (another server, or an earlier `blipdiff ui`): pass another port, "
        f"e.g. `--port {port + 1}`, or `--port 0` for a free one.\n"
    )


def test_port_zero_claims_a_free_port_and_a_foreign_host_is_named():
    from blipdiff_plugins.commands.ui import claim_port

    port = claim_port("127.0.0.1", 0)
    assert 1 <= port <= 65535
    with pytest.raises(ValueError, match=r"^`--host` '192.0.2.1' is not an address of this machine; pass 127.0.0.1"):
        claim_port("192.0.2.1", 0)  # TEST-NET-1: never an address of this machine


def test_builder_rejects_zero_concurrency(tmp_path):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")
    from blipdiff_plugins.app.builder import build_app
    from blipdiff_plugins.app.service import ModelService

    with pytest.raises(ValueError, match="`concurrency` must be at least 1, got 0"):
        build_app(ModelService(model="builtin:random-tiny", output_dir=tmp_path), concurrency=0)

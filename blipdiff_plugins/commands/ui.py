"""``blipdiff ui``: serve the web app (Gradio) on one shared model."""

from __future__ import annotations

import argparse
import errno
import os
import socket

from .common import DTYPES, MODEL_HELP, HelpFormatter, notify


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "ui",
        help="serve the web app: generate, fine-tune, edit, style and attention tabs",
        description="Serve the blipdiff web app (needs `pip install 'blipdiff_plugins[ui]'`). The model is loaded once "
        "and shared by every tab and user; requests queue so the machine is not run out of memory.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--model", default="builtin",
        help=MODEL_HELP,
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="weights dtype")
    parser.add_argument("--subject-tokenizer", default=None, help="Q-Former BERT tokenizer for the published layout")
    parser.add_argument("--method-model", action="append", default=[], metavar="METHOD=MODEL",
                        help="a model for one method of the Generate tab (repeatable), e.g. umm=FOLDER; a built-in --model serves every method")
    parser.add_argument("--umm-model", default=None, help="short for --method-model umm=FOLDER: a UMM-Diffusion pipeline folder")
    parser.add_argument("--controlnet", default=None, help="ControlNet folder or Hub id for the Style tab (the built-in model makes its own)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 serves your whole network")
    parser.add_argument("--port", type=int, default=7860, help="port to bind; 0 picks a free one")
    parser.add_argument("--share", default="off", choices=("off", "on"), help="'on' opens a public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=1, help="model requests run at once (more wait in the queue)")
    parser.add_argument("--output", default=None, help="folder for results and fine-tuned subject models (default: a new temporary folder)")
    parser.set_defaults(func=run)
    return parser


def port_problem(host: str, port: int, error: OSError) -> str:
    """One line saying why ``host:port`` cannot be served and what to pass instead."""
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return f"`--host` {host!r} is not an address of this machine; pass 127.0.0.1 (this machine only) or 0.0.0.0 (your network)."
    if error.errno == errno.EACCES:
        return f"`--port` {port} needs administrator rights on {host}; pass a port from 1024 to 65535, or `--port 0` for a free one."
    return (
        f"`--port` {port} is in use on {host} (another server, or an earlier `blipdiff ui`): pass another port, "
        f"e.g. `--port {port + 1 if port < 65535 else 7860}`, or `--port 0` for a free one."
    )


def claim_port(host: str, port: int) -> int:
    """``port`` if it can be served on ``host`` (a free one for 0), checked before the model loads; else `ValueError`.

    Binds with SO_REUSEADDR as the server (uvicorn) does, so a port an earlier run left in TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(port_problem(host, port, error)) from None
        return probe.getsockname()[1]


def method_models(args) -> dict[str, str]:
    """``--method-model METHOD=MODEL`` (and ``--umm-model``) as method -> model."""
    models = {}
    for item in args.method_model + ([f"umm={args.umm_model}"] if args.umm_model else []):
        method, separator, model = item.partition("=")
        if not separator or not method or not model:
            raise ValueError(f"`--method-model` {item!r} must be METHOD=MODEL, e.g. umm=umm-folder.")
        models[method] = model
    return models


def run(args) -> int:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"`--port` must be from 1 to 65535 (or 0 for a free one), got {args.port}.")
    if args.concurrency < 1:
        raise ValueError(f"`--concurrency` must be at least 1, got {args.concurrency}.")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage reports leave the machine
    try:
        from ..app.builder import build_app
        from ..app.display import PAGE_CSS
    except ImportError as error:
        raise ImportError(f"`blipdiff ui` needs Gradio ({error}); install it with: pip install 'blipdiff_plugins[ui]'") from error
    from ..app.service import ModelService

    port = claim_port(args.host, args.port)
    service = ModelService(  # the task layer checks --model, --device and --dtype before loading, and loads
        model=args.model, device=args.device, dtype=args.dtype, output_dir=args.output, controlnet=args.controlnet,
        subject_tokenizer=args.subject_tokenizer, method_models=method_models(args), notify=notify,
    )
    print(f"Results and subject models go to {service.output_dir}")
    demo = build_app(service, concurrency=args.concurrency)
    try:
        demo.launch(server_name=args.host, server_port=port, share=args.share == "on", show_error=False, css=PAGE_CSS)
    except OSError as error:  # taken while the model loaded: Gradio's message names its own parameters
        raise ValueError(port_problem(args.host, port, error)) from None
    return 0

"""`hfssl demo runs/my-mlm [--share] [--port 7860] [--host 127.0.0.1]`: open a model's Gradio demo."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import socket
from collections.abc import Sequence

from .kinds import DEMO_KINDS, POOLING_RULES

DESCRIPTION = (
    "Try a model in a Gradio app: fill-mask for masked LMs, streamed generation for next-token LMs, "
    "original | masked | reconstruction for MAE, class probabilities for fine-tuned classifiers, and nearest "
    "neighbours over a gallery for every encoder, plus the model card's tables. Needs the demo extra: pip install 'hfssl[demo]'."
)


def add_demo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `hfssl demo` arguments to `parser` and return it."""
    parser.add_argument("model", help="Run directory (runs/<name>), a save_pretrained folder, or a Hub id owner/name.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to listen on (default 127.0.0.1; 0.0.0.0 serves other machines).")
    parser.add_argument("--port", type=int, default=7860, help="Port (default 7860).")
    parser.add_argument("--share", action="store_true", help="Also open a temporary public gradio.live link.")
    parser.add_argument("--kind", choices=list(DEMO_KINDS),
                        help="Main tab, instead of the one the run's objective or the architecture implies.")
    parser.add_argument("--pooling", choices=POOLING_RULES, default="mean",
                        help="Pooling of stock transformers encoders that have no get_features (default mean).")
    return parser


def run_demo_from_args(args: argparse.Namespace) -> int:
    """Build and launch the demo (blocks until interrupted); returns the exit code."""
    if importlib.util.find_spec("gradio") is None:
        raise ValueError("The demo needs gradio, which is not installed: pip install 'hfssl[demo]'.")
    from .app import build_demo, launch_demo

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not a port number; pass one from 1 to 65535 (default 7860).")
    check_host(args.host)
    demo = build_demo(args.model, kind=args.kind, pooling=args.pooling)
    try:
        launch_demo(demo, host=args.host, port=args.port, share=args.share)
    except OSError as error:
        raise ValueError(f"Cannot serve on {args.host}:{args.port}: {error}. Pass another --port.") from error
    return 0


def check_host(host: str) -> None:
    """ValueError when `host` is no address this machine can listen on. Gradio reports an unknown or foreign
    address as "Cannot find empty port", which sends users after the port instead of the host."""
    fix = "pass 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or an address of this machine"
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        raise ValueError(f"--host {host} is not a known address ({error}); {fix}.") from error
    with socket.socket(family, kind) as sock:
        try:
            sock.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"--host {host} is not an address of this machine ({error.strerror}); {fix}.") \
                    from error


def build_parser() -> argparse.ArgumentParser:
    """The parser of `hfssl demo` (quick: nothing heavy is imported)."""
    return add_demo_arguments(argparse.ArgumentParser(prog="hfssl demo", description=DESCRIPTION))


def cmd_demo(argv: Sequence[str]) -> int:
    """Try a run directory or Hub id in a Gradio app (fill-mask, generation, MAE, classifier, gallery search)."""
    return run_demo_from_args(build_parser().parse_args(argv))

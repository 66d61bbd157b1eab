"""Serve the model over HTTP: an OpenAI-compatible API with vLLM's diffusion fields, live steps and step-level batching.

Loopback only unless an API key is set (DGTERM_API_KEY or api_key in the config); then
every request must send it. docs/serve.md says how to point dgterm or any OpenAI client at it.
"""

from __future__ import annotations

from dgterm.commands.arguments import whole
from dgterm.engine.args import EngineArgs

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def seconds(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def add_arguments(p):
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=whole(0), default=8000, help="port (default %(default)s; 0 picks a free one)")
    p.add_argument("--max-batch", type=whole(1), default=8,
                   help="sequences denoised together in one forward per step (default %(default)s)")
    p.add_argument("--max-tokens", type=whole(1), default=4096, help="largest max_tokens a request may ask for")
    p.add_argument("--max-candidates", type=whole(1), default=8, help="largest n a request may ask for")
    p.add_argument("--max-queue", type=whole(1), default=64, help="sequences waiting before requests get 503")
    p.add_argument("--max-body", type=whole(1), default=1 << 20, help="largest request body in bytes")
    p.add_argument("--header-timeout", type=seconds, default=10.0, metavar="SECONDS",
                   help="a request whose headers take longer gets a 408 (default %(default)s)")
    p.add_argument("--body-timeout", type=seconds, default=60.0, metavar="SECONDS",
                   help="a request whose body takes longer to arrive gets a 408 (default %(default)s)")
    p.add_argument("--served-model-name", nargs="+", metavar="NAME",
                   help="the model names requests may give, the first in every response (default: the "
                        "checkpoint's own name and the --model argument as given)")
    EngineArgs.add_cli_args(p, sampler=False, remote=False)


def run(args) -> int:
    import socket
    import sys

    from dgterm.errors import InputError

    # serves the model it loads, whatever DGTERM_SERVER says
    engine_args = EngineArgs.from_cli_args(args).replace(server="")
    key = engine_args.settings.api_key or None
    if args.host not in LOOPBACK and not key:
        raise InputError(f"Refusing to listen on {args.host} without an API key: set DGTERM_API_KEY (or api_key in "
                         "the config) so that every request must send it, or keep --host 127.0.0.1.")
    import uvicorn

    from dgterm.engine.tasks.template import thinking_of
    from dgterm.server.app import ServeConfig, build_app
    from dgterm.server.connection import guarded
    from dgterm.server.protocol import Limits

    try:  # bind first, so a taken port is one sentence before the model loads
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.create_server((args.host, args.port), family=family)
    except OSError as e:
        raise InputError(f"Cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port.") from None
    lm = engine_args.load()
    limits = Limits(max_body=args.max_body, max_tokens=args.max_tokens, max_candidates=args.max_candidates,
                    max_queue=args.max_queue)
    names = args.served_model_name or [lm.name, engine_args.settings.model]
    thinking = thinking_of(engine_args.settings.thinking, None)
    app = build_app(lm, ServeConfig(api_key=key, max_batch=args.max_batch, limits=limits, served_names=names,
                                    thinking=thinking, body_timeout=args.body_timeout))
    host, port = sock.getsockname()[:2]
    print(f"dgterm serve: {names[0]} at http://{host}:{port}/v1 (max batch {args.max_batch}"
          f"{', API key required' if key else ''})", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, http=guarded(args.header_timeout))
    uvicorn.Server(config).run(sockets=[sock])
    return 0

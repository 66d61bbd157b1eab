"""Run a language server over stdio: infill at the cursor, rewrites of a selection.

Start it from the editor (docs/lsp.md: Neovim, Helix, any LSP client). Settings come from
the config file, DGTERM_* and the client's initializationOptions; the flags below win.
"""

from __future__ import annotations

from dgterm.engine.args import EngineArgs


def add_arguments(p):
    p.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default and only transport)")
    EngineArgs.add_cli_args(p)
    p.set_defaults(candidates=None)  # unset: initializationOptions' candidates, else the default


def run(args) -> int:
    import os
    import sys

    from dgterm.lsp.features import register
    from dgterm.lsp.server import DgtermServer

    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print (a library's) must not corrupt the protocol
    sys.stdout = sys.stderr
    server = DgtermServer(args)
    register(server)
    try:
        server.start_io(sys.stdin.buffer, protocol_out)
        code = 0
    except SystemExit as e:  # the client's `exit`: 0 after `shutdown`, else 1 (the protocol's rule)
        code = e.code if isinstance(e.code, int) else 1
    sys.stderr.flush()
    os._exit(code)  # now, without waiting for a model still loading in the engine's thread (nothing to save)

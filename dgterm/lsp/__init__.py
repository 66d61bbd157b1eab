"""`dgterm lsp`: a language server for diffusion infill and rewrite (a front end, like tui/repl/server).

:mod:`.server` holds the engine and the runs, :mod:`.features` what the server offers
(inline completion, code actions and their commands), :mod:`.positions` the exact position
conversion, :mod:`.progress` the live ``$/progress``, :mod:`.settings` the layered settings.
docs/lsp.md says how to set an editor up.
"""

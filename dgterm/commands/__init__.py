"""One module per ``dgterm`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``.

Modules import nothing heavy at import time: ``dgterm --help`` stays instant.
"""

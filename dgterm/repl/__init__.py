"""The prompt-toolkit REPL: session (loop), driver (worker thread), render (live canvas), commands."""

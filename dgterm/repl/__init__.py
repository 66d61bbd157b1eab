"""The prompt-toolkit REPL: loop (the Repl), driver (the run thread), render (live canvas), slash (slash commands)."""

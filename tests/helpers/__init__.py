"""What tests share: the CLI runner, the editor's Pilot helpers, tmux, the server's metrics,
the vLLM stand-in. Fixtures live in tests/conftest.py."""

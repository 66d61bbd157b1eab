"""The engine at a URL (`dgterm serve` or vLLM): the client and runs as requests."""

"""`dgterm serve`: the local runtime behind an OpenAI-compatible HTTP API that takes vLLM's diffusion fields."""

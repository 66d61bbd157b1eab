"""dgterm: a terminal editor and REPL for text-diffusion language models."""

__version__ = "0.1.0"

"""Modal screens: help, instruction and file-name prompts, confirmations."""

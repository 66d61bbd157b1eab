"""What a run shows and keeps: frames of draft tokens, token text, traces."""

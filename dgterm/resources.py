"""Folders shipped with dgterm (the bundled model, memory profiles, themes): inside the
package when installed from a wheel (pyproject's force-include), else at the repo root."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def shipped(relative: str) -> Path:
    """``relative`` (e.g. ``runtime/profiles``) in the package or the repo, whichever has it;
    the repo's path when neither does (so that a message can name where it was looked for)."""
    for root in (PACKAGE, PACKAGE.parent):
        if (root / relative).exists():
            return root / relative
    return PACKAGE.parent / relative

"""Out of memory, for every front end: recognise it, free the allocator's cache, and say
in one sentence what to shrink. torch is imported only when an error is looked at."""

from __future__ import annotations

import contextlib
import sys

from dgterm.errors import OutOfMemory


def is_oom(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (a RuntimeError), the CPU allocator's refusal, or MemoryError."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    torch = sys.modules.get("torch")  # not loaded: the error cannot be torch's
    text = str(exc)
    return (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)) or "out of memory" in text.lower() \
        or "can't allocate memory" in text


def release() -> None:
    """Hand the allocator's cached blocks back, so the next run starts from a clean slate."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def explain_oom(exc: BaseException, plan: str | None = None, candidates: int = 1, context: int | None = None) -> str:
    """One sentence for an out-of-memory error in a run, suggesting what to shrink."""
    hints = []
    if candidates > 1:
        hints.append(f"fewer candidates (now {candidates})")
    hints.append("a shorter context" + (f" (now {context} tokens)" if context else ""))
    if plan in (None, "bf16", "none", "int8"):
        hints.append("--quant nf4")
    return ("Out of memory on the device during the run; nothing was changed — try " + ", ".join(hints[:-1])
            + (" or " if len(hints) > 1 else "") + hints[-1] + ".")


def explain_for_session(name: str, device: str) -> str:
    """The sentence for a long-lived session (the REPL), in the knobs it has."""
    return f"{name} ran out of memory on {device}; lower /canvases or --candidates, or restart with --quant nf4."


@contextlib.contextmanager
def guard_oom(plan: str | None = None, candidates: int = 1, context: int | None = None):
    """Turn an out-of-memory error into :class:`OutOfMemory` (a DgtermError that front ends show
    as one line and go on) after releasing the allocator's cached blocks."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - re-raised unless it is an OOM
        if not is_oom(exc):
            raise
        release()
        raise OutOfMemory(explain_oom(exc, plan, candidates, context)) from None

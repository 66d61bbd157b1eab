"""Out of memory, for every front end: recognise it, free the allocator's cache, and say
in one sentence what to shrink. torch is imported only when an error is looked at."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

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


def explain_for_server(rows: int) -> str:
    """The sentence for the requests of `dgterm serve` whose batch ran out of memory."""
    return (f"The server ran out of device memory with {rows} sequence(s) in the batch; retry with a smaller n "
            "or max_tokens, or when the server is less busy.")


def as_out_of_memory(exc: BaseException, sentence: str | None = None, *, plan: str | None = None,
                     candidates: int = 1, context: int | None = None) -> OutOfMemory | None:
    """The one way every front end takes an out-of-memory error: ``exc`` as an
    :class:`OutOfMemory` (a DgtermError, shown as one line) after releasing the allocator's
    cached blocks, or None when ``exc`` is not one. Its message is ``sentence`` (a front end's
    own knobs), else what to shrink in a run (:func:`explain_oom`)."""
    if not is_oom(exc):
        return None
    release()
    return OutOfMemory(sentence or explain_oom(exc, plan, candidates, context))


@contextlib.contextmanager
def guard_oom(plan: str | None = None, candidates: int = 1, context: int | None = None, *,
              sentence: str | None = None) -> Iterator[None]:
    """:func:`as_out_of_memory` around a block: an out-of-memory error leaves it as
    :class:`OutOfMemory`; any other error passes through."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - re-raised unless it is an OOM
        error = as_out_of_memory(exc, sentence, plan=plan, candidates=candidates, context=context)
        if error is None:
            raise
        raise error from None

"""Recovery: the unsaved work that a dead session left in its journal.

A Document writes a journal while it has unsaved edits: ``header`` first (what the
edits apply to), then a record per change (see Document). When a file is opened,
``find`` replays the journals of sessions that died editing it: the newest whose
result differs from the file is offered; a damaged one is set aside, one whose base
is gone is kept and reported, one that equals the file is deleted. journal.py owns
the journal files, their locks and their format.
"""

from __future__ import annotations

from dataclasses import dataclass

from .buffer import Buffer
from .journal import CorruptJournal, Journal, Orphan


@dataclass
class Found:
    """The state a dead session's journal holds, offered for recovery. The journal
    stays locked (``orphan``) until it is recovered, discarded or the file closed."""

    orphan: Orphan
    buffer: Buffer  # its text, line endings and spans
    rewrite: dict | None  # the model rewrite that was in flight, as given to begin_rewrite


def header(buf: Buffer, *, path: str | None, rewrite: dict | None, disk: str | None, base: bool) -> dict:
    """A journal's first record: the spans and the rewrite in flight, the file's hash
    ``disk`` when the text is the file, and with ``base`` a copy of the text."""
    record: dict = {"dgterm_journal": 1, "path": path, "spans": buf._spans.snapshot(), "rewrite": rewrite}
    if disk is not None:
        record["disk"] = disk
    if base:
        record["base"] = {"text": buf._text, "newline": buf._newline, "eol": buf._eol}
    return record


def find(journal: Journal, current: Buffer, disk: str | None) -> tuple[Found | None, str | None]:
    """The newest journal of a dead session of ``journal.path`` that differs from
    ``current`` (the file as read, whose hash is ``disk``), and a warning about a
    journal that could not be offered (the last one), or None."""
    try:
        orphans = journal.orphans()
    except OSError:
        return None, None
    found: Found | None = None
    warning: str | None = None
    for orphan in orphans:
        if orphan.corrupt is None and not orphan.records:  # killed before its header was whole
            orphan.discard()
            continue
        got = None
        try:
            got = replay(orphan.records, current, disk) if orphan.corrupt is None else None
        except CorruptJournal as e:
            orphan.corrupt = str(e)
        if orphan.corrupt is not None:
            warning = _set_aside(orphan, journal.path)
            continue
        if got is None:
            orphan.release()
            warning = (f"An old recovery journal for '{journal.path}' no longer matches "
                       f"the file; it is kept in '{orphan.file}' for you to inspect.")
            continue
        buf, rewrite = got
        if buf.text == current.text and buf._eols() == current._eols() and not rewrite:
            orphan.discard()
            continue
        try:  # self-contained from now on: it survives later saves of the file
            orphan.rewrite(header(buf, path=None, rewrite=rewrite, disk=None, base=True))
        except OSError:
            pass
        if found is None:
            found = Found(orphan, buf, rewrite)
        else:
            orphan.release()  # an older one: offered after this one is dealt with
    return found, warning


def replay(records: list[dict], current: Buffer, disk: str | None) -> tuple[Buffer, dict | None] | None:
    """The text, spans and rewrite in flight that a journal describes (its records
    checked by journal.check), or None if its base is gone: it was made against a
    version of the file other than ``current`` (whose hash is ``disk``) and holds no
    copy of it. Raises CorruptJournal when an offset does not fit the text."""
    first = records[0]
    saves = [i for i, r in enumerate(records) if "saving" in r]
    if (saves and records[saves[-1]]["saving"] == disk
            and not any("r" in r for r in records[saves[-1]:])):
        return current._copy(), None
    base = first.get("base")
    if base is not None:
        buf = Buffer(base["text"], newline=base["newline"], eol=base["eol"])
    elif disk is not None and first.get("disk") == disk:
        buf = current._copy()
    else:
        return None
    _restore_spans(buf, first["spans"], 1)
    rewrite = first.get("rewrite")
    for n, r in enumerate(records[1:], 2):
        if "r" in r:
            start, end, text, eol = r["r"]
            if end > len(buf):
                raise CorruptJournal(f"line {n}: edit ends after the text")
            buf._splice(start, end, text, eol, record=False)
        elif "spans" in r:
            _restore_spans(buf, r["spans"], n)
        elif "rewrite" in r:
            rewrite = r["rewrite"]
    return buf, rewrite


def _restore_spans(buf: Buffer, spans: list, n: int) -> None:
    if spans and spans[-1][2] > len(buf):
        raise CorruptJournal(f"line {n}: a span ends after the text")
    buf._spans.restore(spans)


def _set_aside(orphan: Orphan, path: str) -> str:
    """Keep a damaged journal for the user under another name; the warning that says so."""
    try:
        kept = orphan.set_aside()
    except OSError:
        orphan.release()
        kept = orphan.file
    return (f"A recovery journal for '{path}' is damaged ({orphan.corrupt}), so it was not "
            f"replayed and is kept as '{kept}' for you to inspect.")

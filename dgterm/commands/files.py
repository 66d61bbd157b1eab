"""What the commands that rewrite part of a file (infill, refine) share: the file opened and
checked before the model loads, spans given in the file's own characters (a CRLF counts
two, a byte order mark none), a candidate as the file would hold it, the safe in-place
write, and a text's tokens with the model's confidence in them (for --json)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from dgterm.errors import InputError

if TYPE_CHECKING:
    from dgterm.editor import Document
    from dgterm.engine.backend import Engine
    from dgterm.engine.tasks import SpanRequest


def open_file(path: str, in_place: bool, nothing: str) -> Document:
    """The document at ``path``, refused in one sentence when it is missing, empty (``nothing``:
    what there is then nothing to do), binary, or read-only under ``in_place``."""
    from dgterm.editor import Document

    doc = Document.open(path)  # a DocumentError (binary, a folder, ...) is a DgtermError: one sentence
    if doc.is_new:
        raise InputError(f"{path} does not exist; give an existing file.")
    if not doc.text:
        raise InputError(f"{path} is empty; there is nothing to {nothing}.")
    if in_place and doc.read_only:
        raise InputError(f"{(doc.warning or '').rstrip('.')}; or drop --in-place.")
    if doc.warning:
        print(f"dgterm: note: {doc.warning}", file=sys.stderr)
    return doc


def in_text(doc: Document, span: SpanRequest) -> SpanRequest:
    """A span given in the file's characters, as offsets into the document's text."""
    from dgterm.engine.tasks import SpanRequest

    size = len(doc.file_text())
    if not (0 <= span.start <= size and 0 <= span.end <= size):
        raise InputError(f"Span {span.start}:{span.end} is outside the file (0:{size}); give offsets inside it.")
    try:
        return SpanRequest(doc.from_file_offset(span.start), doc.from_file_offset(span.end), span.length)
    except IndexError as e:
        raise InputError(f"Span {span.start}:{span.end}: {e}; a CRLF counts as two characters.") from None


def with_drafts(doc: Document, order: list[SpanRequest], drafts: list[str]) -> tuple[Document, list[tuple[int, int]]]:
    """A scratch document: ``doc``'s text with ``drafts`` in the spans (``order``: document
    order), and where each draft landed in its text."""
    from dgterm.editor import Document

    scratch = Document.from_text(doc.file_text())
    marked = [scratch.add_span(s.start, s.end) for s in order]
    return scratch, scratch.apply_rewrite(dict(zip(marked, drafts)))


def write_in_place(doc: Document, path: str, order: list[SpanRequest], drafts: list[str], again: str) -> None:
    """Put ``drafts`` in the spans and save atomically in the file's own encoding and line
    endings; a file changed on disk during the run is left as it is (``again``: what to rerun)."""
    from dgterm.editor import ChangedOnDiskError, DocumentError

    marked = [doc.add_span(s.start, s.end) for s in order]
    doc.apply_rewrite(dict(zip(marked, drafts)))
    try:
        doc.save()
    except ChangedOnDiskError:
        doc.close(discard=True)
        raise InputError(f"{path} changed on disk during the run, so it was left as it is; run the {again} again.") \
            from None
    except DocumentError:
        doc.close(discard=True)
        raise
    doc.close()


def sure_tokens(lm: Engine, doc: Document, ranges: list[tuple[int, int]]) -> list[list[dict]]:
    """For each range of ``doc``'s text, its tokens as the model reads them, with the
    probability it keeps each (the confidence lens), at offsets in the file's characters."""
    out, whole = [], doc.file_text()
    for start, end in ranges:
        tokens = []
        for t in lm.confidence(doc.text, start, end) if end > start else []:
            a, b = doc.to_file_offset(t.start), doc.to_file_offset(t.end)
            tokens.append({"start": a, "end": b, "text": whole[a:b], "confidence": round(t.prob, 6)})
        out.append(tokens)
    return out

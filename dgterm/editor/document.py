"""The document every front end edits: text, anchored spans and selection, undo
history, the file it came from, and the recovery journal.

``text`` only ever holds "\\n"; the file's encoding, BOM and line endings are kept
aside and written back exactly (see fileio). Every change of the text goes through
``_splice``, which moves the spans and the selection, records the edit for undo and
appends it to the journal.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from . import fileio
from .errors import ChangedOnDiskError, DocumentError
from .history import Edit, History, State, Step
from .journal import Journal, Orphan
from .spans import Span, SpanSet, moved

Pos = int | tuple[int, int]  # an offset, or a (line, column) pair; 0-based characters

SNAPSHOT_LIMIT = 1 << 20  # journals of texts up to this size carry a copy of their base
COMPACT_BYTES = 4 << 20  # a journal that grew this much beyond the text is compacted


class Document:
    """A text buffer with anchored spans, selection, undo, file and journal.

    Build one with ``open``, ``new`` or ``from_text``.
    """

    def __init__(self, text: str = "", *, path: str | None = None, encoding: str = "utf-8",
                 newline: str = "\n", eol: list[str] | None = None,
                 disk: fileio.DiskState | None = None, read_only: bool = False,
                 warning: str | None = None) -> None:
        self._text = text
        self._eol = eol
        self._newline = newline
        self.encoding = encoding
        self.path = path
        self.warning = warning
        self.read_only = read_only
        self._disk = disk
        self._spans = SpanSet()
        self._sel = (0, 0)
        self._history = History()
        self._versions = itertools.count(1)
        self._version = self._saved = 0
        self._lines: list[int] | None = None
        self._journal = Journal(path) if path else None
        self._rewrite: dict | None = None
        self.recovery: str | None = None
        self.recovery_rewrite: dict | None = None
        self._orphan: Orphan | None = None
        self._recovered: Document | None = None

    # ---- construction -------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike) -> Document:
        """Open a file; a path that does not exist yet gives an empty new document.

        Raises DocumentError for folders, binary files, missing parent folders and
        permission errors. Bytes that are not valid in the file's encoding open it
        read-only, with the reason in ``warning``.
        """
        path = os.path.abspath(os.fspath(path))
        fileio.remove_stale_temps(path)
        got = fileio.read(path)
        if got is None:
            return cls.new(path)
        raw, st = got
        d = fileio.decode(raw, path)
        doc = cls(d.text, path=path, encoding=d.encoding, newline=d.newline, eol=d.eol,
                  disk=fileio.DiskState.of(st, raw), read_only=d.error is not None,
                  warning=_read_only_warning(path, d.error))
        if not doc.read_only:
            doc._find_recovery()
        return doc

    @classmethod
    def new(cls, path: str | os.PathLike) -> Document:
        """An empty document that becomes the file ``path`` on first save."""
        doc = cls(path=os.path.abspath(os.fspath(path)))
        doc._find_recovery()
        return doc

    @classmethod
    def from_text(cls, text: str, path: str | os.PathLike | None = None) -> Document:
        """A buffer holding ``text`` (its newline style is kept), saved to ``path``."""
        text, newline, eol = fileio.split_newlines(text)
        doc = cls(text, path=os.path.abspath(os.fspath(path)) if path else None,
                  newline=newline, eol=eol)
        if text:
            doc._version = next(doc._versions)
            doc._ensure_journal()
        return doc

    # ---- state ----------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    def __len__(self) -> int:
        return len(self._text)

    def __repr__(self) -> str:
        return f"<Document {self.path or '(scratch)'} {len(self._text)} chars{' dirty' if self.dirty else ''}>"

    @property
    def newline(self) -> str:
        """The file's dominant line ending, used for new lines."""
        return self._newline

    @property
    def encoding(self) -> str:
        """One of fileio.ENCODINGS: utf-8, utf-8-sig (with BOM), utf-16-le/be, utf-32-le/be."""
        return self._encoding

    @encoding.setter
    def encoding(self, value: str) -> None:
        if value not in fileio.ENCODINGS:
            raise ValueError(f"unknown encoding {value!r}; use one of {', '.join(fileio.ENCODINGS)}")
        self._encoding = value

    @property
    def dirty(self) -> bool:
        """The text differs from the file on disk (as far as this session knows)."""
        return self._version != self._saved

    @property
    def is_new(self) -> bool:
        """The file has not been written yet."""
        return self._disk is None

    @property
    def rewriting(self) -> dict | None:
        """The rewrite in flight, as given to ``begin_rewrite``, or None."""
        return self._rewrite

    # ---- lines ----------------------------------------------------------------------

    def _line_starts(self) -> list[int]:
        if self._lines is None:
            # offsets of every line start, plus len(text) + 1 as a sentinel
            self._lines = list(itertools.accumulate(
                map(len, self._text.split("\n")), lambda acc, n: acc + n + 1, initial=0))
        return self._lines

    @property
    def line_count(self) -> int:
        return len(self._line_starts()) - 1

    def line_text(self, line: int) -> str:
        start = self.offset_of(line, 0)
        return self._text[start:self._lines[line + 1] - 1]

    def offset_of(self, line: int, col: int) -> int:
        """The offset of (line, col); col may be the line's length (its end)."""
        starts = self._line_starts()
        if not 0 <= line < len(starts) - 1:
            raise IndexError(f"line {line} is out of range (0..{len(starts) - 2})")
        length = starts[line + 1] - 1 - starts[line]
        if not 0 <= col <= length:
            raise IndexError(f"column {col} is out of range for line {line} (0..{length})")
        return starts[line] + col

    def location_of(self, offset: int) -> tuple[int, int]:
        """The (line, col) of an offset."""
        self._check_offset(offset)
        starts = self._line_starts()
        line = bisect_right(starts, offset) - 1
        return line, offset - starts[line]

    # ---- text edits -------------------------------------------------------------------

    def insert(self, pos: Pos, text: str) -> None:
        p = self._offset(pos)
        self.replace(p, p, text)

    def delete(self, start: Pos, end: Pos) -> None:
        self.replace(start, end, "")

    def replace(self, start: Pos, end: Pos, text: str) -> None:
        """Replace [start, end) by ``text`` (any CRLF/CR in it becomes "\\n")."""
        start, end = self._range(start, end)
        self._check_writable()
        text = fileio.normalize(text)
        if self._text[start:end] == text:
            return
        with self._step():
            self._splice(start, end, text)

    @contextmanager
    def group(self) -> Iterator[None]:
        """Everything done inside is one undo step; if it raises, it is all reverted."""
        with self._step(grouped=True):
            yield

    def undo(self) -> bool:
        """Undo the last step, with its spans and selection; False if none."""
        self._check_not_grouping()
        self._check_writable()
        step = self._history.undo()
        if step is None:
            return False
        self._revert(step)
        return True

    def redo(self) -> bool:
        """Redo the last undone step exactly; False if none."""
        self._check_not_grouping()
        self._check_writable()
        step = self._history.redo()
        if step is None:
            return False
        for e in step.edits:
            self._splice(e.start, e.start + len(e.old), e.new, e.new_eol, e.newline, record=False)
        self._set_state(step.after)
        return True

    def can_undo(self) -> bool:
        return self._history.can_undo()

    def can_redo(self) -> bool:
        return self._history.can_redo()

    # ---- spans and selection -------------------------------------------------------------

    @property
    def spans(self) -> list[Span]:
        """The masked spans, sorted, pairwise non-overlapping."""
        return self._spans.list()

    def span(self, span_id: int) -> Span | None:
        return self._spans.get(span_id)

    def add_span(self, start: Pos, end: Pos, target_tokens: int | None = None) -> Span:
        """Mark [start, end) for the model; start == end marks an insertion point.

        Spans it overlaps (sharing a character, or an insertion point strictly
        inside) are merged into one new span that covers the union and takes this
        ``target_tokens``. Adjacent spans stay separate. This is an undo step.
        """
        start, end = self._range(start, end)
        if target_tokens is not None and (type(target_tokens) is not int or target_tokens < 0):
            raise ValueError(f"target_tokens must be None or an int >= 0, not {target_tokens!r}")
        with self._step():
            span = self._spans.add(start, end, target_tokens)
        self._log_spans()
        return span

    def remove_span(self, span: Span | int) -> None:
        with self._step():
            self._spans.remove(self._span_of(span).id)
        self._log_spans()

    def clear_spans(self) -> None:
        with self._step():
            self._spans.clear()
        self._log_spans()

    @property
    def selection(self) -> tuple[int, int]:
        """(start, end) with start <= end; it moves with edits like a span but never
        vanishes: when its text is deleted it becomes a caret."""
        return self._sel

    @selection.setter
    def selection(self, value: tuple[Pos, Pos]) -> None:
        self._sel = self._range(*sorted(map(self._offset, value)))

    # ---- model rewrites ----------------------------------------------------------------

    def begin_rewrite(self, spans: Iterable[Span | int], info: dict | None = None) -> None:
        """Note in the journal that the model is rewriting these spans.

        ``info`` (JSON-serialisable: instruction, settings...) comes back in
        ``recovery_rewrite`` if the program dies before ``apply_rewrite`` or
        ``end_rewrite``.
        """
        self._rewrite = {"spans": [self._span_of(s).id for s in spans], "info": info or {}}
        self._ensure_journal()
        self._log({"rewrite": self._rewrite})

    def end_rewrite(self) -> None:
        """The rewrite in flight was cancelled or applied."""
        if self._rewrite is None:
            return
        self._rewrite = None
        self._log({"rewrite": None})
        if not self.dirty and self._journal is not None:
            self._journal.clear()

    def apply_rewrite(self, drafts: Mapping[Span | int, str],
                      keep_spans: bool = False) -> list[tuple[int, int]]:
        """Replace several spans by the model's text as one undo step.

        The rewritten spans are removed (their text is now ordinary text); with
        ``keep_spans`` they stay marked, each covering its new text, so the rewrite
        can be run again. Undo brings back the old text and the spans. Returns the
        (start, end) of each new text, in document order. Ends the rewrite in flight.
        """
        self._check_writable()
        chosen = {}
        for key, text in drafts.items():
            span = self._span_of(key)
            chosen[span.id] = (span, fileio.normalize(text))
        items = sorted(chosen.values(), key=lambda it: (it[0].start, it[0].end))
        ranges, shift = [], 0
        for span, text in items:
            ranges.append((span.start + shift, span.start + shift + len(text)))
            shift += len(text) - len(span)
        with self._step(grouped=True):
            # Right to left, so the spans still to do do not move. Insert after the old
            # text, then delete it: an insertion point just before the span stays before.
            for span, text in reversed(items):
                start, end = span.start, span.end
                if text:
                    self._splice(end, end, text)
                if start < end:
                    self._splice(start, end, "")
            for (span, _), (start, end) in zip(items, ranges):
                self._spans.remove(span.id)
                if keep_spans:
                    span.start, span.end = start, end
                    self._spans.put(span)
        self._log_spans()
        self.end_rewrite()
        return ranges

    # ---- files ---------------------------------------------------------------------------

    def changed_on_disk(self) -> bool:
        """Whether the file on disk is not what we last read or wrote."""
        return self._disk_change() is not None

    def save(self, force: bool = False) -> None:
        """Write the file atomically; refuses if it changed on disk, unless ``force``."""
        if self.path is None:
            raise DocumentError("This buffer has no file name yet; save it with save as.")
        self._check_writable()
        problem = None if force else self._disk_change()
        if problem:
            raise ChangedOnDiskError(problem)
        self._write(self.path)

    def save_as(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write to ``path`` (same encoding and newlines) and edit that file from now on."""
        path = os.path.abspath(os.fspath(path))
        self._check_writable()
        if os.path.isdir(path):
            raise DocumentError(f"Cannot save as '{path}': it is a folder; choose a file name.")
        if not overwrite and path != self.path and os.path.lexists(path):
            raise DocumentError(f"Cannot save as '{path}': the file already exists; "
                                "choose another name or confirm overwriting it.")
        self._write(path)

    def reload(self) -> None:
        """Read the file again, as one undo step (undo gets the edits back).

        Only the part that changed is replaced, so spans elsewhere survive.
        """
        if self.path is None:
            raise DocumentError("This buffer has no file to reload; save it first.")
        got = fileio.read(self.path)
        if got is None:
            raise DocumentError(f"Cannot reload '{self.path}': it no longer exists on disk; "
                                "save it to write it again.")
        raw, st = got
        d = fileio.decode(raw, self.path)
        journal, self._journal = self._journal, None
        try:
            with self._step(grouped=True):
                self._set_content(d.text, d.eol, d.newline)
        finally:
            self._journal = journal
        self._newline, self.encoding = d.newline, d.encoding
        self.warning = _read_only_warning(self.path, d.error)
        self.read_only = d.error is not None
        self._disk = fileio.DiskState.of(st, raw)
        self._mark_saved()

    def close(self, discard: bool = False) -> None:
        """Release the journal; it is kept (offered on the next open) while there are
        unsaved edits, unless ``discard``."""
        if self._journal is not None:
            if discard or not (self.dirty or self._rewrite):
                self._journal.clear()
            else:
                self._journal.close()
        if self._orphan is not None:
            self._orphan.release()

    # ---- recovery ------------------------------------------------------------------------

    def recover(self) -> None:
        """Replace the text by the unsaved text found in the journal (one undo step).

        Its spans come back too; ``recovery_rewrite`` stays set for the UI to offer
        running that rewrite again.
        """
        if self._recovered is None:
            return
        self._check_writable()
        r = self._recovered
        with self._step(grouped=True):
            self._set_content(r._text, r._eol, r._newline)
            self._spans.restore(r._spans.snapshot())
        self._log_spans()
        self._orphan.discard()
        self.recovery, self._recovered, self._orphan = None, None, None

    def discard_recovery(self) -> None:
        """Delete the journal that ``recovery`` came from."""
        if self._orphan is not None:
            self._orphan.discard()
        self.recovery = self.recovery_rewrite = None
        self._recovered = self._orphan = None

    def _find_recovery(self) -> None:
        """Look for journals of dead sessions of this file; offer the newest."""
        try:
            orphans = self._journal.orphans()
        except OSError:
            return
        for orphan in orphans:
            if not orphan.records:  # killed before its header was whole: it holds no edit
                orphan.discard()
                continue
            doc = self._replay(orphan.records)
            if doc is None:
                orphan.release()
                self.warning = (f"An old recovery journal for '{self.path}' no longer matches "
                                f"the file; it is kept in '{orphan.file}' for you to inspect.")
                continue
            if doc._text == self._text and doc._eols() == self._eols() and not doc._rewrite:
                orphan.discard()
                continue
            try:
                orphan.rewrite(doc._header(snapshot=True))  # survive later saves of the file
            except OSError:
                pass
            if self._orphan is None:
                self._orphan, self._recovered = orphan, doc
                self.recovery, self.recovery_rewrite = doc._text, doc._rewrite
            else:
                orphan.release()  # an older one: offered after this one is dealt with

    def _replay(self, records: list[dict]) -> Document | None:
        """The state a journal describes, or None if its base is gone or it is corrupt."""
        try:
            header = records[0]
            if header.get("dgterm_journal") != 1:
                return None
            disk = self._disk.sha256 if self._disk else None
            saves = [i for i, r in enumerate(records) if "saving" in r]
            if (saves and records[saves[-1]]["saving"] == disk
                    and not any("r" in r for r in records[saves[-1]:])):
                return self._copy()
            base = header.get("base")
            if base is not None:
                doc = Document(base["text"], newline=base["newline"], eol=base["eol"])
            elif disk is not None and header.get("disk") == disk:
                doc = self._copy()
            else:
                return None
            doc._spans.restore(header["spans"])
            doc._rewrite = header.get("rewrite")
            for r in records[1:]:
                if "r" in r:
                    start, end, text, eol = r["r"]
                    doc._check_offset(start), doc._check_offset(end)
                    doc._splice(start, end, text, eol, record=False)
                elif "spans" in r:
                    doc._spans.restore(r["spans"])
                elif "rewrite" in r:
                    doc._rewrite = r["rewrite"]
            return doc
        except (LookupError, TypeError, ValueError):
            return None

    def _copy(self) -> Document:
        """The same text and line endings, without spans, history or journal."""
        return Document(self._text, newline=self._newline,
                        eol=None if self._eol is None else list(self._eol))

    # ---- internals ---------------------------------------------------------------------------

    def _splice(self, start: int, end: int, text: str, eol: list[str] | None = None,
                newline: str | None = None, record: bool = True) -> None:
        """Replace [start, end) by ``text`` whose newlines end with ``eol`` (None: all
        with ``newline``, by default the document's)."""
        self._ensure_journal()
        if eol is None and newline is not None and newline != self._newline:
            eol = [newline] * text.count("\n")
        if self._eol is None and eol is not None and any(x != self._newline for x in eol):
            self._eol = [self._newline] * self._text.count("\n")
        old = self._text[start:end]
        old_eol = None
        if self._eol is not None:
            k = self._text.count("\n", 0, start)
            m = old.count("\n")
            old_eol = self._eol[k:k + m]
            self._eol[k:k + m] = eol if eol is not None else [self._newline] * text.count("\n")
        self._text = self._text[:start] + text + self._text[end:]
        if self._lines is not None:
            self._lines = _moved_lines(self._lines, start, end, text)
        self._spans.edit(start, end, len(text))
        self._sel = moved(*self._sel, start, end, len(text), keep=True)
        if record:
            self._history.record(Edit(start, old, text, old_eol, eol, self._newline))
        self._log({"r": [start, end, text, eol]})

    def _set_content(self, text: str, eol: list[str] | None, newline: str) -> None:
        """Make the text ``text`` by replacing only the part that differs."""
        old = self._text
        p = _common_prefix(old, text)
        q = _common_suffix(old, text, min(len(old), len(text)) - p)
        if eol is None and self._eol is None and newline == self._newline:
            self._splice(p, len(old) - q, text[p:len(text) - q])
            return
        old_eols = self._eols()
        new_eols = eol if eol is not None else [newline] * text.count("\n")
        head, tail = old.count("\n", 0, p), old.count("\n", len(old) - q)
        if old_eols[:head] != new_eols[:head] or old_eols[len(old_eols) - tail:] != new_eols[len(new_eols) - tail:]:
            p = q = head = tail = 0  # endings changed outside the changed text
        self._splice(p, len(old) - q, text[p:len(text) - q], new_eols[head:len(new_eols) - tail])

    def _eols(self) -> list[str]:
        return self._eol if self._eol is not None else [self._newline] * self._text.count("\n")

    @contextmanager
    def _step(self, grouped: bool = False) -> Iterator[None]:
        h = self._history
        h.begin(self._state(), grouped)
        try:
            yield
        except BaseException:
            if h.depth == 1:
                self._revert(h.abort())
            else:
                h.end(self._state())
            raise
        if h.depth == 1 and h.pending.edits:
            self._version = next(self._versions)
        h.end(self._state())

    def _state(self) -> State:
        return State(self._version, self._spans.snapshot(), self._sel)

    def _set_state(self, state: State) -> None:
        self._spans.restore(state.spans)
        self._sel = state.selection
        self._version = state.version
        self._log_spans()

    def _revert(self, step: Step) -> None:
        for e in reversed(step.edits):
            self._splice(e.start, e.start + len(e.new), e.old, e.old_eol, e.newline, record=False)
        self._set_state(step.before)

    def _write(self, path: str) -> None:
        try:
            data = fileio.encode(self._text, self.encoding, self._newline, self._eol)
        except UnicodeEncodeError:
            raise DocumentError(f"Cannot save '{path}': it contains characters that "
                                f"{self.encoding} cannot store; remove them and save again.") from None
        sha = hashlib.sha256(data).hexdigest()
        self._log({"saving": sha})
        fileio.remove_stale_temps(path)
        st = fileio.atomic_write(path, data)
        self.path = path
        self._disk = fileio.DiskState(st.st_size, st.st_mtime_ns, st.st_ino, sha)
        self._mark_saved()

    def _mark_saved(self) -> None:
        """The text now equals the file: reset dirty state and the journal."""
        self._saved = self._version
        self._history.seal()
        if self._journal is not None:
            self._journal.clear()
        if self._journal is None or self._journal.path != self.path:
            self._journal = Journal(self.path)
        if self._rewrite is not None:
            self._ensure_journal()
            self._log({"rewrite": self._rewrite})

    def _disk_change(self) -> str | None:
        """Why saving would overwrite someone else's version of the file, or None."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._disk is None:
                return None
            return (f"'{self.path}' was deleted on disk after dgterm last read or wrote it; "
                    "save with force to write it again.")
        except OSError:
            return None  # saving will report the real problem
        if self._disk is None:
            return (f"'{self.path}' already exists on disk; reload to open that file, "
                    "or save with force to overwrite it.")
        if self._disk.same_stat(st):
            return None
        changed = (f"'{self.path}' changed on disk since dgterm last read or wrote it; reload it to see that "
                   "version, or save with force to overwrite it.")
        if st.st_size != self._disk.size:
            return changed
        try:
            with open(self.path, "rb") as f:
                same = hashlib.sha256(f.read()).hexdigest() == self._disk.sha256
        except OSError:
            return None
        return None if same else changed

    # journal ------------------------------------------------------------------------------

    def _header(self, snapshot: bool = False) -> dict:
        """First journal record: what the following edits apply to."""
        header = {"dgterm_journal": 1, "path": self.path, "spans": self._spans.snapshot(),
                  "rewrite": self._rewrite}
        clean = self._disk is not None and not self.dirty
        if clean:
            header["disk"] = self._disk.sha256
        if snapshot or not clean or len(self._text) <= SNAPSHOT_LIMIT:
            header["base"] = {"text": self._text, "newline": self._newline, "eol": self._eol}
        return header

    def _ensure_journal(self) -> None:
        j = self._journal
        if j is not None and not j.active:
            try:
                j.start(self._header())
            except OSError as e:
                self._journal_failed(e)

    def _log(self, record: dict) -> None:
        j = self._journal
        if j is None or not j.active:
            return
        try:
            j.append(record)
            if j.size > COMPACT_BYTES + len(self._text):
                j.compact(self._header(snapshot=True))
        except OSError as e:
            self._journal_failed(e)

    def _log_spans(self) -> None:
        self._log({"spans": self._spans.snapshot()})

    def _journal_failed(self, e: OSError) -> None:
        self._journal.close()
        self._journal = None
        self.warning = (f"Cannot write the recovery journal ({e.strerror or e}); unsaved edits "
                        "will not survive a crash, so save often or set DGTERM_STATE_DIR.")

    # checks -------------------------------------------------------------------------------

    def _offset(self, pos: Pos) -> int:
        if isinstance(pos, tuple):
            return self.offset_of(*pos)
        self._check_offset(pos)
        return pos

    def _check_offset(self, offset: int) -> None:
        if type(offset) is not int or not 0 <= offset <= len(self._text):
            raise IndexError(f"offset {offset!r} is out of range (0..{len(self._text)})")

    def _range(self, start: Pos, end: Pos) -> tuple[int, int]:
        start, end = self._offset(start), self._offset(end)
        if start > end:
            raise IndexError(f"range start {start} is after its end {end}")
        return start, end

    def _span_of(self, key: Span | int) -> Span:
        span = self._spans.get(key.id if isinstance(key, Span) else key)
        if span is None:
            raise DocumentError("That span no longer exists (its text was deleted); "
                                "mark the text again.")
        return span

    def _check_writable(self) -> None:
        if self.read_only:
            raise DocumentError(self.warning)

    def _check_not_grouping(self) -> None:
        if self._history.depth:
            raise RuntimeError("cannot undo or redo inside an edit group")


def _read_only_warning(path: str, error: str | None) -> str | None:
    if error is None:
        return None
    return f"'{path}' is open read-only because {error}; convert it to UTF-8 to edit it."


def _moved_lines(starts: list[int], start: int, end: int, text: str) -> list[int]:
    """The line starts after [start, end) became ``text`` (cheaper than a rebuild)."""
    i, j = bisect_right(starts, start), bisect_right(starts, end)
    new, p = [], text.find("\n")
    while p >= 0:
        new.append(start + p + 1)
        p = text.find("\n", p + 1)
    delta = len(text) - (end - start)
    return starts[:i] + new + [x + delta for x in starts[j:]] if delta else starts[:i] + new + starts[j:]


def _common_prefix(a: str, b: str) -> int:
    n, i, chunk = min(len(a), len(b)), 0, 1 << 16
    while i < n and a[i:min(i + chunk, n)] == b[i:min(i + chunk, n)]:
        i += chunk
    i = min(i, n)
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the common end of a and b, at most ``limit``."""
    i, chunk, la, lb = 0, 1 << 16, len(a), len(b)
    while i < limit:
        j = min(i + chunk, limit)
        if a[la - j:la - i] != b[lb - j:lb - i]:
            break
        i = j
    while i < limit and a[la - i - 1] == b[lb - i - 1]:
        i += 1
    return i

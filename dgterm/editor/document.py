"""The document every front end edits: a Buffer (text, spans, selection, undo; see
buffer.py) tied to the file it came from and to a recovery journal, with the
model's rewrites of its spans.

``text`` only ever holds "\\n"; the file's encoding, BOM and line endings are kept
aside and written back exactly (see fileio). Every change of the text goes through
``_splice``, which records it for undo (Buffer) and appends it to the journal, from
which recovery.py brings unsaved work back after a crash.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping

from . import fileio, recovery
from .buffer import Buffer
from .errors import ChangedOnDiskError, DocumentError
from .history import Edit, Step
from .journal import Journal
from .spans import Span

SNAPSHOT_LIMIT = 1 << 20  # journals of texts up to this size carry a copy of their base
COMPACT_BYTES = 4 << 20  # a journal that grew this much beyond the text is compacted


class Document(Buffer):
    """A text buffer with anchored spans, selection, undo, file and journal.

    Build one with ``open``, ``new`` or ``from_text``.
    """

    def __init__(self, text: str = "", *, path: str | None = None, encoding: str = "utf-8",
                 newline: str = "\n", eol: list[str] | None = None,
                 disk: fileio.DiskState | None = None, read_only: bool = False,
                 warning: str | None = None) -> None:
        super().__init__(text, newline=newline, eol=eol)
        self.encoding = encoding
        self.path = path
        self.warning = warning
        self.read_only = read_only
        self._disk = disk
        self._saved = 0  # the content version the file holds
        self._journal = Journal(path) if path else None
        self._rewrite: dict | None = None
        self.recovery: str | None = None
        self.recovery_rewrite: dict | None = None
        self._found: recovery.Found | None = None
        self._notice: str | None = None
        self._reload_step: Step | None = None  # the reload that took in their version (see save)

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

    def __repr__(self) -> str:
        return f"<Document {self.path or '(scratch)'} {len(self._text)} chars{' dirty' if self.dirty else ''}>"

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
        self._spans_changed()
        self.end_rewrite()
        return ranges

    # ---- files ---------------------------------------------------------------------------

    def changed_on_disk(self) -> bool:
        """Whether the file on disk is not what we last read or wrote."""
        return self._disk_change() is not None

    def save(self, force: bool = False, over_read_only: bool = False) -> None:
        """Write the file atomically; refuses if it changed on disk, or if the version on
        disk was reloaded and then undone, unless ``force``; refuses a read-only file
        (ReadOnlyFileError) unless ``over_read_only``."""
        if self.path is None:
            raise DocumentError("This buffer has no file name yet; save it with save as.")
        self._check_writable()
        if not force and self._reload_step is not None and not self._history.applied(self._reload_step):
            raise ChangedOnDiskError(f"'{self.path}' holds the version you reloaded and then undid; reload it to "
                                     "see that version again, or save with force to overwrite it.")
        self._write(self.path, fileio.ANY if force else self._disk, over_read_only)

    def save_as(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write to ``path`` (same encoding and newlines) and edit that file from now on."""
        path = os.path.abspath(os.fspath(path))
        self._check_writable()
        if os.path.isdir(path):
            raise DocumentError(f"Cannot save as '{path}': it is a folder; choose a file name.")
        if not overwrite and path != self.path and os.path.lexists(path):
            raise DocumentError(f"Cannot save as '{path}': the file already exists; "
                                "choose another name or confirm overwriting it.")
        self._write(path, fileio.ANY if overwrite or path == self.path else None)

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
        before = self._history.last
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
        last = self._history.last
        self._reload_step = last if last is not before else None

    def close(self, discard: bool = False) -> None:
        """Release the journal; it is kept (offered on the next open) while there are
        unsaved edits, unless ``discard``."""
        if self._journal is not None:
            if discard or not (self.dirty or self._rewrite):
                self._journal.clear()
            else:
                self._journal.close()
        if self._found is not None:
            self._found.orphan.release()

    def _write(self, path: str, expected: fileio.Expected, over_read_only: bool = False) -> None:
        """Write the text to ``path``, which must still be ``expected`` (see fileio.atomic_write)."""
        try:
            data = fileio.encode(self._text, self.encoding, self._newline, self._eol)
        except UnicodeEncodeError:
            raise DocumentError(f"Cannot save '{path}': it contains characters that "
                                f"{self.encoding} cannot store; remove them and save again.") from None
        sha = hashlib.sha256(data).hexdigest()
        self._log({"saving": sha})
        fileio.remove_stale_temps(path)
        st = fileio.atomic_write(path, data, expected, over_read_only)
        self.path = path
        self._reload_step = None
        self._disk = fileio.DiskState(st.st_size, st.st_mtime_ns, st.st_ino, sha, st.st_ctime_ns)
        self._mark_saved()

    def _mark_saved(self) -> None:
        """The text now equals the file: reset dirty state and the journal."""
        assert self.path is not None  # it was just read or written
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
            return fileio.disk_change(self.path, self._disk)
        except OSError:
            return None  # saving will report the real problem

    # ---- recovery ------------------------------------------------------------------------

    def recover(self) -> None:
        """Replace the text by the unsaved text found in the journal (one undo step).

        Its spans come back too; ``recovery_rewrite`` stays set for the UI to offer
        running that rewrite again.
        """
        found = self._found
        if found is None:
            return
        self._check_writable()
        with self._step(grouped=True):
            self._set_content(found.buffer.text, found.buffer._eol, found.buffer.newline)
            self._spans.restore(found.buffer._spans.snapshot())
        self._spans_changed()
        found.orphan.discard()
        self.recovery, self._found = None, None

    def discard_recovery(self) -> None:
        """Delete the journal that ``recovery`` came from."""
        if self._found is not None:
            self._found.orphan.discard()
        self.recovery = self.recovery_rewrite = None
        self._found = None

    def _find_recovery(self) -> None:
        """Look for journals of dead sessions of this file; offer the newest."""
        if self._journal is None:
            return
        self._found, warning = recovery.find(self._journal, self, self._disk.sha256 if self._disk else None)
        if self._found is not None:
            self.recovery, self.recovery_rewrite = self._found.buffer.text, self._found.rewrite
        if warning is not None:
            self.warning = warning

    # ---- journal ---------------------------------------------------------------------------

    def _splice(self, start: int, end: int, text: str, eol: list[str] | None = None,
                newline: str | None = None, record: bool = True) -> Edit:
        self._ensure_journal()
        edit = super()._splice(start, end, text, eol, newline, record)
        self._log({"r": [start, end, text, eol]})
        return edit

    def _header(self, snapshot: bool = False) -> dict:
        """First journal record: what the following edits apply to."""
        disk = self._disk.sha256 if self._disk is not None and not self.dirty else None
        return recovery.header(self, path=self.path, rewrite=self._rewrite, disk=disk,
                               base=snapshot or disk is None or len(self._text) <= SNAPSHOT_LIMIT)

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

    def _spans_changed(self) -> None:
        self._log({"spans": self._spans.snapshot()})

    def _journal_failed(self, e: OSError) -> None:
        if self._journal is not None:
            self._journal.close()
        self._journal = None
        self.warning = self._notice = (f"Cannot write the recovery journal ({e.strerror or e}); unsaved edits "
                                       "will not survive a crash, so save often or set DGTERM_STATE_DIR.")

    def pop_notice(self) -> str | None:
        """A problem that arose while editing (the journal failed at its first write), once:
        a UI shows it when it happens, not only at start-up."""
        notice, self._notice = self._notice, None
        return notice

    # ---- checks ------------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.read_only:
            raise DocumentError(self.warning)


def _read_only_warning(path: str, error: str | None) -> str | None:
    if error is None:
        return None
    return f"'{path}' is open read-only because {error}; convert it to UTF-8 to edit it."

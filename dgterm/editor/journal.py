"""Recovery journal: an append-only log of one editing session of one file.

Layout: ``<state dir>/journal/<sha256 of the absolute path>[:20]/<time_ns>-<pid>.jsonl``,
where the state dir is ``$DGTERM_STATE_DIR`` or platformdirs' user state dir for
"dgterm". Each line is one JSON record written with a single ``write`` call, so a
killed process leaves at most a torn last line, which readers drop. The first line is
a header saying what the edits apply to; the document defines the records.

A live session holds an exclusive ``flock`` on its file; a file nobody holds is an
orphan left by a crash, offered for recovery when the same path is opened again.
An append fsyncs only if the last fsync is over a second old: a killed process loses
nothing (the kernel has the data); a power cut can cost the last edits not yet written.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from types import ModuleType

from dgterm.config import state_dir

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # no flock (Windows): sessions cannot tell live files from orphans
    fcntl = None

FSYNC_INTERVAL = 1.0


def journal_dir(path: str) -> Path:
    return state_dir() / "journal" / hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _lock(fd: int) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _same_file(fd: int, file: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(file).st_ino
    except FileNotFoundError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _line(record: dict) -> bytes:
    # ASCII JSON: lone surrogates and any character survive the round trip.
    return json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n"


class CorruptJournal(ValueError):
    """A journal that does not follow the schema below; ``str(e)`` says where."""


def _parse(data: bytes) -> list[dict]:
    """The records of a journal file, checked against the schema (the part after the
    last newline is a write torn by a kill, and dropped). Raises CorruptJournal."""
    records = []
    for n, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the C stack allows
            raise CorruptJournal(f"line {n} is not JSON") from None
    check(records)
    return records


NEWLINES = ("\n", "\r\n", "\r")
HEADER_KEYS = {"dgterm_journal", "path", "spans", "rewrite", "disk", "base"}
RECORD_KEYS = {"r", "spans", "rewrite", "saving"}


def check(records: list) -> None:
    """Check every record's shape: keys, types, newline strings and their counts, span
    order. Offsets against the text are checked while replaying (they depend on it)."""
    for n, record in enumerate(records, 1):
        try:
            _check_record(record, n == 1)
        except (TypeError, ValueError, KeyError) as e:
            raise CorruptJournal(f"line {n}: {e}") from None


def _check_record(record, header: bool) -> None:
    _need(isinstance(record, dict), "not an object")
    if header:
        _need(record.get("dgterm_journal") == 1 and set(record) <= HEADER_KEYS, "not a version 1 header")
        _need(record.get("path") is None or isinstance(record["path"], str), "bad path")
        _check_spans(record["spans"])
        _check_rewrite(record.get("rewrite"))
        _need(record.get("disk") is None or _is_sha(record["disk"]), "bad disk hash")
        base = record.get("base")
        if base is not None:
            _need(isinstance(base, dict) and set(base) == {"text", "newline", "eol"}, "bad base")
            _check_text(base["text"], base["eol"])
            _need(base["newline"] in NEWLINES, "base newline is not a newline")
        return
    _need(len(record) == 1 and set(record) <= RECORD_KEYS, "unknown record")
    ((kind, value),) = record.items()
    if kind == "r":
        _need(isinstance(value, list) and len(value) == 4, "edit is not [start, end, text, eol]")
        start, end, text, eol = value
        _need(_is_count(start) and _is_count(end) and start <= end, "edit range is not 0 <= start <= end")
        _check_text(text, eol)
    elif kind == "spans":
        _check_spans(value)
    elif kind == "rewrite":
        _check_rewrite(value)
    else:
        _need(_is_sha(value), "bad saving hash")


def _check_text(text, eol) -> None:
    _need(isinstance(text, str) and "\r" not in text, "text is not a string of \\n lines")
    if eol is not None:
        _need(isinstance(eol, list) and all(isinstance(x, str) and x in NEWLINES for x in eol),
              "line endings are not newlines")
        _need(len(eol) == text.count("\n"), "line endings do not match the text's lines")


def _check_spans(spans) -> None:
    _need(isinstance(spans, list), "spans are not a list")
    ids, prev = set(), None
    for span in spans:
        _need(isinstance(span, list) and len(span) == 4, "span is not [id, start, end, tokens]")
        span_id, start, end, tokens = span
        _need(_is_count(span_id) and span_id not in ids, "span ids are not unique whole numbers")
        _need(_is_count(start) and _is_count(end) and start <= end, "span range is not 0 <= start <= end")
        _need(tokens is None or _is_count(tokens), "span length is not a whole number")
        if prev is not None:
            _need(start >= prev[1] and (start, end) != prev, "spans overlap or are out of order")
        ids.add(span_id)
        prev = (start, end)


def _check_rewrite(rewrite) -> None:
    if rewrite is not None:
        _need(isinstance(rewrite, dict) and set(rewrite) == {"spans", "info"}
              and isinstance(rewrite["spans"], list) and all(_is_count(x) for x in rewrite["spans"])
              and isinstance(rewrite["info"], dict), "bad rewrite record")


def _is_count(x) -> bool:
    return type(x) is int and x >= 0


def _is_sha(x) -> bool:
    return isinstance(x, str) and len(x) == 64 and all(c in "0123456789abcdef" for c in x)


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise ValueError(why)


class Journal:
    """The journal of this session for the file at ``path`` (absolute)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dir = journal_dir(path)
        self.file: Path | None = None
        self._fd: int | None = None
        self._synced = 0.0
        self.size = 0  # bytes written since the header

    @property
    def active(self) -> bool:
        return self._fd is not None

    def start(self, header: dict) -> None:
        """Create this session's file with its header line."""
        file = self.dir / f"{time.time_ns()}-{os.getpid()}.jsonl"
        for attempt in range(2):  # another session may remove the empty folder in between (clear)
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                self._fd = self._create(file, _line(header))
                break
            except FileNotFoundError:
                if attempt:
                    raise
        self.file = file
        self.size = 0

    def append(self, record: dict) -> None:
        fd, _ = self._started()
        data = _line(record)
        _write_all(fd, data)
        self.size += len(data)
        now = time.monotonic()
        if now - self._synced > FSYNC_INTERVAL:
            os.fsync(fd)
            self._synced = now

    def compact(self, header: dict) -> None:
        """Atomically replace the file by a single header (a snapshot of the state)."""
        old, file = self._started()
        tmp = file.with_suffix(".tmp")
        fd = self._create(tmp, _line(header))
        os.replace(tmp, file)
        os.close(old)
        self._fd, self.size = fd, 0

    def clear(self) -> None:
        """Delete this session's file (and the file's folder once it is empty): nothing is
        left to recover."""
        if not self.active:
            return
        _, file = self._started()
        file.unlink(missing_ok=True)
        self.close()
        try:
            self.dir.rmdir()
        except OSError:  # other sessions' journals are there
            pass

    def close(self) -> None:
        """Release the file and keep it (it will be offered for recovery)."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self.file = None, None

    def orphans(self) -> list[Orphan]:
        """Journals of dead sessions for this path, newest first, each locked by us."""
        try:
            names = sorted((n for n in os.listdir(self.dir) if n.endswith(".jsonl")),
                           reverse=True)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            file = self.dir / name
            if file == self.file:
                continue
            try:
                fd = os.open(file, os.O_RDONLY)
            except FileNotFoundError:
                continue
            if not _lock(fd) or not _same_file(fd, file):
                os.close(fd)  # live, or replaced by a live session's compaction
                continue
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            try:
                found.append(Orphan(file, fd, _parse(data)))
            except CorruptJournal as e:
                found.append(Orphan(file, fd, [], str(e)))
        return found

    def _started(self) -> tuple[int, Path]:
        """This session's open file and its name; using them before ``start`` is a bug."""
        if self._fd is None or self.file is None:
            raise RuntimeError("the journal was not started")
        return self._fd, self.file

    def _create(self, file: Path, first: bytes) -> int:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            _lock(fd)
            _write_all(fd, first)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            file.unlink(missing_ok=True)
            raise
        self._synced = time.monotonic()
        return fd


class Orphan:
    """A journal left by a dead session; we hold its lock until it is dealt with."""

    def __init__(self, file: Path, fd: int, records: list[dict], corrupt: str | None = None) -> None:
        self.file, self.records, self.corrupt = file, records, corrupt
        self._fd: int | None = fd

    def set_aside(self) -> Path:
        """Rename a corrupt journal so that it is no longer offered, and keep it for the
        user; returns its new name."""
        kept = self.file.with_suffix(".corrupt")
        os.replace(self.file, kept)
        self.release()
        return kept

    def discard(self) -> None:
        self.file.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rewrite(self, header: dict) -> None:
        """Replace the file by a self-contained snapshot (kept locked)."""
        tmp = self.file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _lock(fd)
            _write_all(fd, _line(header))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        os.replace(tmp, self.file)
        self.release()
        self._fd = fd
        self.records = [header]

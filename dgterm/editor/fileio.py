"""Bytes on disk <-> text in memory, and atomic saves.

Decoding keeps what is needed to write the file back byte for byte: the encoding and
BOM, and the line endings. The text itself only ever holds "\\n"; a file whose
newlines are all alike stores just that style, a mixed one stores the ending of every
line (``eol``). Files without a BOM must be UTF-8; a UTF-16/32 file needs its BOM,
which is why the BOM is looked for before NUL bytes are taken as a sign of binary.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import re
import stat
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from itertools import chain
from types import ModuleType
from typing import Literal, NamedTuple

from .errors import ChangedOnDiskError, DocumentError, ReadOnlyFileError

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: no advisory lock while saving
    fcntl = None

# encoding name -> (Python codec, BOM written before the text)
ENCODINGS = {
    "utf-8": ("utf-8", b""),
    "utf-8-sig": ("utf-8", codecs.BOM_UTF8),
    "utf-16-le": ("utf-16-le", codecs.BOM_UTF16_LE),
    "utf-16-be": ("utf-16-be", codecs.BOM_UTF16_BE),
    "utf-32-le": ("utf-32-le", codecs.BOM_UTF32_LE),
    "utf-32-be": ("utf-32-be", codecs.BOM_UTF32_BE),
}
# UTF-32-LE's BOM starts with UTF-16-LE's, so it is tried first.
_BOM_ORDER = ("utf-32-le", "utf-32-be", "utf-8-sig", "utf-16-le", "utf-16-be")
_EOL = re.compile(r"\r\n|\r|\n")
_CR = re.compile(r"\r\n?")
_TMP_SUFFIX = ".dgterm-tmp"


@dataclass
class Decoded:
    text: str
    encoding: str
    newline: str  # the dominant style, used for new lines
    eol: list[str] | None  # ending of each "\n" in text; None: all are ``newline``
    error: str | None = None  # set when the bytes are not valid in ``encoding``


class DiskState(NamedTuple):
    """What the file on disk was when we last read or wrote it."""

    size: int
    mtime_ns: int
    ino: int
    sha256: str
    ctime_ns: int = 0  # nobody can set it back, unlike mtime (os.utime)

    @classmethod
    def of(cls, st: os.stat_result, data: bytes) -> DiskState:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, hashlib.sha256(data).hexdigest(), st.st_ctime_ns)

    def same_stat(self, st: os.stat_result) -> bool:
        return ((self.size, self.mtime_ns, self.ino, self.ctime_ns)
                == (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))


class _Anything(Enum):
    ANY = "any"


ANY = _Anything.ANY  # ``expected`` of a forced save: whatever is on disk is overwritten
Expected = DiskState | None | Literal[_Anything.ANY]  # what a save expects on disk (see atomic_write)


def disk_change(path: str, expected: DiskState | None, fd: int | None = None) -> str | None:
    """Why the file at ``path`` is not ``expected`` (None: it must not exist), or None.

    Size, mtime, ctime and inode first; when they differ the content hash decides, so a
    ``touch`` is not a change. With ``fd`` (the file, open) the content is always hashed.
    """
    try:
        st = os.fstat(fd) if fd is not None else os.stat(path)
    except FileNotFoundError:
        if expected is None:
            return None
        return (f"'{path}' was deleted on disk after dgterm last read or wrote it; "
                "save with force to write it again.")
    if expected is None:
        return (f"'{path}' already exists on disk; reload to open that file, "
                "or save with force to overwrite it.")
    if fd is None and expected.same_stat(st):
        return None
    changed = (f"'{path}' changed on disk since dgterm last read or wrote it; reload it to see that "
               "version, or save with force to overwrite it.")
    if st.st_size != expected.size:
        return changed
    return None if _sha256(path, fd) == expected.sha256 else changed


def _sha256(path: str, fd: int | None) -> str:
    h = hashlib.sha256()
    own = fd is None
    src = os.open(path, os.O_RDONLY) if fd is None else fd
    try:
        offset = 0
        while chunk := os.pread(src, 1 << 20, offset):
            h.update(chunk)
            offset += len(chunk)
    finally:
        if own:
            os.close(src)
    return h.hexdigest()


def read(path: str) -> tuple[bytes, os.stat_result] | None:
    """The bytes of ``path``, or None when it does not exist but could be created."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(path) or "."
        if os.path.isdir(parent):
            return None
        if os.path.exists(parent):
            raise DocumentError(f"Cannot open '{path}': '{parent}' is a file, not a folder; "
                                "choose another path.") from None
        raise DocumentError(f"Cannot open '{path}': the folder '{parent}' does not exist; "
                            "create it first or choose another path.") from None
    except NotADirectoryError:
        raise DocumentError(f"Cannot open '{path}': part of its path is a file, not a folder; "
                            "choose another path.") from None
    except PermissionError:
        raise DocumentError(f"Cannot open '{path}': permission denied on a folder in its path; "
                            "check the folder's permissions.") from None
    except OSError as e:  # a symlink loop, a name too long for the system
        raise DocumentError(f"Cannot open '{path}': {e.strerror}; check the path and try again.") from None
    if stat.S_ISDIR(st.st_mode):
        raise DocumentError(f"Cannot open '{path}': it is a folder; open a file inside it instead.")
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(f"Cannot open '{path}': it is not a regular file; "
                            "open a text file instead.")
    try:
        with open(path, "rb") as f:
            return f.read(), os.fstat(f.fileno())
    except PermissionError:
        raise DocumentError(f"Cannot open '{path}': permission denied; "
                            "check the file's permissions or open a copy.") from None
    except OSError as e:
        raise DocumentError(f"Cannot open '{path}': {e.strerror}; "
                            "check the path and try again.") from None


def decode(raw: bytes, path: str) -> Decoded:
    """Decode a file's bytes; raises DocumentError for binary data.

    Bytes invalid in the encoding are decoded with U+FFFD and reported in ``error``:
    such a document must never be written back.
    """
    for encoding in _BOM_ORDER:
        codec, bom = ENCODINGS[encoding]
        if raw.startswith(bom):
            break
    else:
        encoding, codec, bom = "utf-8", "utf-8", b""
        if b"\0" in raw:
            raise _binary(path)
    body = memoryview(raw)[len(bom):]
    error = None
    try:
        text = str(body, codec)
    except UnicodeDecodeError as e:
        text = str(body, codec, "replace")
        name = "UTF-8" if codec == "utf-8" else codec.upper()
        error = f"it is not valid {name} (byte {e.start + len(bom)})"
    if bom and "\0" in text:
        raise _binary(path)
    text, newline, eol = split_newlines(text)
    return Decoded(text, encoding, newline, eol, error)


def _binary(path: str) -> DocumentError:
    return DocumentError(f"Cannot open '{path}': it contains NUL bytes and looks like a binary "
                         "file; open a text file (UTF-8, or UTF-16 with a BOM) instead.")


def split_newlines(s: str) -> tuple[str, str, list[str] | None]:
    """(text with "\\n" only, dominant newline, per-line endings or None if uniform)."""
    crlf = s.count("\r\n")
    cr = s.count("\r") - crlf
    lf = s.count("\n") - crlf
    if not cr and not crlf:
        return s, "\n", None
    if not cr and not lf:
        return s.replace("\r\n", "\n"), "\r\n", None
    if not crlf and not lf:
        return s.replace("\r", "\n"), "\r", None
    eol = _EOL.findall(s)
    newline = Counter(eol).most_common(1)[0][0]
    return _CR.sub("\n", s), newline, eol


def normalize(text: str) -> str:
    """Inserted text with any CRLF or CR turned into "\\n"."""
    return _CR.sub("\n", text) if "\r" in text else text


def restore_newlines(text: str, newline: str, eol: list[str] | None) -> str:
    """The inverse of ``split_newlines``: every "\\n" back to the file's own ending."""
    if eol is None:
        return text if newline == "\n" else text.replace("\n", newline)
    return "".join(chain.from_iterable(zip(text.split("\n"), chain(eol, [""]))))


def encode(text: str, encoding: str, newline: str, eol: list[str] | None) -> bytes:
    """The inverse of ``decode`` (raises UnicodeEncodeError for unencodable text)."""
    codec, bom = ENCODINGS[encoding]
    return bom + restore_newlines(text, newline, eol).encode(codec)


def atomic_write(path: str, data: bytes, expected: Expected = ANY,
                 over_read_only: bool = False) -> os.stat_result:
    """Replace the file at ``path`` by ``data`` so that it is always old or new.

    Writes a temp file in the same folder, fsyncs it and renames it over the target.
    A symlink is followed (its target is replaced, the link stays); the permissions
    (and owner, where allowed) of an existing file are kept. A hard-linked file is
    detached from its other names, as with any atomic save.

    Unless ``expected`` is ANY, the file must be ``expected`` (None: must not exist):
    it is checked by content immediately before the rename, under an advisory lock,
    and again after it through the old file, open all along. A write by another
    program that landed in between is put back, and ChangedOnDiskError is raised.

    A read-only file (no write bit, or not writable by us) raises ReadOnlyFileError
    unless ``over_read_only``, as vim asks for ``:w!``: root may write anything, so
    the mode bits decide, not only os.access. Its mode stays read-only after the save.
    """
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as e:
        raise _save_error(path, e) from None
    if _read_only_fs(folder):
        raise DocumentError(f"Cannot save '{path}': its file system is mounted read-only; "
                            "save it somewhere else with save as.")
    if old is not None and not over_read_only and (not old.st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise ReadOnlyFileError(f"Cannot save '{path}': the file is read-only on disk; "
                                "change its permissions or save it under another name.")
    tmp = _write_temp(path, folder, name, data, old)
    fd = before = None
    try:
        if expected is not ANY:
            fd = _open_locked(path, target)
            before = os.fstat(fd) if fd is not None else None  # a write while we hash shows after
            problem = disk_change(path, expected, fd) or _replaced_since(path, target, before)
            if problem:
                raise ChangedOnDiskError(problem)
        os.replace(tmp, target)
    except BaseException as e:
        _unlink(tmp)
        if fd is not None:
            os.close(fd)
        if isinstance(e, OSError):
            raise _save_error(path, e) from None
        raise
    if fd is not None:
        try:
            assert before is not None  # taken when fd was opened
            _put_back_if_written(path, target, fd, before)
        finally:
            os.close(fd)
    _fsync_dir(folder)
    return os.stat(target)


def _write_temp(path: str, folder: str, name: str, data: bytes, old: os.stat_result | None) -> str:
    """A fsynced temp file next to the target holding ``data``, with the old file's mode."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=_TMP_SUFFIX, dir=folder)
    except OSError as e:
        raise _save_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.chmod(tmp, stat.S_IMODE(old.st_mode) if old else 0o666 & ~_umask())
            if old and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
                try:
                    os.chown(tmp, old.st_uid, old.st_gid)
                except OSError:
                    pass  # not allowed to give the file away: it becomes ours
            os.fsync(f.fileno())
    except BaseException as e:
        _unlink(tmp)
        if isinstance(e, OSError):
            raise _save_error(path, e) from None
        raise
    return tmp


def _open_locked(path: str, target: str) -> int | None:
    """The file about to be replaced, open and flock'ed (None if it does not exist)."""
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        return None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ChangedOnDiskError(f"'{path}' is locked by another program, which may be writing it; "
                                     "save again in a moment.") from None
    return fd


def _replaced_since(path: str, target: str, before: os.stat_result | None) -> str | None:
    """Whether another program renamed a file over (or onto) the target since we opened it."""
    try:
        ino = os.stat(target).st_ino
    except FileNotFoundError:
        ino = None
    if ino == (before.st_ino if before else None):
        return None
    return (f"'{path}' was replaced on disk while dgterm saved it; reload it to see that version, "
            "or save with force to overwrite it.")


def _put_back_if_written(path: str, target: str, fd: int, before: os.stat_result) -> None:
    """If the old file was written between the check and the rename, its new content
    was about to be lost with it: write it back in place of ours and say so."""
    now = os.fstat(fd)
    if (now.st_size, now.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
        return
    theirs = bytearray()
    while chunk := os.pread(fd, 1 << 20, len(theirs)):
        theirs += chunk
    tmp = _write_temp(path, *os.path.split(target), bytes(theirs), now)
    try:
        os.replace(tmp, target)
    except OSError as e:
        _unlink(tmp)
        raise _save_error(path, e) from None
    raise ChangedOnDiskError(f"'{path}' was written by another program while dgterm saved it, so its "
                             "version was kept on disk; reload it to see it, or save with force to overwrite it.")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _read_only_fs(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


STALE_TEMP_SECONDS = 60  # a save in progress (ours or another dgterm's) is younger than this


def remove_stale_temps(path: str) -> list[str]:
    """Remove the temp files a save of ``path`` left behind when it was killed midway: ours
    only (named ``.NAME.<random>.dgterm-tmp`` next to the file's real path, regular files
    owned by this user, untouched for a minute). Best effort; returns what was removed."""
    folder, name = os.path.split(os.path.realpath(path))
    prefix = f".{name}."
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix) and e.name.endswith(_TMP_SUFFIX)
                   and len(e.name) > len(prefix) + len(_TMP_SUFFIX)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and now - st.st_mtime > STALE_TEMP_SECONDS:
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue
    return removed


def _save_error(path: str, e: OSError) -> DocumentError:
    if e.errno == errno.EROFS:
        return DocumentError(f"Cannot save '{path}': its file system is mounted read-only; "
                             "save it somewhere else with save as.")
    if isinstance(e, PermissionError):
        return DocumentError(f"Cannot save '{path}': permission denied in its folder; "
                             "save it somewhere else with save as.")
    if isinstance(e, FileNotFoundError):
        return DocumentError(f"Cannot save '{path}': its folder does not exist; "
                             "save it somewhere else with save as.")
    return DocumentError(f"Cannot save '{path}': {e.strerror or e}; the file on disk is "
                         "unchanged, so fix that and save again.")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (not possible everywhere, hence best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

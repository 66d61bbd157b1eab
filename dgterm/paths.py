"""Paths given by the user: an output must never be one of the inputs."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path


def _files(path: Path) -> Iterable[os.stat_result]:
    """The stat of ``path``, and of every file under it if it is a folder (links followed)."""
    try:
        yield os.stat(path)
    except OSError:
        return
    if path.is_dir():
        for root, _, names in os.walk(path):
            for name in names:
                try:
                    yield os.stat(os.path.join(root, name))
                except OSError:
                    pass


def same_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | int]) -> str | None:
    """The input (a path, or an open file descriptor such as 0 for standard input) that
    ``output`` or any file under it is, or None. Compares devices and inodes, so links,
    ``..`` and symlinked folders do not hide it."""
    outs = {(st.st_dev, st.st_ino) for st in _files(Path(output))}
    if not outs:
        return None
    for source in inputs:
        stats: Iterable[os.stat_result]
        if isinstance(source, int):
            try:
                stats = [os.fstat(source)]
            except OSError:
                continue
            name = "standard input"
        else:
            stats, name = _files(Path(source)), str(source)
        if any((st.st_dev, st.st_ino) in outs for st in stats):
            return name
    return None


def refuse_input(output: str | os.PathLike | None, flag: str, inputs: Iterable[str | os.PathLike | int]) -> None:
    """Raise InputError if the output named by ``flag`` would overwrite an input, or is a FIFO
    or socket (opening one waits for a reader: the command would hang with nothing said)."""
    from dgterm.errors import InputError

    if output is None:
        return
    try:
        mode = os.stat(output).st_mode
    except OSError:
        mode = 0
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise InputError(f"{flag} {output} is a {'FIFO' if stat.S_ISFIFO(mode) else 'socket'}, not a file; "
                         "give the name of a regular file.")
    hit = same_input(output, inputs)
    if hit is not None:
        raise InputError(f"{flag} {output} is {'' if hit == str(output) else 'the same file as '}{hit}, which "
                         "dgterm reads; writing there would destroy it, so choose another path.")


MiB = 1 << 20


def read_limited(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Anything else raises OSError whose ``strerror`` says why, so that a FIFO is never
    waited on and ``/dev/zero`` is never read forever (the open does not block).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "it is not a regular file")
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"it is {_size(st.st_size)}, more than the {_size(limit)} dgterm reads")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"it is more than the {_size(limit)} dgterm reads")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"

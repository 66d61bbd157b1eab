"""Plain-text helpers, written once, for the Document and the editor view.

The line index: where each line of a text starts, built in one pass and then moved
edit by edit. The common ends of two strings: how much they share at the start and at
the end, so that only the middle is replaced. Both run in C over whole chunks rather
than in Python per character: a 20 MB file is edited like a small one.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

CHUNK = 1 << 16  # characters compared at once when looking for the common ends


def line_starts(text: str) -> list[int]:
    """The offset where each line of ``text`` starts, then ``len(text) + 1`` (where a
    line after the last would start): n newlines give n + 2 entries."""
    return list(accumulate([len(line) + 1 for line in text.split("\n")], initial=0))


def moved_line_starts(starts: list[int], start: int, end: int, text: str) -> list[int]:
    """The ``line_starts`` after [start, end) of the text became ``text`` (cheaper than
    building them again)."""
    i, j = bisect_right(starts, start), bisect_right(starts, end)
    new, p = [], text.find("\n")
    while p >= 0:
        new.append(start + p + 1)
        p = text.find("\n", p + 1)
    delta = len(text) - (end - start)
    return starts[:i] + new + ([x + delta for x in starts[j:]] if delta else starts[j:])


def location(starts: list[int], offset: int) -> tuple[int, int]:
    """The (line, column) of ``offset`` (0 to the text's length) in the text ``starts``
    indexes."""
    line = bisect_right(starts, offset) - 1
    return line, offset - starts[line]


def common_prefix(a: str, b: str) -> int:
    """The length of the longest common start of ``a`` and ``b``."""
    n, i = min(len(a), len(b)), 0
    while i < n:
        j = min(i + CHUNK, n)
        if a[i:j] != b[i:j]:
            return i + _common_prefix_within(a, b, i, j)
        i = j
    return n


def common_suffix(a: str, b: str, limit: int | None = None) -> int:
    """The length of the longest common end of ``a`` and ``b``, at most ``limit``."""
    n = min(len(a), len(b)) if limit is None else min(len(a), len(b), max(0, limit))
    # the prefix of the reversed tails, read in chunks from the end
    la, lb, i = len(a), len(b), 0
    while i < n:
        j = min(i + CHUNK, n)
        if a[la - j:la - i] != b[lb - j:lb - i]:
            return i + _common_prefix_within(a[la - j:la - i][::-1], b[lb - j:lb - i][::-1], 0, j - i)
        i = j
    return n


def common_ends(a: str, b: str) -> tuple[int, int]:
    """(p, q) such that ``a`` and ``b`` share their first p and their last q characters
    and p + q fits in both: turning ``a`` into ``b`` replaces a[p:len(a) - q] by
    b[p:len(b) - q]. The start is taken first, as long as it goes."""
    p = common_prefix(a, b)
    return p, common_suffix(a, b, min(len(a), len(b)) - p)


def _common_prefix_within(a: str, b: str, lo: int, hi: int) -> int:
    """How far past ``lo`` ``a`` and ``b`` agree, given that they agree up to ``lo`` and
    differ before ``hi``: halving the stretch, each test one slice compare."""
    start = lo
    hi -= 1  # they differ somewhere in [lo, hi)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo - start

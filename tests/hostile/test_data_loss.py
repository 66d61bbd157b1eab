"""The four ways dgterm once lost data (issue 12), each impossible now."""

from __future__ import annotations

import json
import os
import tempfile
import threading

import pytest

from dgterm.editor import ChangedOnDiskError, Document, journal


# ---- 2. a write by another program between the check and the rename ----------------


def _append_when(monkeypatch, module, name, path, extra):
    """Patch ``module.name`` so that ``extra`` is appended to ``path`` just before it runs."""
    real = getattr(module, name)

    def hooked(*args, **kwargs):
        if name != "replace" or str(args[1]) == str(path):
            with open(path, "ab") as f:
                f.write(extra)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, hooked)


@pytest.mark.parametrize("moment", ["temp file created", "just before the rename"])
def test_a_write_during_the_save_is_not_lost(tmp_path, monkeypatch, moment):
    path = tmp_path / "f.txt"
    path.write_bytes(b"mine\n")
    doc = Document.open(path)
    doc.insert(0, "still ")
    if moment == "temp file created":
        _append_when(monkeypatch, tempfile, "mkstemp", path, b"theirs\n")
    else:
        _append_when(monkeypatch, os, "replace", path, b"theirs\n")
    with pytest.raises(ChangedOnDiskError, match="another program|changed on disk"):
        doc.save()
    monkeypatch.undo()
    assert path.read_bytes() == b"mine\ntheirs\n"
    assert doc.dirty and doc.text == "still mine\n"  # nothing lost on either side
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no temp file left


def test_an_append_by_a_thread_watching_the_folder_is_kept(tmp_path):
    """A real race: another thread appends the moment the temp file appears."""
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * (4 << 20))
    doc = Document.open(path)
    doc.insert(0, "y")
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if any(n.endswith(".dgterm-tmp") for n in os.listdir(tmp_path)):
                with open(path, "ab") as f:
                    f.write(b"theirs")
                return

    t = threading.Thread(target=watch)
    t.start()
    try:
        doc.save()
        saved = True
    except ChangedOnDiskError:
        saved = False
    finally:
        stop.set()
        t.join()
    data = path.read_bytes()
    # Either the append landed on the new file after the rename, or the save refused
    # and the other program's version is whole on disk: never is it lost.
    assert data.endswith(b"theirs")
    assert data.startswith(b"y" if saved else b"x")


# ---- 3. a same-size edit whose mtime was put back ---------------------------------------


def test_same_size_edit_with_restored_mtime_is_seen(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"aaaa\n")
    doc = Document.open(path)
    st = os.stat(path)
    with open(path, "r+b") as f:  # same inode, same size
        f.write(b"bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert doc.changed_on_disk()
    doc.insert(0, "c")
    with pytest.raises(ChangedOnDiskError):
        doc.save()
    assert path.read_bytes() == b"bbbb\n"


# ---- 4. a corrupt recovery journal -------------------------------------------------------


def _journal_of(path):
    folder = journal.journal_dir(str(path))
    return sorted(folder.iterdir()) if folder.exists() else []


def _crashed_session(path):
    """A journal left by a dead session: a header and a few edits, as written."""
    doc = Document.open(path)
    doc.insert(0, "alpha ")
    doc.add_span(0, 5)
    doc.close()
    (file,) = _journal_of(path)
    return file, [json.loads(line) for line in file.read_bytes().splitlines()]


CORRUPTIONS = {
    "eol not a newline": lambda rs: rs + [{"r": [0, 0, "a\nb\n", ["o", "ps"]]}],
    "eol count wrong": lambda rs: rs + [{"r": [0, 0, "a\nb\n", ["\n"]]}],
    "reversed edit": lambda rs: rs + [{"r": [4, 1, "x", None]}],
    "edit out of range": lambda rs: rs + [{"r": [0, 10_000, "x", None]}],
    "reversed span": lambda rs: rs + [{"spans": [[1, 4, 2, None]]}],
    "span out of range": lambda rs: rs + [{"spans": [[1, 0, 10_000, None]]}],
    "duplicate spans": lambda rs: rs + [{"spans": [[1, 0, 2, None], [1, 0, 2, None]]}],
    "overlapping spans": lambda rs: rs + [{"spans": [[1, 0, 3, None], [2, 2, 4, None]]}],
    "base eol count wrong": lambda rs: [{**rs[0], "base": {"text": "a\nb\n", "newline": "\n", "eol": ["\r\n"]}}] + rs[1:],
    "base newline not a newline": lambda rs: [{**rs[0], "base": {"text": "a\n", "newline": "o", "eol": None}}] + rs[1:],
    "unknown record": lambda rs: rs + [{"zap": 1}],
    "text not a string": lambda rs: rs + [{"r": [0, 0, 5, None]}],
    "garbage line in the middle": lambda rs: rs[:1] + ["not json"] + rs[1:],
    "record not an object": lambda rs: rs + [[1, 2]],
    "100,000 [ on a line": lambda rs: rs[:1] + ["[" * 100_000] + rs[1:],
    "nested 100,000 deep": lambda rs: rs + ['{"r": ' + "[" * 100_000 + "]" * 100_000 + "}"],
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_a_corrupt_journal_is_set_aside_not_replayed(tmp_path, corrupt):
    path = tmp_path / "f.txt"
    path.write_bytes(b"beta\r\ngamma\r\n")
    file, records = _crashed_session(path)
    bad = CORRUPTIONS[corrupt](records)
    file.write_bytes(b"".join((r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in bad))
    doc = Document.open(path)
    assert doc.recovery is None
    assert doc.warning and "recovery journal" in doc.warning and doc.warning.count(". ") == 0
    kept = _journal_of(path)
    assert len(kept) == 1 and not kept[0].name.endswith(".jsonl") and str(kept[0]) in doc.warning
    assert kept[0].read_bytes() == b"".join(
        (r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in bad)
    doc.insert(0, "x")
    doc.save()
    assert path.read_bytes() == b"xbeta\r\ngamma\r\n"
    assert Document.open(path).warning is None  # set aside once, not reported again


def test_a_valid_journal_still_recovers(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"beta\r\ngamma\r\n")
    _crashed_session(path)
    doc = Document.open(path)
    assert doc.recovery == "alpha beta\ngamma\n"
    doc.recover()
    doc.save()
    assert path.read_bytes() == b"alpha beta\r\ngamma\r\n"


# ---- 5. the temp file of an --in-place save that was killed ---------------------------------

# A child runs `dgterm infill --in-place` and stops for good at the save's rename, to be SIGKILLed there.
_KILLED_AT_THE_RENAME = """
import os, sys, time
real = os.replace
def replace(src, dst, *a, **k):
    if str(dst) == sys.argv[1]:
        print("renaming", flush=True)
        time.sleep(600)
    return real(src, dst, *a, **k)
os.replace = replace
from dgterm.cli import main
main(["infill", sys.argv[1], "--span", "0:5", "--in-place", "--steps", "2", "--candidates", "1"])
"""


def test_a_killed_in_place_save_leaves_a_temp_that_the_next_open_or_save_removes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.cli import dgterm

    path = tmp_path / "f.txt"
    original = "hello there, " * 5000 + "\n"  # 65 kB
    path.write_text(original)
    child = subprocess.Popen([sys.executable, "-c", _KILLED_AT_THE_RENAME, str(path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "renaming\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (temp,) = tmp_path.glob(".f.txt.*.dgterm-tmp")
    assert path.read_text() == original and temp.read_text().endswith(original[5:])  # the new version, whole
    Document.open(path).close()
    assert temp.exists()  # a minute old at least: it may be another dgterm's save under way
    old = time.time() - 120
    os.utime(temp, (old, old))
    out = dgterm("infill", path, "--span", "0:5", "--in-place", "--steps", "2", "--candidates", "1")
    assert out.returncode == 0, out.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"] and path.read_text().endswith(original[5:])

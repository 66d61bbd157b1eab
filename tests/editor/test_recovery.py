"""Recovery through its own module: the journal header, replaying records into a bare
Buffer, and finding the journals of dead sessions (dgterm.editor.recovery). The end to
end cases, through Document.open, are in test_editor_journal.py."""

import hashlib
import json

import pytest

from dgterm.editor import Document, journal, recovery
from dgterm.editor.buffer import Buffer
from dgterm.editor.journal import CorruptJournal, Journal

SHA = hashlib.sha256(b"file").hexdigest()


def spans_of(buf):
    return [(s.id, s.start, s.end, s.target_tokens) for s in buf.spans]


def test_header_carries_a_copy_of_the_text_only_when_asked():
    buf = Buffer("one\ntwo\n", newline="\r\n")
    buf.add_span(0, 3, 5)
    head = recovery.header(buf, path="/f", rewrite=None, disk=SHA, base=False)
    assert head == {"dgterm_journal": 1, "path": "/f", "spans": ((1, 0, 3, 5),), "rewrite": None, "disk": SHA}
    head = recovery.header(buf, path=None, rewrite={"spans": [1], "info": {}}, disk=None, base=True)
    assert "disk" not in head
    assert head["base"] == {"text": "one\ntwo\n", "newline": "\r\n", "eol": None}
    journal.check(json.loads(json.dumps([head])))  # what the journal reader accepts


def test_replay_applies_edits_spans_and_rewrite_to_the_base():
    base = {"text": "ab\ncd\n", "newline": "\n", "eol": None}
    records = [
        {"dgterm_journal": 1, "path": "/f", "spans": [[1, 0, 2, None]], "rewrite": None, "base": base},
        {"r": [2, 2, "X", None]},
        {"r": [0, 0, "top\n", ["\r\n"]]},
        {"spans": [[1, 4, 7, 3]]},
        {"rewrite": {"spans": [1], "info": {"instruction": "shorter"}}},
    ]
    journal.check(records)
    got = recovery.replay(records, Buffer("unrelated"), None)
    assert got is not None
    buf, rewrite = got
    assert buf.text == "top\nabX\ncd\n"
    assert buf.file_text() == "top\r\nabX\ncd\n"
    assert spans_of(buf) == [(1, 4, 7, 3)]
    assert rewrite == {"spans": [1], "info": {"instruction": "shorter"}}
    assert not buf.can_undo()  # replayed, not recorded


def test_replay_against_the_file_needs_its_hash():
    current = Buffer("on disk\n", newline="\r\n", eol=["\r\n"])
    records = [{"dgterm_journal": 1, "path": "/f", "spans": [], "rewrite": None, "disk": SHA},
               {"r": [0, 0, "new ", None]}]
    buf, _ = recovery.replay(records, current, SHA)
    assert buf.text == "new on disk\n" and buf.file_text() == "new on disk\r\n"
    assert current.text == "on disk\n"  # replayed into a copy
    assert recovery.replay(records, current, hashlib.sha256(b"other").hexdigest()) is None
    assert recovery.replay(records, current, None) is None


def test_replay_after_a_save_of_the_same_file_is_the_file():
    current = Buffer("saved\n")
    records = [{"dgterm_journal": 1, "path": "/f", "spans": [], "rewrite": None,
                "base": {"text": "", "newline": "\n", "eol": None}},
               {"r": [0, 0, "saved\n", None]}, {"saving": SHA}, {"spans": []}]
    buf, rewrite = recovery.replay(records, current, SHA)
    assert buf.text == "saved\n" and rewrite is None and buf is not current


@pytest.mark.parametrize("record, why", [
    ({"r": [0, 9, "", None]}, "line 2: edit ends after the text"),
    ({"spans": [[1, 0, 9, None]]}, "line 2: a span ends after the text"),
])
def test_replay_refuses_offsets_past_the_text(record, why):
    records = [{"dgterm_journal": 1, "path": "/f", "spans": [], "rewrite": None,
                "base": {"text": "abc", "newline": "\n", "eol": None}}, record]
    with pytest.raises(CorruptJournal, match=why):
        recovery.replay(records, Buffer(), None)


def test_find_offers_the_newest_and_deletes_what_equals_the_file(tmp_path):
    path = str(tmp_path / "f.txt")
    for text in ("older", "newer"):
        doc = Document.new(path)
        doc.insert(0, text)
        doc.close()  # unsaved: the journal stays, as after a crash
    same = Document.new(path)
    same.insert(0, "x")
    same.delete(0, 1)
    same.close()  # dirty but equal to the file: nothing to offer
    assert len(list(journal.journal_dir(path).glob("*.jsonl"))) == 3

    found, warning = recovery.find(Journal(path), Buffer(), None)
    assert warning is None and found is not None
    assert found.buffer.text == "newer" and found.rewrite is None
    found.orphan.discard()
    found, _ = recovery.find(Journal(path), Buffer(), None)
    assert found.buffer.text == "older"  # the older one is offered next
    found.orphan.discard()
    assert recovery.find(Journal(path), Buffer(), None) == (None, None)


def test_find_sets_a_damaged_journal_aside(tmp_path):
    path = str(tmp_path / "f.txt")
    doc = Document.new(path)
    doc.insert(0, "abc")
    doc.close()
    (file,) = journal.journal_dir(path).glob("*.jsonl")
    file.write_text(file.read_text() + json.dumps({"r": [0, 99, "", None]}) + "\n")
    found, warning = recovery.find(Journal(path), Buffer(), None)
    assert found is None
    assert "is damaged (line 3: edit ends after the text)" in warning
    assert list(journal.journal_dir(path).glob("*.jsonl")) == []
    assert len(list(journal.journal_dir(path).glob("*.corrupt"))) == 1

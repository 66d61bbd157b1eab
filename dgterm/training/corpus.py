"""The offline corpus the bundled model is trained and evaluated on.

Every machine with Python has it: the standard library sources of the running
interpreter (code, comments, docstrings, and the stdlib's own tests) and the prose
of ``pydoc_data.topics``. The train / held-out split is by file, from a hash of
the path relative to the stdlib root, so it is the same on every machine with the
same Python and a held-out file is never trained on.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

HELD_OUT_PERCENT = 3


@dataclass(frozen=True)
class CorpusFile:
    name: str  # relative path, or "pydoc_data.topics:<topic>"
    text: str

    @property
    def held_out(self) -> bool:
        return is_held_out(self.name)


def is_held_out(name: str) -> bool:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_files(split: str = "train"):
    """Yield corpus files of one split ("train", "heldout" or "all"), in a fixed order."""
    root = stdlib_root()
    paths = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    files = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        files.append(CorpusFile(path.relative_to(root).as_posix(), text))
    from pydoc_data import topics

    files += [CorpusFile(f"pydoc_data.topics:{k}", v) for k, v in sorted(topics.topics.items())]
    for f in files:
        if split == "all" or (split == "heldout") == f.held_out:
            yield f

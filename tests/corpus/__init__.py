"""A corpus of odd text files for round-trip tests of every front end.

``from tests.corpus import odd_files``: each must open and save back byte for byte.
BINARY must be refused, INVALID_UTF8 must open read-only. The files are written by
make_odd.py and committed.
"""

from pathlib import Path

HERE = Path(__file__).parent
ODD_DIR = HERE / "odd"
BROKEN_DIR = HERE / "broken"
BINARY = BROKEN_DIR / "binary.bin"
UTF16_NO_BOM = BROKEN_DIR / "utf16_no_bom.txt"
INVALID_UTF8 = BROKEN_DIR / "invalid_utf8.txt"


def odd_files() -> list[Path]:
    return sorted(ODD_DIR.iterdir())

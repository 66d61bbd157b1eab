"""Writes the corpus of odd text files (run it after changing FILES; commit the output).

odd/: files every front end must open and save back byte for byte.
broken/: files that must be refused (binary) or opened read-only (invalid UTF-8).
"""

import codecs
from pathlib import Path

RTL = "שלום עולם\nمرحبا بالعالم\nmixed: hello שלום 123 \u200fעברית\u200f.\n"
INTL = "héllo wörld — ½ ∑ 漢字\n"

ODD = {
    "empty.txt": b"",
    "lf.txt": b"one\ntwo\nthree\n",
    "crlf.txt": b"one\r\ntwo\r\nthree\r\n",
    "cr.txt": b"old\rmac\rstyle\r",
    "mixed_newlines.txt": b"lf\ncrlf\r\ncr\rcr then crlf\r\r\nlf\n\ncrlf last\r\n",
    "no_final_newline.txt": b"first\nlast line without newline",
    "crlf_no_final_newline.txt": b"first\r\nsecond",
    "only_newlines.txt": b"\n\n\n",
    "bom_utf8.txt": codecs.BOM_UTF8 + ("with a BOM\r\n" + INTL.replace("\n", "\r\n")).encode(),
    "bom_only.txt": codecs.BOM_UTF8,
    "utf16le_bom.txt": codecs.BOM_UTF16_LE + ("UTF-16 LE\r\n" + INTL + "🎉\r\n").encode("utf-16-le"),
    "utf16be_bom.txt": codecs.BOM_UTF16_BE + ("UTF-16 BE\n" + INTL + "no final").encode("utf-16-be"),
    "utf32le_bom.txt": codecs.BOM_UTF32_LE + ("UTF-32 LE\n" + INTL).encode("utf-32-le"),
    "tabs.txt": b"\tindented\n\t\tmore\tand\tinline\t\n    spaces\n\t \t\n",
    "long_line.txt": ("0123456789" * 1000).encode() + b"\nshort\n",
    "combining.txt": "e\u0301 a\u0308 n\u0303 \u1e9b\u0323\nZ\u0351\u0352\u0353\u0354 stacked\nq\u0307\u0323\n".encode(),
    "emoji.txt": "👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ emoji\n𝕏 astral 𝄞\n".encode(),
    "rtl.txt": RTL.encode(),
    "invisible.txt": "zero\u200bwidth\u00a0nbsp inner\ufeffbom \u2028line sep\u2029para sep\x0cformfeed\x0bvtab\n".encode(),
    "trailing_whitespace.txt": b"spaces   \ntab\t\n   \n",
}

BROKEN = {
    "binary.bin": b"\x7fELF\x02\x01\x01\x00\x00\x00binary\x00data",
    "utf16_no_bom.txt": "no BOM\n".encode("utf-16-le"),
    "invalid_utf8.txt": b"caf\xe9 latin-1\nsecond line\n",
}


def main() -> None:
    here = Path(__file__).parent
    for folder, files in (("odd", ODD), ("broken", BROKEN)):
        (here / folder).mkdir(exist_ok=True)
        for name, data in files.items():
            (here / folder / name).write_bytes(data)


if __name__ == "__main__":
    main()

"""The editor core stays light: no torch, no UI library."""

import subprocess
import sys

CHECK = """
import sys
import dgterm.editor
from dgterm.editor import document, fileio, history, journal, spans
doc = dgterm.editor.Document.from_text("x")
doc.insert(0, "y")
heavy = sorted(m for m in ("torch", "textual", "rich", "prompt_toolkit", "transformers", "numpy")
               if m in sys.modules)
print(heavy)
"""


def test_editor_imports_neither_torch_nor_ui():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

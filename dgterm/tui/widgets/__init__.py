"""Widgets of the editor: the document view, the canvas panel, the status bar, a sparkline."""

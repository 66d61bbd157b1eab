"""The Textual editor (``dgterm open``). Build it with :func:`dgterm.tui.app.make_app`."""

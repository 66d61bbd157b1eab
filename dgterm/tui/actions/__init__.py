"""The app's actions, grouped by what they touch, each a mixin of the App: files, masking,
model (loading it, starting runs, the worker's messages), reviewing (a finished run, escape)
and view. What they need from the App is the Protocol in ``dgterm.tui.host``."""

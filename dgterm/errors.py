"""The one exception type a user sees: its message is one sentence that says what to do."""


class DgtermError(Exception):
    """A failure caused by the user's input or setup (bad path, missing model, no GPU).

    Front ends print ``str(error)`` and go on (TUI, REPL) or exit with status 2 (CLI);
    they never show a traceback for it.
    """


class ModelLoadError(DgtermError):
    pass


class InputError(DgtermError):
    pass

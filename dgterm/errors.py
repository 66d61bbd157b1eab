"""The one root of every error a user sees: its message is one sentence that says what to do.

Torch-free and UI-free: the editor, the engine and every front end import it.
"""


class DgtermError(Exception):
    """A failure caused by the user's input or setup (bad path, missing model, no GPU).

    Front ends print ``str(error)`` and go on (TUI, REPL) or exit with status 2 (CLI);
    they never show a traceback for it.
    """


class ModelLoadError(DgtermError):
    """The model could not be found, checked or loaded."""


class InputError(DgtermError):
    """A command, flag, setting or file given by the user cannot be used."""


class SettingError(InputError, ValueError):
    """A setting has a value it cannot take (a sampler setting out of range, an unknown name).

    Also a ValueError, as huggingface_hub's errors are also the builtin they refine: code that
    checks values catches it as one, a front end shows it as any other DgtermError.
    """


class OutOfMemory(DgtermError):
    """A run ran out of device memory; the message says what to change (dgterm.engine.local.oom)."""


class RemoteError(DgtermError):
    """A remote engine (``--server``) could not be reached, refused, or failed a run."""

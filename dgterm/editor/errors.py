"""Errors of the editor core. Each message is one sentence that says what to do."""

from dgterm.errors import DgtermError


class DocumentError(DgtermError):
    """Opening, editing or saving a document failed; ``str(e)`` is for the user."""


class ChangedOnDiskError(DocumentError):
    """The file changed on disk since dgterm last read or wrote it: reload it, or save with force."""


class ReadOnlyFileError(DocumentError):
    """The file on disk is read-only (by its mode bits, which bind root too): save over it only when asked to."""

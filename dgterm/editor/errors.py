"""Errors of the editor core. Each message is one sentence that says what to do."""


class DocumentError(Exception):
    """Opening, editing or saving a document failed; ``str(e)`` is for the user."""


class ChangedOnDiskError(DocumentError):
    """The file changed on disk since dgterm last read or wrote it: reload it, or save with force."""

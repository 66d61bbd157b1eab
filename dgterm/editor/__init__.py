"""Documents for every front end. Imports neither torch nor any UI library."""

from .document import Document
from .errors import ChangedOnDiskError, DocumentError, ReadOnlyFileError
from .spans import Span

__all__ = ["ChangedOnDiskError", "Document", "DocumentError", "ReadOnlyFileError", "Span"]

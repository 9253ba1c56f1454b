"""GoRelStorage: a RelStorage-compatible ZODB storage with its engine in Go.

Importing this package does not load the Go library; the first storage opened does.
"""
from ._native import ConfigurationError
from ._native import CommitOutcomeUnknownError
from ._native import DisconnectedError
from ._native import ForkedProcessError
from ._native import GoRelStorageError
from ._native import InternalError
from ._native import StorageClosedError
from ._native import UnableToLockError
from .adapters import MySQL
from .adapters import Oracle
from .adapters import PostgreSQL
from .adapters import SQLite3
from .options import Options
from .storage import GoRelStorage

__all__ = [
    'GoRelStorage', 'MySQL', 'Options', 'Oracle', 'PostgreSQL', 'SQLite3',
    'GoRelStorageError', 'CommitOutcomeUnknownError', 'ConfigurationError', 'DisconnectedError', 'ForkedProcessError', 'InternalError',
    'StorageClosedError', 'UnableToLockError',
]

"""Descriptions of the databases GoRelStorage can use, as the engine takes them."""
import os

from ._native import ConfigurationError


class SQLite3:
    """An embedded SQLite data-dir (RelStorage's ``<sqlite3>``): ``main.sqlite3`` and ``oids.sqlite3``."""

    engine_name = 'sqlite3'

    def __init__(self, data_dir, pragmas=None):
        if not isinstance(data_dir, (str, os.PathLike)) or not str(data_dir):
            raise ConfigurationError('sqlite3 data-dir must be a non-empty path, not %r' % (data_dir,))
        self.data_dir = os.path.abspath(os.fspath(data_dir))
        self.pragmas = {}
        for name, value in (pragmas or {}).items():
            if not isinstance(name, str):
                raise ConfigurationError('sqlite3 pragma names must be strings, not %r' % (name,))
            self.pragmas[name.replace('-', '_')] = str(value)

    def engine_dict(self):
        return {'data_dir': self.data_dir, 'pragmas': self.pragmas}

    def __repr__(self):
        return 'SQLite3(%r)' % self.data_dir

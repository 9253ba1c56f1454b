"""GoRelStorage's options: RelStorage's names and defaults.

Every RelStorage option is known here. Options this build implements are
passed to the engine; options RelStorage itself ignores are accepted with a
warning; an option this build does not implement yet is refused when set to
anything but its default, naming the option, so nothing is silently ignored.
"""
import os
import sys
import warnings

from ._native import ConfigurationError

# name: default, for the options the engine implements.
IMPLEMENTED = {
    'name': None,
    'read_only': False,
    'keep_history': True,
    'create_schema': True,
    'commit_lock_timeout': 30,
    'cache_delta_size_limit': 100000,
    'cache_local_mb': 10,
    'cache_local_object_max': 16384,
    'cache_local_compression': 'none',
    'cache_local_dir': None,
    'blob_dir': None,
    'shared_blob_dir': False,
    'blob_cache_size': None,
    'blob_cache_size_check': 10,
    'blob_cache_size_check_external': False,
    'blob_chunk_size': 1 << 20,
    'pack_gc': True,
    'pack_prepack_only': False,
    'pack_skip_prepack': False,
    'pack_batch_timeout': 15.0,
    # database servers only (the engine refuses them for SQLite).
    'replica_conf': None,
    'ro_replica_conf': None,
    'replica_timeout': 600.0,
    'revert_when_stale': False,
}

# Options pack() reads itself (the engine gets them with each pack).
_PACK = ('pack_gc', 'pack_prepack_only', 'pack_skip_prepack', 'pack_batch_timeout')

# RelStorage accepts these and ignores them (deprecated or removed features).
IGNORED = {
    'poll_interval': 0,
    'pack_commit_busy_delay': 5.0,
    'cache_local_storage': None,
    'cache_local_dir_count': None,
    'cache_local_dir_read_count': None,
    'cache_local_dir_compress': None,
    'cache_local_dir_write_max_size': None,
    'pack_dry_run': False,
    'pack_duty_cycle': None,
    'pack_max_delay': None,
    'blob_cache_chunk_size': None,
    # RelStorage 4.x keeps the option but takes the commit lock on the
    # commit_row_lock row whatever it is set to; so does GoRelStorage.
    'commit_lock_id': 0,
}

# RelStorage options not implemented by this build yet, with their defaults
# (the defaults are what the build does).
NOT_YET = {
    'cache_prefix': None,
    'cache_servers': None,
    'cache_module_name': 'relstorage.pylibmc_wrapper',
    'driver': 'auto',
}

_BOOL = ('read_only', 'keep_history', 'create_schema', 'shared_blob_dir', 'blob_cache_size_check_external',
         'pack_gc', 'pack_prepack_only', 'pack_skip_prepack', 'revert_when_stale')
# Options in bytes: an int, or a ZConfig byte-size such as '500MB' (zodburi passes text).
_BYTES = ('blob_cache_size', 'blob_chunk_size')


def _byte_size(name, value):
    if isinstance(value, str):
        from ZConfig.datatypes import stock_datatypes
        try:
            value = stock_datatypes['byte-size'](value)
        except ValueError:
            raise ConfigurationError('option %s must be a size in bytes such as 500MB, not %r'
                                     % (_spelled(name), value))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError('option %s must be a size in bytes >= 0, not %r' % (_spelled(name), value))
    return value


def _check_blob_options(values):
    """RelStorage's blob options: checked, and those RelStorage ignores dropped with a warning."""
    for name in _BYTES:
        if values[name] is not None:
            values[name] = _byte_size(name, values[name])
    if values['blob_chunk_size'] in (None, 0):
        raise ConfigurationError('option blob-chunk-size must be above 0')
    try:
        values['blob_cache_size_check'] = float(values['blob_cache_size_check'])
    except (TypeError, ValueError):
        raise ConfigurationError('option blob-cache-size-check must be a number, not %r'
                                 % (values['blob_cache_size_check'],))
    if not 0 < values['blob_cache_size_check'] < 100:
        raise ConfigurationError('option blob-cache-size-check is a percentage of blob-cache-size, above 0 '
                                 'and below 100, not %r' % (values['blob_cache_size_check'],))
    blob_dir = values['blob_dir']
    if blob_dir is not None and not isinstance(blob_dir, str):
        raise ConfigurationError('option blob-dir must be a directory name, not %r' % (blob_dir,))
    if not blob_dir:
        values['blob_dir'] = None
        for name in ('shared_blob_dir', 'blob_cache_size'):
            if values[name]:
                warnings.warn('option %s is ignored without blob-dir' % _spelled(name), UserWarning, stacklevel=4)
        values['shared_blob_dir'], values['blob_cache_size'] = False, None
    elif values['shared_blob_dir'] and values['blob_cache_size']:
        warnings.warn('option blob-cache-size is ignored with shared-blob-dir true: a shared blob directory '
                      'holds the only copy of each blob and is never pruned', UserWarning, stacklevel=4)
        values['blob_cache_size'] = None


def _spelled(name):
    return name.replace('_', '-')


def _same(value, default):
    if isinstance(default, bool) or default is None or isinstance(default, str):
        return value == default or (default is None and value in ('', None))
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return False


class Options:
    """Validated options. Build one from keyword arguments named as RelStorage names them
    (underscores or hyphens)."""

    def __init__(self, **kwargs):
        values = dict(IMPLEMENTED)
        for key, value in kwargs.items():
            name = key.replace('-', '_')
            if name in IMPLEMENTED:
                values[name] = value
            elif name in IGNORED:
                if value is not None and not _same(value, IGNORED[name]):
                    warnings.warn('option %s is ignored (as RelStorage ignores it)' % _spelled(name),
                                  FutureWarning, stacklevel=2)
            elif name in NOT_YET:
                if not _same(value, NOT_YET[name]):
                    raise ConfigurationError(
                        'option %s is not implemented in this build of GoRelStorage; remove it '
                        '(it is set to %r)' % (_spelled(name), value))
            else:
                raise ConfigurationError('unknown option %s' % _spelled(key))
        for name in _BOOL:
            if not isinstance(values[name], bool):
                raise ConfigurationError('option %s must be true or false, not %r'
                                         % (_spelled(name), values[name]))
        for name, kind in (('commit_lock_timeout', float), ('cache_delta_size_limit', int),
                           ('cache_local_mb', float), ('cache_local_object_max', int),
                           ('pack_batch_timeout', float), ('replica_timeout', float)):
            try:
                values[name] = kind(values[name])
            except (TypeError, ValueError):
                raise ConfigurationError('option %s must be a number, not %r' % (_spelled(name), values[name]))
            if values[name] < 0:
                raise ConfigurationError('option %s must be >= 0, not %r' % (_spelled(name), values[name]))
        compression = values['cache_local_compression']
        if compression is None or compression == '':
            values['cache_local_compression'] = compression = 'none'
        if compression not in ('none', 'zlib'):
            raise ConfigurationError('option cache-local-compression must be none or zlib, not %r' % (compression,))
        _check_blob_options(values)
        directory = values['cache_local_dir']
        if directory is not None and not isinstance(directory, str):
            raise ConfigurationError('option cache-local-dir must be a directory name, not %r' % (directory,))
        for name in ('replica_conf', 'ro_replica_conf'):
            path = values[name]
            if path in (None, ''):
                values[name] = None
            elif not isinstance(path, str) or not os.path.isfile(path):
                raise ConfigurationError('option %s must name a file of servers, one per line; %r is not a file'
                                         % (_spelled(name), path))
        if values['name'] is not None and not isinstance(values['name'], str):
            raise ConfigurationError('option name must be a string, not %r' % (values['name'],))
        self.__dict__.update(values)

    def copy(self, **changes):
        values = {k: getattr(self, k) for k in IMPLEMENTED}
        values.update(changes)
        return Options(**values)

    def engine_dict(self):
        d = {k: getattr(self, k) for k in IMPLEMENTED if k not in _PACK}
        d['name'] = d['name'] or ''
        d['cache_local_dir'] = d['cache_local_dir'] or ''
        d['replica_conf'] = os.path.abspath(d['replica_conf']) if d['replica_conf'] else ''
        d['ro_replica_conf'] = os.path.abspath(d['ro_replica_conf']) if d['ro_replica_conf'] else ''
        d['blob_dir'] = os.path.abspath(d['blob_dir']) if d['blob_dir'] else ''
        d['blob_cache_size'] = d['blob_cache_size'] or 0
        # blob-cache-size-check-external prunes in a new Python process.
        d['blob_prune_command'] = [sys.executable, '-m', 'gorelstorage.blobcache']
        return d

    def __repr__(self):
        return 'Options(%s)' % ', '.join('%s=%r' % (k, getattr(self, k)) for k in sorted(IMPLEMENTED))

"""The C ABI is spelled the same on both sides: error kinds, exports and their shapes."""
import os
import re

from gorelstorage import _native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def test_error_kinds_are_the_engines():
    go = {name: int(value) for name, value in re.findall(r'\bKind(\w+)\s+Kind = (\d+)', _read('engine', 'errors.go'))}
    go.pop('None')
    assert go == _native.KINDS
    assert set(_native._RAISES) == set(_native.KINDS), 'every kind raises an exception of its own'


def test_every_export_has_a_signature():
    go = set(re.findall(r'^//export (grs_\w+)$', ''.join(
        _read('capi', f) for f in os.listdir(os.path.join(ROOT, 'capi')) if f.endswith('.go')), re.M))
    assert go == set(_native._SIGNATURES) | {'grs_abi_version', 'grs_free_result'}


def test_a_kind_the_engine_does_not_name_is_still_an_error():
    exc = _native._exception(99, None, 0, 0, b'from a newer engine')
    assert isinstance(exc, _native.GoRelStorageError) and 'newer engine' in str(exc)
    unknown = _native._exception(_native.KINDS['CommitUnknown'], None, 7, 0, b'lost')
    assert isinstance(unknown, _native.CommitOutcomeUnknownError) and unknown.tid == b'\0' * 7 + b'\x07'

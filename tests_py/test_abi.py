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


_GO_TYPES = {'C.uint64_t': _native._u64, 'C.int64_t': _native._i64, 'C.int32_t': _native._i32,
             '*C.uint8_t': _native._buf, '*C.uint64_t': _native._buf}


def _go_exports():
    """{export name: its argument types before the result pointer}, read from capi/*.go."""
    source = ''.join(_read('capi', f) for f in os.listdir(os.path.join(ROOT, 'capi')) if f.endswith('.go'))
    out = {}
    for name, params in re.findall(r'^//export (grs_\w+)\nfunc \1\((.*)\) ', source, re.M):
        types, pending = [], 0
        for param in [p.strip() for p in params.split(',') if p.strip()]:
            words = param.split()
            if len(words) == 1:  # a name whose type follows: "h, oid C.uint64_t"
                pending += 1
                continue
            types.extend([words[1]] * (pending + 1))
            pending = 0
        if types and types[-1] == '*C.grs_result':  # grs_abi_version and grs_free_result have none
            out[name] = tuple(_GO_TYPES[t] for t in types[:-1])
    return out


def test_every_signature_matches_the_go_export():
    go = _go_exports()
    for name, args in _native._SIGNATURES.items():
        assert go[name] == args, name


def test_the_result_record_is_result_h():
    fields = re.findall(r'^\s*\w+\*?\s+\**(\w+)(?:\[\d+\])?;', _read('capi', 'result.h'), re.M)
    assert fields == [f[0] for f in _native.Result._fields_]

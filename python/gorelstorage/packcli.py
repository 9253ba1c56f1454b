"""gorelstorage pack: zodbpack's command, for GoRelStorage and any other storage.

Reads a ZConfig file of one or more storage sections (``<gorelstorage>``, RelStorage's
``<relstorage>`` when it is installed, ``<filestorage>``, ...) and packs each, keeping
``--days`` of history. On a terminal, a line shows the phase, the count done, the rate and
the time left. Errors are one line; the exit status is 0 only when every storage packed
(and, with --check-refs-only, no broken reference was found).
"""
import importlib.util
import inspect
import logging
import sys
import threading
import time
from io import StringIO

SCHEMA = """
<schema>
  <import package="ZODB"/>
  <import package="gorelstorage"/>
  %s
  <multisection type="ZODB.storage" attribute="storages" />
</schema>
"""

_PHASES = {'start': 'starting', 'analyze': 'reading references', 'traverse': 'finding garbage',
           'plan': 'planning', 'remove': 'removing', 'cleanup': 'cleaning up'}
_UNITS = {'analyze': 'states', 'traverse': 'objects', 'remove': 'revisions'}


def add_arguments(p):
    p.add_argument('-d', '--days', type=float, default=1.0,
                   help='days of history to keep (default: %(default)s); negative packs to now')
    p.add_argument('--prepack', action='store_true',
                   help='only plan the pack (its tables are left for --use-prepack-state)')
    p.add_argument('--use-prepack-state', dest='reuse_prepack', action='store_true',
                   help='skip planning: remove what an earlier --prepack planned')
    p.add_argument('--check-refs-only', dest='check_refs', action='store_true',
                   help='plan a garbage-collecting pack to now and list references from kept '
                        'objects to missing ones; nothing is removed (--days and --prepack are ignored)')
    p.add_argument('-v', '--verbose', action='store_true', help='log each step of the pack')
    p.add_argument('config_file', help='a ZConfig file with one or more storage sections')


def _relstorage_import():
    """The schema's import of RelStorage's <relstorage> section, when it is installed."""
    if importlib.util.find_spec('relstorage') is not None:
        return '<import package="relstorage"/>'
    return ''


def main(args):
    import ZConfig
    from ZODB.serialize import referencesf

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(message)s', stream=sys.stderr)
    if args.prepack and args.reuse_prepack:
        return _fail('--prepack and --use-prepack-state exclude each other')
    try:
        schema = ZConfig.loadSchemaFile(StringIO(SCHEMA % _relstorage_import()))
        config, _ = ZConfig.loadConfig(schema, args.config_file)
    except (ZConfig.ConfigurationError, OSError) as e:
        return _fail('%s: %s' % (args.config_file, _one_line(e)))
    t = None if args.days < 0 or args.check_refs else time.time() - args.days * 86400.0
    status = 0
    for section in config.storages:
        name = section.name or getattr(getattr(section, 'config', None), 'name', None) or 'storage'
        try:
            storage = section.open()
        except Exception as e:
            status = _fail('%s: cannot open: %s' % (name, _one_line(e)))
            continue
        name = section.name or storage.getName()
        try:
            status = max(status, _pack_one(storage, name, t, args, referencesf))
        except Exception as e:
            status = _fail('%s: %s' % (name, _one_line(e)))
        finally:
            storage.close()
    return status


def _pack_one(storage, name, t, args, referencesf):
    options = dict(prepack_only=args.prepack, skip_prepack=args.reuse_prepack, check_refs=args.check_refs)
    if not hasattr(storage, 'pack_report'):
        # Another storage: as zodbpack calls it; the split pack is RelStorage's.
        if args.prepack or args.reuse_prepack or args.check_refs:
            if 'prepack_only' not in inspect.signature(storage.pack).parameters:
                print('%s: not packed: --prepack, --use-prepack-state and --check-refs-only apply to '
                      'GoRelStorage and RelStorage only' % name)
                return 0
            storage.pack(t, referencesf, **options)
        else:
            storage.pack(t, referencesf)
        print('%s: packed' % name)
        return 0
    units = dict(_UNITS, remove='revisions' if storage.supportsUndo() else 'objects')
    result = _with_progress(storage, name, units, lambda: storage.pack_report(t, **options))
    if args.check_refs:
        broken = result.get('broken_refs') or []
        for from_oid, to_oid in broken:
            print('%s: object %d refers to object %d, which does not exist' % (name, from_oid, to_oid))
        print('%s: %d broken reference(s)' % (name, len(broken)))
        return 1 if broken else 0
    print(_summary(name, result, storage.supportsUndo()))
    return 0


def _with_progress(storage, name, units, run):
    """Runs the pack in a thread; on a terminal, redraws a progress line twice a second."""
    outcome = {}

    def target():
        try:
            outcome['result'] = run()
        except BaseException as e:
            outcome['error'] = e
    worker = threading.Thread(target=target, name='gorelstorage-pack', daemon=True)
    worker.start()
    tty = sys.stderr.isatty()
    rate = _Rate()
    while worker.is_alive():
        worker.join(0.5)
        if tty and worker.is_alive():
            progress = storage.pack_progress()
            if progress:
                sys.stderr.write('\r\x1b[K' + _progress_line(name, progress, rate, units))
                sys.stderr.flush()
    if tty:
        sys.stderr.write('\r\x1b[K')
    if 'error' in outcome:
        raise outcome['error']
    return outcome['result']


class _Rate:
    """Items per second within the current phase."""

    def __init__(self):
        self.phase, self.start, self.first = None, 0.0, 0

    def __call__(self, phase, done):
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.start, self.first = phase, now, done
            return 0.0
        elapsed = now - self.start
        return (done - self.first) / elapsed if elapsed > 0 else 0.0


def _progress_line(name, progress, rate, units):
    phase, done, total = progress['phase'], progress['done'], progress['total']
    line = '%s: %s' % (name, _PHASES.get(phase, phase))
    if total or done:
        unit = units.get(phase, '')
        line += ' %s%s %s' % ('{:,}'.format(done), '/{:,}'.format(total) if total else '', unit)
        per_second = rate(phase, done)
        if per_second > 0:
            line += ', %s/s' % '{:,.0f}'.format(per_second)
            if total > done:
                line += ', %s left' % _duration((total - done) / per_second)
    return line


def _duration(seconds):
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return '%d s' % seconds
    if seconds < 3600:
        return '%d min %02d s' % divmod(seconds, 60)
    return '%d h %02d min' % (seconds // 3600, seconds % 3600 // 60)


def _summary(name, result, keep_history):
    if not result.get('pack_tid'):
        return '%s: nothing to pack' % name
    what = 'revisions' if keep_history else 'objects'
    return ('%s: packed to transaction %d in %.1f s: %d states read for references, %d of %d objects '
            'unreachable, %d %s removed%s' % (
                name, result['pack_tid'], result.get('duration_sec', 0), result.get('analyzed', 0),
                result.get('garbage', 0), result.get('objects', 0), result.get('removed', 0), what,
                ' (garbage collection skipped: see the warnings)' if result.get('gc_skipped') else ''))


def _one_line(e):
    text = str(e).strip() or e.__class__.__name__
    return ' '.join(text.split())


def _fail(message):
    sys.stderr.write('gorelstorage pack: error: %s\n' % message)
    return 1

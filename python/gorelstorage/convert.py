"""gorelstorage convert: zodbconvert's command, for GoRelStorage and any other storage.

Reads a ZConfig file with a ``source`` and a ``destination`` storage section (``<filestorage>``,
``<zeoclient>``, ``<gorelstorage>``, RelStorage's ``<relstorage>`` when it is installed, ...)
and copies every transaction of the source into the destination with its tid, blobs with
them. The destination must be empty, unless --clear empties it first or --incremental resumes
after its newest transaction. On a terminal, a line shows the transactions, records and bytes
copied, the rate and, when the source tells its size, the time left; a summary follows. Errors
are one line (--debug shows the traceback).
"""
import logging
import sys
import threading
import time
from io import StringIO

from ZODB.utils import p64
from ZODB.utils import readable_tid_repr
from ZODB.utils import u64

from .packcli import _duration
from .packcli import _one_line
from .packcli import _relstorage_import

SCHEMA = """
<schema>
  <import package="ZODB"/>
  <import package="gorelstorage"/>
  %s
  <section type="ZODB.storage" name="source" attribute="source" required="yes" />
  <section type="ZODB.storage" name="destination" attribute="destination" required="yes" />
</schema>
"""


class UsageError(Exception):
    """What the user asked cannot be done; the message says why and what to do."""


def add_arguments(p):
    p.add_argument('--dry-run', action='store_true',
                   help='open both storages and tell what would be copied; nothing is written')
    p.add_argument('--clear', action='store_true',
                   help='empty the destination first (zap_all: GoRelStorage and RelStorage). '
                        'Everything it holds is deleted')
    p.add_argument('--incremental', action='store_true',
                   help='the destination holds a partial copy of the source: copy the transactions '
                        'after its newest one (nothing checks that the earlier ones match)')
    p.add_argument('--debug', action='store_true', help='log each step and show tracebacks of errors')
    p.add_argument('config_file', help='a ZConfig file with <... source> and <... destination> sections')


def main(args):
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(name)s %(message)s', stream=sys.stderr)
    try:
        return _convert(args)
    except Exception as e:
        if args.debug:
            raise
        sys.stderr.write('gorelstorage convert: error: %s\n' % (
            str(e) if isinstance(e, UsageError) else '%s: %s' % (e.__class__.__name__, _one_line(e))))
        return 1


def _convert(args):
    import ZConfig
    if args.dry_run and args.clear:
        raise UsageError('--dry-run writes nothing, so it cannot --clear')
    if args.clear and args.incremental:
        raise UsageError('--clear and --incremental exclude each other: one empties the destination, '
                         'the other resumes what it holds')
    try:
        schema = ZConfig.loadSchemaFile(StringIO(SCHEMA % _relstorage_import()))
        config, _ = ZConfig.loadConfig(schema, args.config_file)
    except (ZConfig.ConfigurationError, OSError) as e:
        raise UsageError('%s: %s' % (args.config_file, _one_line(e)))
    source = _open(config.source, 'source')
    try:
        destination = _open(config.destination, 'destination')
        try:
            return _run(args, source, destination)
        finally:
            destination.close()
    finally:
        source.close()


def _open(section, role):
    try:
        return section.open()
    except Exception as e:
        raise UsageError('cannot open the %s storage: %s' % (role, _one_line(e)))


def _has_data(storage):
    it = storage.iterator()
    try:
        for _ in it:
            return True
        return False
    finally:
        if hasattr(it, 'close'):
            it.close()


def _run(args, source, destination):
    from .copying import Copier
    if args.clear:
        if not hasattr(destination, 'zap_all'):
            raise UsageError('--clear: the destination (%s) cannot be emptied: only GoRelStorage and '
                             'RelStorage can; give an empty destination instead' % destination.getName())
        if not args.dry_run:
            destination.zap_all()
            print('destination emptied')
    start = None
    if _has_data(destination):
        if not (args.incremental or args.dry_run):
            raise UsageError('the destination (%s) holds transactions: --clear to empty it first, or '
                             '--incremental to copy only what comes after its newest one'
                             % destination.getName())
        if args.incremental:
            start = p64(u64(destination.lastTransaction()) + 1)
            print('resuming after the destination\'s newest transaction, from %s' % readable_tid_repr(start))
        else:
            print('note: the destination holds transactions; without --clear or --incremental the copy '
                  'would be refused')
    if args.dry_run:
        return _dry_run(source, start)
    copier = Copier(source, destination)
    started = time.monotonic()
    if start is None and copier.can_copy_current():
        # A history-free destination keeps current states only: RelStorage's fast path.
        print('the destination is history-free: copying the source\'s current records only')
        _with_progress(copier, source, copier.copy_current)
    else:
        _with_progress(copier, source, lambda: _copy_all(copier, source, start))
    elapsed = time.monotonic() - started
    print(_summary('copied', copier, elapsed))
    return 0


def _copy_all(copier, source, start):
    it = source.iterator(start)
    try:
        copier.copy_all(it)
    finally:
        if hasattr(it, 'close'):
            it.close()


def _dry_run(source, start):
    class Counter:
        transactions = records = bytes = blobs = blob_bytes = 0
    c = Counter()
    started = time.monotonic()
    it = source.iterator(start)
    try:
        for trans in it:
            c.transactions += 1
            for r in trans:
                c.records += 1
                c.bytes += len(r.data or b'')
    finally:
        if hasattr(it, 'close'):
            it.close()
    print(_summary('dry run: would copy', c, time.monotonic() - started, timed=False))
    return 0


def _with_progress(copier, source, run):
    """Runs the copy in a thread; on a terminal, redraws a progress line twice a second."""
    outcome = {}

    def target():
        try:
            run()
        except BaseException as e:
            outcome['error'] = e
    worker = threading.Thread(target=target, name='gorelstorage-convert', daemon=True)
    worker.start()
    tty = sys.stderr.isatty()
    try:
        total = source.getSize() if tty else 0
    except Exception:
        total = 0
    started = time.monotonic()
    while worker.is_alive():
        worker.join(0.5)
        if tty and worker.is_alive():
            sys.stderr.write('\r\x1b[K' + _progress_line(copier, time.monotonic() - started, total))
            sys.stderr.flush()
    if tty:
        sys.stderr.write('\r\x1b[K')
    if 'error' in outcome:
        raise outcome['error']


def _progress_line(c, elapsed, total):
    moved = c.bytes + c.blob_bytes
    line = '%s transactions, %s records, %s' % ('{:,}'.format(c.transactions), '{:,}'.format(c.records),
                                                _megabytes(moved))
    if elapsed > 0 and c.transactions:
        rate = moved / elapsed
        line += ', %s/s, %s transactions/s' % (_megabytes(rate), '{:,.0f}'.format(c.transactions / elapsed))
        if total > moved and rate > 0:  # the source's size: its records and their overhead, about
            line += ', about %s left' % _duration((total - moved) / rate)
    return line


def _megabytes(n):
    return '%.1f MB' % (n / 1e6)


def _summary(what, c, elapsed, timed=True):
    line = '%s %s transactions, %s records, %s of records' % (
        what, '{:,}'.format(c.transactions), '{:,}'.format(c.records), _megabytes(c.bytes))
    if c.blobs:
        line += ', %s blobs (%s)' % ('{:,}'.format(c.blobs), _megabytes(c.blob_bytes))
    if timed:
        line += ' in %s' % _duration(elapsed) if elapsed >= 1 else ' in %.2f s' % elapsed
        if elapsed > 0:
            line += ' (%s transactions/s, %s/s)' % ('{:,.0f}'.format(c.transactions / elapsed),
                                                   _megabytes((c.bytes + c.blob_bytes) / elapsed))
    return line

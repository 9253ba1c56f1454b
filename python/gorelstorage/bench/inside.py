"""The time a workload spends inside the storage: every call ZODB (or the workload) makes on the
storage and its per-connection instances goes through a proxy that adds its duration to the
calling thread's account.

This measures the storage's share of a workload directly. The workload's time minus ZODB
alone's (MappingStorage's) estimates the same share, but as the difference of two times measured
apart, each mostly ZODB's own work (pickling, the Connection's cache): when the storage's share is
a tenth of the whole, the machine's noise is larger than it. The proxy costs every contender the
same (a Python call and two clock reads per storage call), and MappingStorage is measured through it
too."""
import threading
import time

_clock = time.perf_counter
_account = threading.local()


def reset():
    """Start this thread's account at zero."""
    _account.seconds = 0.0


def seconds():
    """What this thread spent inside storages since its last reset()."""
    return getattr(_account, 'seconds', 0.0)


class TimedStorage(object):
    """A storage (or an IMVCCStorage instance) whose every method call is timed into the calling
    thread's account; everything else passes through. It provides what the storage provides, so
    ZODB.DB treats it as it would the storage; ``new_instance`` returns a TimedStorage too."""

    def __init__(self, inner):
        from zope.interface import directlyProvides
        from zope.interface import providedBy
        self.__dict__['_timed_inner'] = inner
        directlyProvides(self, providedBy(inner))

    def __getattr__(self, name):
        value = getattr(self._timed_inner, name)
        if not callable(value) or isinstance(value, type) or name.startswith('__'):
            return value
        wrap = name == 'new_instance'

        def timed(*args, **kwargs):
            start = _clock()
            try:
                result = value(*args, **kwargs)
            finally:
                _account.seconds = getattr(_account, 'seconds', 0.0) + (_clock() - start)
            return TimedStorage(result) if wrap else result
        timed.__name__ = name
        self.__dict__[name] = timed  # the next call finds it without __getattr__
        return timed

    def __setattr__(self, name, value):
        if name.startswith('__'):  # zope.interface's declarations are the proxy's own
            object.__setattr__(self, name, value)
        else:
            setattr(self._timed_inner, name, value)

    def __len__(self):
        return len(self._timed_inner)

    def __repr__(self):
        return 'TimedStorage(%r)' % (self._timed_inner,)

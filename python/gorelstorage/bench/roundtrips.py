"""Round trips per operation, counted by a loopback proxy in front of the database server."""
import threading
from ..zodburi import mysql_params
from .contenders import open_storage
from .workloads import populate
from .workloads import run_client


class RoundTripProxy:
    """A loopback TCP proxy to a database server that counts round trips: on each connection,
    a message from the client after a reply from the server (or the first) is one."""

    def __init__(self, host, port):
        import socket
        self._target = (host, port)
        self._server = socket.create_server(('127.0.0.1', 0))
        self.port = self._server.getsockname()[1]
        self.count = 0
        self._lock = threading.Lock()
        self._sockets = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for c in (client, upstream):
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            state = {'replied': True}
            threading.Thread(target=self._pipe, args=(client, upstream, state, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, state, False), daemon=True).start()

    def _pipe(self, src, dst, state, from_client):
        import socket
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if from_client and state['replied']:
                        self.count += 1
                    state['replied'] = not from_client
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for c in (src, dst):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        for c in self._sockets:
            c.close()


def _server_address(database, location):
    """(host, port) of a database server given as the bench takes it, or None (SQLite, Unix sockets)."""
    if database == 'sqlite':
        return None
    if database == 'postgresql':
        if '://' in location:
            from urllib.parse import urlsplit
            parts = urlsplit(location)
            host, port = parts.hostname or '', parts.port or 5432
        else:
            words = dict(w.split('=', 1) for w in location.split() if '=' in w)
            host, port = words.get('host', ''), int(words.get('port', 5432))
    else:
        p = mysql_params(location)
        host, port = p['host'] or '', p['port']
    if not host or host.startswith('/'):
        return None
    return host, port


def _through_proxy(database, location, port):
    """The location with the server's address replaced by the proxy's."""
    if database == 'postgresql' and '://' not in location:
        return location + ' host=127.0.0.1 port=%d' % port  # libpq and pgx: the last value wins
    from urllib.parse import urlsplit
    parts = urlsplit(location)
    netloc = parts.netloc.rsplit('@', 1)
    netloc = (netloc[0] + '@' if len(netloc) == 2 else '') + '127.0.0.1:%d' % port
    return parts._replace(netloc=netloc).geturl()


def count_round_trips(spec, n, size, reps=2):
    """{workload: round trips per object (per call for the last four)} for one client of the
    contender in spec, counted by a proxy in front of the server; None without a network server."""
    import ZODB
    target = _server_address(spec['database'], spec['location'])
    if target is None:
        return None
    proxy = RoundTripProxy(*target)
    try:
        spec = dict(spec, location=_through_proxy(spec['database'], spec['location'], proxy.port))
        populate(spec, 1)
        db = ZODB.DB(open_storage(spec))
        marks = []

        def mark(w):  # a workload's first mark starts it (cold reads mark it again per read)
            if not marks or marks[-1][0] != w:
                marks.append((w, proxy.count))
        try:
            run_client(db, 0, n, size, reps, mark)
        finally:
            db.close()
    finally:
        proxy.close()
    return {w: (end - start) / float(reps * n) for (w, start), (_, end) in zip(marks[::2], marks[1::2])}

"""RelStorage 4.3.0 does not run on MariaDB 10.5+ as released; the interop
tests and ``gorelstorage bench`` correct the three things that stop it, as a
MariaDB site running RelStorage would have to:

1. Its version check takes MariaDB 10.x for MySQL >= 8.0.19 and writes
   upserts with a row alias (``VALUES (...) AS excluded``), which MariaDB
   does not parse: every commit fails.
2. For the same reason it takes shared locks with ``FOR SHARE NOWAIT``
   (MySQL 8 syntax); MariaDB has ``LOCK IN SHARE MODE [NOWAIT]``. Without
   NOWAIT, RelStorage falls back to ``LOCK IN SHARE MODE`` with a one-second
   lock wait timeout, as it does on MySQL 5.7.
3. Its history-preserving ``object_state`` declares
   ``tid BIGINT REFERENCES "transaction"`` inline. MySQL ignores inline
   references; MariaDB 10.5+ creates the foreign key and refuses it because
   ``transaction.tid`` is BIGINT UNSIGNED ("Foreign key constraint is
   incorrectly formed"): the schema cannot be created. The correction drops
   the inline reference, which gives the schema RelStorage has on MySQL.
"""
_applied = False


def apply():
    """Correct RelStorage's MySQL adapter, and only it (other adapters share
    the generic script runner)."""
    global _applied
    if _applied:
        return
    _applied = True
    from relstorage.adapters.mysql import adapter
    from relstorage.adapters.mysql import schema

    schema.MySQLVersionDetector.requires_values_upsert_alias = lambda self, cursor: False
    schema.MySQLVersionDetector.supports_nowait = lambda self, cursor: False

    class MariaDBScriptRunner(adapter.ScriptRunner):
        def run_script_stmt(self, cursor, generic_stmt, generic_params=()):
            generic_stmt = generic_stmt.replace('\nREFERENCES "transaction"', '')
            return super().run_script_stmt(cursor, generic_stmt, generic_params)
    adapter.ScriptRunner = MariaDBScriptRunner

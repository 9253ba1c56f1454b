"""The ``gorelstorage`` command line: what a user types and reads."""
import argparse
import re
import subprocess
import sys

import pytest

from gorelstorage import cli


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, '-m', 'gorelstorage.cli', *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize('option', ['--objects', '--transactions'])
@pytest.mark.parametrize('value', ['0', '-3', 'many'])
def test_demo_refuses_counts_below_one(option, value):
    out = _run('demo', option, value)
    assert out.returncode == 2
    assert 'argument %s:' % option in out.stderr
    assert ('must be at least 1' if value != 'many' else 'is not a whole number') in out.stderr


def test_demo_prints_the_transactions_it_made_and_explains_the_object_count(tmp_path):
    out = _run('demo', '--objects', '5', '--transactions', '10', '--data-dir', str(tmp_path / 'data'))
    assert out.returncode == 0, out.stderr
    assert 'wrote 5 objects in 5 transactions' in out.stdout
    assert '10 transactions asked for, but there are only 5 objects' in out.stdout
    count = re.search(r'database: (\d+) objects \(the 5 written, the root, and (\d+) others', out.stdout)
    assert count and int(count.group(1)) == 5 + 1 + int(count.group(2)), out.stdout

    out = _run('demo', '--objects', '30', '--transactions', '4', '--data-dir', str(tmp_path / 'data2'),
               '--history-free')
    assert out.returncode == 0, out.stderr
    assert 'wrote 30 objects in 4 transactions' in out.stdout and 'asked for' not in out.stdout


def test_errors_are_one_line_without_the_password_and_debug_shows_the_traceback():
    dsn = 'host=127.0.0.1 port=1 user=someone password=s3cret-pw dbname=nothing connect_timeout=5'
    out = _run('demo', '--postgresql', dsn)
    assert out.returncode == 1
    assert out.stderr.startswith('gorelstorage demo: error: ') and out.stderr.count('\n') == 1
    assert '127.0.0.1' in out.stderr and 'Traceback' not in out.stderr and 's3cret-pw' not in out.stderr
    out = _run('demo', '--postgresql', dsn, '--debug')
    assert out.returncode == 1 and 'Traceback' in out.stderr and 's3cret-pw' not in out.stderr

    out = _run('pack', '/nonexistent/zodb.conf')
    assert out.returncode == 1 and '/nonexistent/zodb.conf' in out.stderr and 'Traceback' not in out.stderr


def test_every_option_of_every_command_has_help_text():
    parser = argparse.ArgumentParser()
    seen = {}
    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        seen['parser'] = self
        raise SystemExit(0)
    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            cli.main(['demo'])
    finally:
        argparse.ArgumentParser.parse_args = original
    parser = seen['parser']
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) >= {'demo', 'bench', 'pack', 'convert'}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, '%s %s has no help text' % (name, action.option_strings or action.dest)

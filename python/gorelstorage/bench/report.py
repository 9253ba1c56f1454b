"""The report: statistics, the Markdown tables, the overview and the chart."""
import math
import os
import platform
import statistics
from .contenders import CONTENDERS
from .contenders import ZEO
from .shootout import GOAL
from .shootout import GOALED
from .workloads import WORKLOADS


def _stats(samples):
    s = sorted(samples)
    p99 = s[min(len(s) - 1, max(0, math.ceil(0.99 * len(s)) - 1))]
    return {'median': statistics.median(s), 'p99': p99, 'samples': len(s)}


def machine():
    cores = os.cpu_count()
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return {'cpu': model, 'cores': cores, 'python': platform.python_version(), 'system': platform.platform(),
            'zodb': _version('ZODB'), 'relstorage': _version('relstorage'), 'gorelstorage': _version('gorelstorage')}


def _version(dist):
    from importlib.metadata import version
    try:
        return version(dist)
    except Exception:
        return ''


def _progress(rows):
    r = rows[0]
    head = '%s %s, %d objects, %d client(s) as %s:' % (r['database'], r['mode'], r['objects'], r['clients'],
                                                         r['kind'])
    return head + ' ' + ', '.join('%s %.2fx (storage %s)' % (x['workload'], x['ratio'], _sr(x)) for x in rows)


def _sr(row):
    """The row's storage ratio, '!' after it when the goal holds it and it misses."""
    sr = row.get('storage_ratio')
    if sr is None:
        return '-'
    return '%.2f%s' % (sr, '!' if row['workload'] in GOALED and sr > GOAL[row['database']] else '')


def _has_storage_ratios(report):
    """Whether the run measured the time inside the storage (runs before it did not)."""
    return any(r.get('storage_ratio') is not None for r in report['results'])


def _geomeans(rows):
    by = {}
    for r in rows:
        by.setdefault(r['database'], []).append(r['ratio'])
    out = {db: math.exp(sum(math.log(x) for x in v) / len(v)) for db, v in by.items()}
    allr = [r['ratio'] for r in rows]
    out['all'] = math.exp(sum(math.log(x) for x in allr) / len(allr))
    return out


def markdown(report):
    """The results as a Markdown table: one row per workload x configuration."""
    lines = ['| database | mode | objects | clients | workload | GoRelStorage us (median / p99) '
             '| RelStorage us (median / p99) | ratio | inside the storage us Go / RS | storage ratio '
             '| ZEO us (median / p99) | ZODB alone us | round trips Go / RS |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        g, s = r['gorelstorage'], r['relstorage']
        z = r.get(ZEO)
        lines.append('| %s | %s | %d | %d %s | %s | %.1f / %.1f | %.1f / %.1f | %.2f | %s | %s | %s | %.1f | %s |' % (
            r['database'], r['mode'], r['objects'], r['clients'], r['kind'], r['workload'],
            g['median'], g['p99'], s['median'], s['p99'], r['ratio'], _inside(r), _sr(r),
            '%.1f / %.1f' % (z['median'], z['p99']) if z else '-', r['zodb'], _trips(r)))
    lines.append('')
    lines.append('Geometric mean of the ratios: ' + ', '.join(
        '%s %.2f' % (k, v) for k, v in sorted(report['geomean'].items())))
    for f in report['failures']:
        lines.append('Not measured: %(database)s %(mode)s, %(objects)d objects, %(clients)d %(kind)s: %(error)s' % f)
    for key, f in sorted(report['floor'].items()):
        lines.append('Floor (%s, Go driver alone): %.1f us per primary-key read, %.2f us per object batched.'
                     % (key, f['single'], f['batched']))
    return '\n'.join(lines)


def _inside(row):
    i = row.get('inside')
    if not i:
        return '-'
    return '%.1f / %.1f' % (i['gorelstorage'], i['relstorage'])


def _spread(report, key='ratio'):
    """Per database, sorted: its number of configurations, and per workload the ratios
    GoRelStorage / RelStorage over them (key: 'ratio' of the times, 'storage_ratio' of the
    times inside the storage), sorted."""
    out = []
    for d in sorted({r['database'] for r in report['results']}):
        rows = [r for r in report['results'] if r['database'] == d]
        configs = len({(r['mode'], r['objects'], r['clients'], r['kind']) for r in rows})
        out.append((d, configs, {w: sorted(r[key] for r in rows if r['workload'] == w and r.get(key) is not None)
                                 for w in WORKLOADS}))
    return out


def overview(report):
    """Markdown tables for the whole run: per workload and database, the median of the ratios
    over its configurations and their range; then the same of the storage ratios, with the
    configurations that miss the goal."""
    out = _overview(report, 'ratio', 'median ratio (range)')
    if _has_storage_ratios(report):
        out += [''] + _overview(report, 'storage_ratio', 'median storage ratio (range) misses')
    return '\n'.join(out)


def _overview(report, key, head):
    spread = _spread(report, key)
    out = ['| workload | ' + ' | '.join('%s: %s' % (d, head) for d, _, _ in spread) + ' |',
           '|---|' + '---|' * len(spread)]
    for w in WORKLOADS:
        cells = []
        for d, _, ratios in spread:
            v = ratios[w]
            if not v:
                cells.append('-')
                continue
            cell = '%.2f (%.2f-%.2f)' % (statistics.median(v), v[0], v[-1])
            if key == 'storage_ratio' and w in GOALED:
                cell += ' %d' % sum(x > GOAL[d] for x in v)
            cells.append(cell)
        out.append('| %s | %s |' % (w, ' | '.join(cells)))
    out.append('')
    if key == 'ratio':
        out.append('Configurations per database: ' + ', '.join('%s %d' % (d, configs) for d, configs, _ in spread)
                   + '; geometric mean of all ratios %.2f.' % report['geomean']['all'])
    else:
        out.append('Storage ratio: time inside the storage, GoRelStorage / RelStorage; the goal 0.7 on SQLite, '
                   '0.5 on the servers, for %s; the number after the range: configurations over it.'
                   % ', '.join(GOALED))
    return out


def _trips(row):
    t = row['round_trips']
    if t['gorelstorage'] is None:
        return 'n/a' if row['database'] == 'sqlite' else '?'
    return '%s / %s' % tuple('%.2g' % t[c] if t[c] is not None else '?' for c in CONTENDERS)


def summary(report):
    """A compact Markdown table per database: one row per workload, the ratio GoRelStorage /
    RelStorage (medians) per configuration, and the microseconds of the first configuration."""
    out = []
    for database in sorted({r['database'] for r in report['results']}):
        rows = [r for r in report['results'] if r['database'] == database]
        configs = []
        for r in rows:
            c = (r['mode'], r['objects'], r['clients'], r['kind'])
            if c not in configs:
                configs.append(c)
        label = lambda c: '%s %d×%d%s' % (c[0], c[1], c[2], c[3][0])  # noqa: E731
        first = configs[0]
        out.append('**%s** (per configuration: ratio GoRelStorage / RelStorage of the median times, and '
                   'in brackets the storage ratio, of the times inside the storage, `!` over the goal of %.1f; '
                   'columns: mode, objects x clients, t = threads, p = processes; us per object in %s)'
                   % (database, GOAL[database], label(first)))
        out.append('')
        out.append('| workload | Go us | RS us | inside Go / RS us | ZEO us | ZODB alone us | round trips Go / RS | '
                   + ' | '.join(label(c) for c in configs) + ' |')
        out.append('|---|---|---|---|---|---|---|' + '---|' * len(configs))
        for w in WORKLOADS:
            by = {(r['mode'], r['objects'], r['clients'], r['kind']): r for r in rows if r['workload'] == w}
            f = by[first]
            cells = ['%.2f (%s)' % (by[c]['ratio'], _sr(by[c])) for c in configs]
            out.append('| %s | %.1f | %.1f | %s | %s | %.1f | %s | %s |' % (
                w, f['gorelstorage']['median'], f['relstorage']['median'], _inside(f),
                '%.1f' % f[ZEO]['median'] if f.get(ZEO) else '-', f['zodb'], _trips(f), ' | '.join(cells)))
        out.append('')
        out.append('Geometric mean of the ratios: %.2f.' % report['geomean'][database])
        out.append('')
    return '\n'.join(out)


def chart(report, path):
    """One panel per database: per workload, the median of the storage ratios over its
    configurations (bar) and their range (line), on a log scale; 1 (parity) and the goal marked.
    Workloads the storage is not called in (hot, steamin) have no bar."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    key = 'storage_ratio' if _has_storage_ratios(report) else 'ratio'
    spread = _spread(report, key)
    fig, axes = plt.subplots(len(spread), 1, figsize=(11, 3.2 * len(spread)), squeeze=False)
    for ax, (database, configs, ratios) in zip(axes[:, 0], spread):
        mids, lows, highs, colors = [], [], [], []
        for w in WORKLOADS:
            v = ratios[w]
            mid = statistics.median(v) if v else float('nan')
            mids.append(mid)
            lows.append(mid - v[0] if v else 0)
            highs.append(v[-1] - mid if v else 0)
            colors.append('tab:red' if mid > 1 else
                          ('tab:orange' if w in GOALED and mid > GOAL[database] else 'tab:green'))
        ax.bar(range(len(WORKLOADS)), mids, color=colors, yerr=[lows, highs], capsize=3)
        ax.axhline(1.0, color='black', linewidth=0.8)
        ax.axhline(GOAL[database], color='red', linewidth=0.8, linestyle='--')
        ax.set_yscale('log')
        ax.set_xticks(range(len(WORKLOADS)))
        ax.set_xticklabels(WORKLOADS, rotation=30, ha='right')
        ax.set_title('%s: GoRelStorage / RelStorage %s, median and range over %d configurations '
                     '(lower is better; dashed: the goal, %.1f)' % (
                         database, 'time inside the storage' if key == 'storage_ratio' else 'time', configs,
                         GOAL[database]), fontsize=10)
    fig.suptitle('GoRelStorage %s vs RelStorage %s, %d-byte objects' % (
        report['machine'].get('gorelstorage'), report['machine'].get('relstorage'), report['settings']['size']),
        fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)

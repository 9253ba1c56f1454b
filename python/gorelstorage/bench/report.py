"""The report: statistics, the Markdown tables, the overview and the chart."""
import math
import os
import platform
import statistics
from .contenders import CONTENDERS
from .contenders import ZEO
from .workloads import HALF_BAR
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
    return head + ' ' + ', '.join('%s %.2fx' % (x['workload'], x['ratio']) for x in rows)


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
             '| RelStorage us (median / p99) | ratio | ZEO us (median / p99) | ZODB alone us | round trips Go / RS |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        g, s = r['gorelstorage'], r['relstorage']
        bar = ' **(bar 0.5)**' if r['workload'] in HALF_BAR and r['ratio'] > 0.5 else ''
        z = r.get(ZEO)
        lines.append('| %s | %s | %d | %d %s | %s | %.1f / %.1f | %.1f / %.1f | %.2f%s | %s | %.1f | %s |' % (
            r['database'], r['mode'], r['objects'], r['clients'], r['kind'], r['workload'],
            g['median'], g['p99'], s['median'], s['p99'], r['ratio'], bar,
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


def _spread(report):
    """Per database, sorted: its number of configurations, and per workload the ratios
    GoRelStorage / RelStorage over them, sorted."""
    out = []
    for d in sorted({r['database'] for r in report['results']}):
        rows = [r for r in report['results'] if r['database'] == d]
        configs = len({(r['mode'], r['objects'], r['clients'], r['kind']) for r in rows})
        out.append((d, configs, {w: sorted(r['ratio'] for r in rows if r['workload'] == w) for w in WORKLOADS}))
    return out


def overview(report):
    """One Markdown table for the whole run: per workload and database, the median of the ratios
    over its configurations and their range."""
    spread = _spread(report)
    out = ['| workload | ' + ' | '.join('%s: median ratio (range)' % d for d, _, _ in spread) + ' |',
           '|---|' + '---|' * len(spread)]
    for w in WORKLOADS:
        cells = ['%.2f (%.2f-%.2f)' % (statistics.median(ratios[w]), ratios[w][0], ratios[w][-1])
                 for _, _, ratios in spread]
        out.append('| %s | %s |' % (w, ' | '.join(cells)))
    out.append('')
    out.append('Configurations per database: ' + ', '.join('%s %d' % (d, configs) for d, configs, _ in spread)
               + '; geometric mean of all ratios %.2f.' % report['geomean']['all'])
    return '\n'.join(out)


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
        out.append('**%s** (ratio GoRelStorage / RelStorage, median time; columns: mode, objects x clients, '
                   't = threads, p = processes; us per object in %s)' % (database, label(first)))
        out.append('')
        out.append('| workload | Go us | RS us | ZEO us | ZODB alone us | round trips Go / RS | '
                   + ' | '.join(label(c) for c in configs) + ' |')
        out.append('|---|---|---|---|---|---|' + '---|' * len(configs))
        for w in WORKLOADS:
            by = {(r['mode'], r['objects'], r['clients'], r['kind']): r for r in rows if r['workload'] == w}
            f = by[first]
            cells = ['%.2f%s' % (by[c]['ratio'], '!' if w in HALF_BAR and by[c]['ratio'] > 0.5 else '')
                     for c in configs]
            out.append('| %s | %.1f | %.1f | %s | %.1f | %s | %s |' % (
                w, f['gorelstorage']['median'], f['relstorage']['median'],
                '%.1f' % f[ZEO]['median'] if f.get(ZEO) else '-', f['zodb'], _trips(f), ' | '.join(cells)))
        out.append('')
        out.append('Geometric mean of the ratios: %.2f.' % report['geomean'][database])
        out.append('')
    return '\n'.join(out)


def chart(report, path):
    """One panel per database: per workload, the median of the ratios over its configurations
    (bar) and their range (line), on a log scale; 1 (parity) and 0.5 (the bar) marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    spread = _spread(report)
    fig, axes = plt.subplots(len(spread), 1, figsize=(11, 3.2 * len(spread)), squeeze=False)
    for ax, (database, configs, ratios) in zip(axes[:, 0], spread):
        mids, lows, highs = [], [], []
        for w in WORKLOADS:
            mid = statistics.median(ratios[w])
            mids.append(mid)
            lows.append(mid - ratios[w][0])
            highs.append(ratios[w][-1] - mid)
        colors = ['tab:red' if m > 1 else ('tab:orange' if w in HALF_BAR and m > 0.5 else 'tab:green')
                  for w, m in zip(WORKLOADS, mids)]
        ax.bar(range(len(WORKLOADS)), mids, color=colors, yerr=[lows, highs], capsize=3)
        ax.axhline(1.0, color='black', linewidth=0.8)
        ax.axhline(0.5, color='red', linewidth=0.8, linestyle='--')
        ax.set_yscale('log')
        ax.set_xticks(range(len(WORKLOADS)))
        ax.set_xticklabels(WORKLOADS, rotation=30, ha='right')
        ax.set_title('%s: GoRelStorage / RelStorage time, median and range over %d configurations '
                     '(lower is better)' % (database, configs), fontsize=10)
    fig.suptitle('GoRelStorage %s vs RelStorage %s, %d-byte objects; dashed: 0.5' % (
        report['machine'].get('gorelstorage'), report['machine'].get('relstorage'), report['settings']['size']),
        fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)

#!/usr/bin/env python3
"""Helpers and the report for benches/load/run.sh (python3, stdlib only).

  report.py port BASE                 first port >= BASE free on 127.0.0.1
  report.py wait PORT SECS PID        poll GET /index.html until it answers 200
                                      (fails at once if PID exits)
  report.py cpu PID                   CPU seconds (user+sys) of PID and its descendants
  report.py rss PID                   KiB of VmRSS of PID and its descendants
  report.py tree PID                  PID and its descendants, space-separated
  report.py wrk SERVER WORKLOAD CONNS LOG CPU0 CPU1
                                      one results.jsonl row from a wrk log and the
                                      server's CPU seconds before/after the run
  report.py meta OUTDIR KEY=VALUE...  write OUTDIR/meta.json (adds date, nproc, load)
  report.py report OUTDIR             OUTDIR/results.jsonl -> results.md (printed) + chart.svg
  report.py say < ROW                 one progress line for a results.jsonl row
  report.py verdict RESULTS SERVER    exit 1 (and say why) if SERVER had errors or non-2xx
"""
import http.client
import json
import math
import os
import platform
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"  # the only address this benchmark binds or targets
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes
def _stat_fields(pid):
    """Fields of /proc/PID/stat after the `(comm)` field (comm may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree(pid):
    """PID plus all its descendants (nginx: master + worker), by scanning ppids."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(_stat_fields(d)[1])
            except (OSError, IndexError, ValueError):
                continue  # exited while we looked
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [int(pid)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    """utime+stime summed over the process tree.

    /proc/P/stat of a process already totals all of its threads, including
    threads that have exited (/proc/P/task/*/stat would miss those), so one
    read per process covers a thread pool; descendants cover nginx's worker."""
    ticks = 0
    for p in tree(pid):
        try:
            f = _stat_fields(p)
            ticks += int(f[11]) + int(f[12])  # fields 14 and 15 of stat(5)
        except (OSError, IndexError, ValueError):
            pass
    return ticks / CLK_TCK


def alive(pid):
    """Running and not a zombie (a dead child stays in /proc until it is reaped)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- HTTP probes
def get_status(port, path="/index.html", timeout=1.0):
    """Status of one GET on a fresh connection (raises OSError when refused); over HTTPS when TLS=1."""
    if os.environ.get("TLS") == "1":
        # The benchmark's own throwaway certificate: nothing to verify it against.
        unverified = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection(HOST, int(port), timeout=timeout, context=unverified)
    else:
        conn = http.client.HTTPConnection(HOST, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def free_port(base):
    """A port nobody listens on, so we never benchmark someone else's server.
    SO_REUSEADDR lets TIME_WAIT leftovers pass, as the servers themselves do."""
    for port in range(int(base), int(base) + 500):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit(f"no free port in {base}..{int(base) + 499}")


def wait_up(port, secs, pid):
    deadline, last = time.monotonic() + float(secs), "no answer"
    while time.monotonic() < deadline:
        if not alive(pid):
            print(f"port {port}: the server exited", file=sys.stderr)
            return 1
        try:
            status = get_status(port)
            if status == 200:
                return 0
            last = f"status {status}"
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
        time.sleep(0.05)
    print(f"port {port}: {last}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------- wrk rows
def wrk_row(server, workload, conns, log, cpu0, cpu1):
    """One results.jsonl row from the WRKJSON line wrk_report.lua printed."""
    row = {"server": server, "workload": workload, "connections": int(conns)}
    w = None
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("WRKJSON "):
                w = json.loads(line[len("WRKJSON "):])
    if w is None:  # wrk died or could not start: count it as a failed run
        row.update(error="wrk printed no result (see " + log + ")", errors=1, non2xx=0)
        return row
    secs = w["duration_us"] / 1e6 or 1e-9
    cpu = float(cpu1) - float(cpu0)
    kinds = ("connect", "read", "write", "status", "timeout")
    row.update(
        duration_s=round(secs, 2),
        requests=w["requests"],
        req_per_s=round(w["requests"] / secs, 1),
        p50_ms=w["p50_us"] / 1000,
        p99_ms=w["p99_us"] / 1000,
        mb_per_s=round(w["bytes"] / secs / 1e6, 1),
        errors=sum(w["err_" + k] for k in kinds),
        non2xx=w["err_status"],  # wrk's "status" errors are non-2xx/3xx answers
        error_detail={k: w["err_" + k] for k in kinds if w["err_" + k]},
        server_cpu_s=round(cpu, 3),
        server_cpu_us_per_req=round(cpu / w["requests"] * 1e6, 2) if w["requests"] else None,
    )
    if workload == "large" and w["bytes"]:
        row["server_cpu_s_per_gb"] = round(cpu / (w["bytes"] / 1e9), 3)
    return row


# ---------------------------------------------------------------- report
def load_rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def servers_of(rows):
    """Servers in the order they were measured."""
    seen = []
    for r in rows:
        if r["server"] not in seen:
            seen.append(r["server"])
    return seen


def row_keys(rows):
    """(workload, connections) table rows: keep-alive by connections, then the rest."""
    order = {"keepalive": 0, "close": 1, "large": 2, "idle": 3}
    keys = {(r["workload"], r["connections"]) for r in rows}
    return sorted(keys, key=lambda k: (order.get(k[0], 9), k[0], k[1]))


def num(v, digits=0):
    return "-" if v is None else f"{v:,.{digits}f}"


def ms(v):
    """Latency with ~3 significant digits: 0.0412, 1.23, 123."""
    if v is None:
        return "-"
    return f"{v:.3g}" if v < 100 else f"{v:,.0f}"


def cells(r):
    """The (req/s, p99) pair of one server's result, adapted to its workload."""
    if r is None:
        return "-", "-"
    if "error" in r:
        return "failed", "-"
    bad = f" (**{r['errors']} err**)" if r.get("errors") else ""
    if r["workload"] == "idle":
        fresh = f"fresh {ms(r.get('fresh_ms'))} ms" if r.get("fresh_ok") else "fresh FAILED"
        return f"{num(r.get('kib_per_idle_conn'), 1)} KiB/conn{bad}", fresh
    if r["workload"] == "large":
        return f"{num(r['mb_per_s'])} MB/s{bad}", ms(r["p99_ms"])
    return num(r["req_per_s"]) + bad, ms(r["p99_ms"])


def cpu_cell(r):
    if r is None or "error" in r:
        return "-"
    if r["workload"] == "idle":
        return f"{r.get('open_after_hold', 0):,}/{r['connections']:,} open"
    s = num(r.get("server_cpu_us_per_req"), 1)
    if r["workload"] == "large" and r.get("server_cpu_s_per_gb") is not None:
        s += f" ({r['server_cpu_s_per_gb']:.2f} s/GB)"
    return s


def markdown(rows, meta):
    servers = servers_of(rows)
    by = {(r["server"], r["workload"], r["connections"]): r for r in rows}
    out = [f"# http-server load benchmark, {meta.get('date', '?')}", ""]
    out += [f"- **{k}**: {v}" for k, v in meta.items() if k != "date"]
    out += ["", "req/s and p99 latency (ms) per server; `large` is MB/s (10^6 B/s) of a 10 MiB "
            "file; `idle` is the server's RSS growth per idle keep-alive connection and the "
            "time of a fresh request while they are held.", ""]
    head = "| workload | conns | " + " | ".join(f"{s} req/s | {s} p99" for s in servers) + " |"
    out += [head, "|---|---:|" + "---:|---:|" * len(servers)]
    for wl, c in row_keys(rows):
        pairs = [cells(by.get((s, wl, c))) for s in servers]
        out.append(f"| {wl} | {c:,} | " + " | ".join(f"{a} | {b}" for a, b in pairs) + " |")
    out += ["", "Server CPU per request (µs, user+sys of all its processes and threads; "
            "`large` also CPU s per GB sent; `idle` connections still open after the hold):", ""]
    out += ["| workload | conns | " + " | ".join(servers) + " |",
            "|---|---:|" + "---:|" * len(servers)]
    for wl, c in row_keys(rows):
        out.append(f"| {wl} | {c:,} | " + " | ".join(cpu_cell(by.get((s, wl, c))) for s in servers) + " |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- SVG chart
COLOURS = {"ours": "#d62728", "nginx": "#2ca02c", "lighttpd": "#1f77b4", "h2o": "#ff7f0e"}
SPARE = ["#9467bd", "#8c564b", "#e377c2", "#17becf"]
W, H = 1100, 500
PANEL_W, PANEL_H = 430, 330          # plot area of one panel
PANEL_X = (90, 630)                  # left edge of each plot area
PANEL_Y = 110                        # top edge of both plot areas


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_step(span, n=5):
    """A 1/2/5 x 10^k step that cuts span into about n intervals."""
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def si(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def panel(svg, x0, title, ylabel, xs, series, ylog):
    """Draw one panel: axes, grid, ticks, one line per server.
    series: {server: [(conns, value)]}; x is always log10(connections)."""
    lx = [math.log10(x) for x in xs]
    xmin, xmax = min(lx), max(lx)
    if xmax == xmin:
        xmin, xmax = xmin - 0.5, xmax + 0.5
    vals = [v for pts in series.values() for _, v in pts if v is not None and v > 0]
    if not vals:
        vals = [1.0]
    if ylog:
        lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
        hi = hi if hi > lo else lo + 1
        yticks = [10.0 ** e for e in range(lo, hi + 1)]
        fy = lambda v: (math.log10(max(v, 10.0 ** lo)) - lo) / (hi - lo)
    else:
        step = nice_step(max(vals) * 1.05)
        top = step * math.ceil(max(vals) * 1.05 / step)
        yticks = [step * i for i in range(int(round(top / step)) + 1)]
        fy = lambda v: v / top
    px = lambda x: x0 + (math.log10(x) - xmin) / (xmax - xmin) * PANEL_W
    py = lambda v: PANEL_Y + PANEL_H - fy(v) * PANEL_H
    bottom = PANEL_Y + PANEL_H
    svg.append(f'<text x="{x0 + PANEL_W / 2}" y="{PANEL_Y - 12}" text-anchor="middle" '
               f'font-size="15" font-weight="bold">{esc(title)}</text>')
    svg.append(f'<rect x="{x0}" y="{PANEL_Y}" width="{PANEL_W}" height="{PANEL_H}" '
               'fill="#fafafa" stroke="#888"/>')
    for t in yticks:
        y = py(t)
        svg.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{t:g}" if ylog else si(t)
        svg.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12">{label}</text>')
    for x in xs:
        X = px(x)
        svg.append(f'<line x1="{X:.1f}" y1="{PANEL_Y}" x2="{X:.1f}" y2="{bottom}" stroke="#ddd"/>')
        svg.append(f'<text x="{X:.1f}" y="{bottom + 18}" text-anchor="middle" font-size="12">{x:,}</text>')
    svg.append(f'<text x="{x0 + PANEL_W / 2}" y="{bottom + 40}" text-anchor="middle" '
               'font-size="13">connections (log scale)</text>')
    ymid = PANEL_Y + PANEL_H / 2
    svg.append(f'<text x="{x0 - 62}" y="{ymid}" text-anchor="middle" font-size="13" '
               f'transform="rotate(-90 {x0 - 62} {ymid})">{esc(ylabel)}</text>')
    for name, pts in series.items():
        pts = [(x, v) for x, v in pts if v is not None and (v > 0 or not ylog)]
        if not pts:
            continue
        col = colour(name)
        path = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in pts)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{col}" stroke-width="2.5"/>')
        for x, v in pts:
            svg.append(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="4" fill="{col}"/>')


_spare = {}


def colour(name):
    if name in COLOURS:
        return COLOURS[name]
    return _spare.setdefault(name, SPARE[len(_spare) % len(SPARE)])


def chart(rows, meta):
    ka = [r for r in rows if r["workload"] == "keepalive" and "error" not in r]
    servers = servers_of(ka)
    xs = sorted({r["connections"] for r in ka}) or [1]
    pick = lambda key: {s: [(r["connections"], r[key]) for r in sorted(ka, key=lambda r: r["connections"])
                            if r["server"] == s] for s in servers}
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold">'
           f'Keep-alive GET /index.html (2 KB), wrk -t1 — {esc(meta.get("date", "?"))}, '
           f'nproc {esc(meta.get("nproc", "?"))}</text>']
    # legend: one entry per server, in a row under the title
    lx = W / 2 - 110 * len(servers) / 2
    for i, s in enumerate(servers):
        x = lx + 110 * i
        svg.append(f'<line x1="{x}" y1="55" x2="{x + 28}" y2="55" stroke="{colour(s)}" stroke-width="3"/>')
        svg.append(f'<circle cx="{x + 14}" cy="55" r="4" fill="{colour(s)}"/>')
        svg.append(f'<text x="{x + 34}" y="60" font-size="14">{esc(s)}</text>')
    panel(svg, PANEL_X[0], "Throughput", "requests / s", xs, pick("req_per_s"), ylog=False)
    panel(svg, PANEL_X[1], "p99 latency", "p99 latency, ms (log scale)", xs, pick("p99_ms"), ylog=True)
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def write_report(outdir):
    rows = load_rows(os.path.join(outdir, "results.jsonl"))
    meta_path = os.path.join(outdir, "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    md = markdown(rows, meta)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(outdir, "chart.svg"), "w") as f:
        f.write(chart(rows, meta))
    print(md)
    return 0


def write_meta(outdir, *pairs):
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "nproc": os.cpu_count(),
            "kernel": platform.release(), "load average at start": load}
    meta.update(p.split("=", 1) for p in pairs)
    with open(os.path.join(outdir, "meta.json"), "w") as f:
        json.dump(meta, f)
    return 0


def detail(r):
    return f" {r['error_detail']}" if r.get("error_detail") else ""


def say(r):
    head = f"  {r['server']} {r['workload']} c{r['connections']}: "
    if "error" in r:
        return head + "FAILED: " + r["error"]
    if r["workload"] == "idle":
        return head + (f"{r['open_after_hold']:,} open, {num(r['kib_per_idle_conn'], 1)} KiB/conn, "
                       f"fresh request {'ok' if r['fresh_ok'] else 'FAILED'} in {r['fresh_ms']} ms, "
                       f"errors {r['errors']}{detail(r)}")
    return head + (f"{num(r['req_per_s'])} req/s, {num(r['mb_per_s'])} MB/s, p99 {ms(r['p99_ms'])} ms, "
                   f"errors {r['errors']}{detail(r)}, "
                   f"server CPU {num(r['server_cpu_us_per_req'], 1)} us/req")


def verdict(results, server):
    """Exit status of the whole run: did `server` answer everything cleanly?"""
    mine = [r for r in load_rows(results) if r["server"] == server]
    if not mine:
        print(f"FAIL: no results for {server}", file=sys.stderr)
        return 1
    bad = [r for r in mine if "error" in r or r.get("errors") or r.get("non2xx")]
    for r in bad:
        print(f"FAIL: {server} {r['workload']} c{r['connections']}: errors {r.get('errors')}, "
              f"non-2xx {r.get('non2xx')} {r.get('error_detail') or r.get('error') or ''}",
              file=sys.stderr)
    if bad:
        print(f"FAIL: {server} had errors or non-2xx answers: exit status 1", file=sys.stderr)
    else:
        print(f"OK: {server} had no errors and no non-2xx answers", file=sys.stderr)
    return 1 if bad else 0


def main(argv):
    cmd, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if cmd == "port":
        print(free_port(*args))
    elif cmd == "wait":
        return wait_up(*args)
    elif cmd == "cpu":
        print(f"{cpu_seconds(*args):.3f}")
    elif cmd == "rss":
        print(rss_kib(*args))
    elif cmd == "tree":
        print(" ".join(map(str, tree(*args))))
    elif cmd == "wrk":
        print(json.dumps(wrk_row(*args)))
    elif cmd == "meta":
        return write_meta(*args)
    elif cmd == "report":
        return write_report(*args)
    elif cmd == "say":
        print(say(json.loads(sys.stdin.readline())))
    elif cmd == "verdict":
        return verdict(*args)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""make bench-api: the production API server (gunicorn, 2 workers) on a fresh PostgreSQL database.

Loads 100 users and 100 rules through the API, then drives it with `wrk` (a separate process)
for 10 s per endpoint: GET /api/v1/users?per_page=100, GET /api/v1/auth/me, GET /healthz at 32
connections and POST /api/v1/auth/login at 2. Prints requests/s, p50 and p99 per endpoint and the
RSS of each gunicorn worker. Standard library only (runs on the system python3).

Environment: BENCH_PEX (default dist/src.python.myapp.api/api.pex, built by `make bench-api`),
TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432), BENCH_DURATION (default 10s),
BENCH_CONNECTIONS (default 32), BENCH_ROUNDS (default 1: rounds over all endpoints, taken in
turn; the median is reported), WEB_CONCURRENCY / GUNICORN_THREADS (server settings).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests/python"))
from api_smoke.served import (  # noqa: E402 - the shared helpers live beside the smoke test
    ServerDidNotStart,
    call,
    stop,
    wait_for_port,
    wait_until_answering,
)

ADMIN_PASSWORD = "bench-admin-" + uuid.uuid4().hex[:12]
USER_PASSWORD = "bench-user-password"  # noqa: S105 - throw-away bench accounts


def psql(server: str, sql: str) -> str:
    parts = urlsplit(server)
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    return subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port or 5432),
            "-U",
            parts.username or "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()


def db_statements(server: str, db_name: str) -> int:
    """Transactions the database has run (autocommit: one per statement), after a stats flush."""
    time.sleep(1.2)  # backends publish their counters at most once a second
    return int(
        psql(
            server,
            # db_name is ours: myapp_bench_<pid>_<hex>
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"  # noqa: S608
            f" WHERE datname = '{db_name}'",
        )
    )


def connections_per_worker(port: int, workers: list[int]) -> list[int]:
    """Established TCP connections to `port` that each worker process holds (from /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    counts = []
    for pid in workers:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts.append(held)
    return counts


def wrk(
    url: str,
    connections: int,
    duration: str,
    headers: dict[str, str],
    lua: str | None = None,
    workers: list[int] | None = None,
):
    """One wrk run; with `workers`, also how many connections each held two seconds in."""
    threads = min(2, connections)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}",
        "--latency",
        "--timeout",
        "10s",
    ]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    if lua:
        cmd += ["-s", lua]
    process = subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, text=True)
    split: list[int] = []
    if workers:
        time.sleep(2)
        split = connections_per_worker(urlsplit(url).port or 80, workers)
    out, _ = process.communicate()
    if process.returncode != 0:
        sys.exit(f"bench-api: wrk failed ({process.returncode}):\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        sys.exit(f"bench-api: unexpected wrk output:\n{out}")
    rps = float(found.group(1))
    lat = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": lat.get("50", "?"),
        "p99": lat.get("99", "?"),
        "requests": int(total.group(1)) if total else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
        "split": "/".join(str(count) for count in split) or "-",
    }


def to_ms(text: str) -> float:
    """wrk's "1.23ms" / "456.00us" / "1.10s" in milliseconds (nan when unparsable)."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if found is None:
        return float("nan")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far (from /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) CPU ticks of the whole machine so far (first line of /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields[:8])  # user nice system idle iowait irq softirq steal


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of the machine's CPU time the hypervisor gave to other guests in between."""
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def calibrate() -> float:
    """Milliseconds for a fixed pure-Python loop: how fast this machine is right now."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def worker_rss(master_pid: int) -> list[tuple[int, float]]:
    out = subprocess.run(
        ["ps", "-o", "pid=,rss=", "--ppid", str(master_pid)], capture_output=True, text=True
    ).stdout
    return [(int(p), int(r) / 1024) for p, r in (line.split() for line in out.splitlines())]


def main() -> int:
    pex = Path(os.environ.get("BENCH_PEX", ROOT / "dist/src.python.myapp.api/api.pex"))
    if not pex.exists():
        sys.exit(
            f"bench-api: {pex} not found; build it with ./pants package src/python/myapp/api:api"
        )
    for tool in ("wrk", "psql"):
        if not shutil.which(tool):
            sys.exit(f"bench-api: '{tool}' not found (scripts/setup.sh installs it)")
    server_url = os.environ.get("TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432"
    duration = os.environ.get("BENCH_DURATION", "10s")
    connections = int(os.environ.get("BENCH_CONNECTIONS", "32"))
    db_name = f"myapp_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="myapp-bench-"))
    psql(server_url, f'CREATE DATABASE "{db_name}"')
    parts = urlsplit(server_url)
    env = {
        **os.environ,
        "APP_ENV": "production",
        "DATABASE_URL": urlunsplit((parts.scheme, parts.netloc, f"/{db_name}", "", "")),
        "DATA_DIR": str(tmp / "data"),
        "JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "BCRYPT_ROUNDS": "12",
        "API_BIND": "127.0.0.1:0",  # the kernel picks a free port; read back from the log
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        "PEX_ROOT": str(Path.home() / ".pex"),
    }
    log_path = tmp / "server.log"
    speed_before = calibrate()
    print(
        f"bench-api: gunicorn ({env['WEB_CONCURRENCY']} workers), PostgreSQL database "
        f"{db_name}; request log (JSON, production) -> {log_path}"
    )
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, str(pex)], env=env, stdout=log, stderr=log)
    try:
        try:
            base = f"http://127.0.0.1:{wait_for_port(server, log_path)}"
            ready = wait_until_answering(server, f"{base}/readyz", log_path)
        except ServerDidNotStart as exc:
            sys.exit(f"bench-api: {exc}")
        if ready.status != 200:
            sys.exit(f"bench-api: server not ready: {ready.status} {ready.body}")
        print(f"bench-api: server on {base}")
        status, body, _ = call(
            f"{base}/api/v1/auth/login",
            "POST",
            {"email": "admin@example.com", "password": ADMIN_PASSWORD},
        )
        if status != 200:
            sys.exit(f"bench-api: admin login failed: {status} {body}")
        token = body["access_token"]

        started = time.monotonic()

        def add_user(index: int) -> int:
            return call(
                f"{base}/api/v1/users",
                "POST",
                {
                    "email": f"bench-user-{index:03d}@example.com",
                    "password": USER_PASSWORD,
                    "full_name": f"Bench User {index}",
                    "role": ("viewer", "maintainer")[index % 2],
                },
                token,
            ).status

        def add_rule(index: int) -> int:
            return call(
                f"{base}/api/v1/rules",
                "POST",
                {
                    "name": f"bench rule {index}",
                    "source_cidr": f"10.{index}.0.0/16",
                    "protocol": "tcp",
                    "dst_port_min": 1000 + index,
                    "action": "drop",
                },
                token,
            ).status

        with ThreadPoolExecutor(4) as pool:
            users = list(pool.map(add_user, range(99)))  # + the admin = 100 users
            rules = list(pool.map(add_rule, range(100)))
        if set(users) != {201} or set(rules) != {201}:
            sys.exit(f"bench-api: loading failed: users {set(users)}, rules {set(rules)}")
        print(f"bench-api: loaded 100 users and 100 rules in {time.monotonic() - started:.1f} s")

        auth = {"Authorization": f"Bearer {token}"}
        lua = tmp / "login.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            "wrk.body = '"
            + json.dumps({"email": "bench-user-001@example.com", "password": USER_PASSWORD})
            + "'\n"
        )
        cases = [
            (
                "GET /api/v1/users?per_page=100",
                f"{base}/api/v1/users?per_page=100",
                connections,
                auth,
                None,
            ),
            ("GET /api/v1/auth/me", f"{base}/api/v1/auth/me", connections, auth, None),
            ("GET /healthz", f"{base}/healthz", connections, {}, None),
            ("POST /api/v1/auth/login", f"{base}/api/v1/auth/login", 2, {}, str(lua)),
        ]
        workers = [pid for pid, _ in worker_rss(server.pid)]
        # Rounds go round-robin over the endpoints, so a slow spell of this shared machine hits
        # one round of several endpoints rather than every round of one.
        rounds: dict[str, list[dict]] = {name: [] for name, *_ in cases}
        for _ in range(max(1, int(os.environ.get("BENCH_ROUNDS", "1")))):
            for name, url, conns, headers, script in cases:
                statements_before = db_statements(server_url, db_name)
                cpu_before = cpu_seconds(workers)
                steal_before = cpu_ticks()
                result = wrk(url, conns, duration, headers, script, workers)
                result["steal"] = steal_share(steal_before, cpu_ticks())
                used = cpu_seconds(workers) - cpu_before
                result["cpu_ms"] = used * 1000 / max(1, result["requests"])
                result["db_per_req"] = (
                    db_statements(server_url, db_name) - statements_before
                ) / max(1, result["requests"])
                rounds[name].append(result)
                print(
                    f"  {name:34s} c={conns:<3d} {result['rps']:9.1f} req/s  "
                    f"p50 {result['p50']:>8s}  p99 {result['p99']:>8s}  "
                    f"server CPU {result['cpu_ms']:.2f} ms/req  "
                    f"DB statements {result['db_per_req']:.2f}/req  "
                    f"steal {result['steal']:.0%}  connections per worker {result['split']}  "
                    f"non-2xx {result['non2xx']}"
                )
        results = []
        for name, _, conns, *_ in cases:
            ordered = sorted(rounds[name], key=lambda r: r["rps"])
            results.append((name, conns, ordered[len(ordered) // 2]))  # the median round
        rss = worker_rss(server.pid)
        threads = int(os.environ.get("GUNICORN_THREADS", "4"))
        load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
        rounds_note = os.environ.get("BENCH_ROUNDS", "1")
        print(
            f"\nbench-api results (wrk, {duration} each, median of {rounds_note} round(s); "
            f"{env['WEB_CONCURRENCY']} workers, {threads} thread(s) each, "
            f"{'balanced gthread' if threads > 1 else 'sync'} worker class):"
        )
        print(
            f"  {'endpoint':34s} {'conns':>5s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
            f"{'CPU ms':>7s} {'steal':>6s} {'split':>7s} {'non-2xx':>8s}"
        )
        for name, conns, r in results:
            print(
                f"  {name:34s} {conns:5d} {r['rps']:9.1f} {to_ms(r['p50']):8.2f} "
                f"{to_ms(r['p99']):8.2f} {r['cpu_ms']:7.2f} {r['steal']:6.0%} {r['split']:>7s} "
                f"{r['non2xx']:8d}"
            )
        print(
            "  steal: CPU time the hypervisor gave to other guests during the round (this VM's"
            " noise). split: open connections per worker, 2 s into the round.\n"
            f"  CPU ms: server (all workers) CPU time per request. Machine speed: a fixed Python"
            f" loop took {speed_before:.0f} ms before the run and {calibrate():.0f} ms after"
            " (lower is faster; compare runs only at similar speeds)"
        )
        print(
            f"  load average after the run (1/5/15 min): {load} on {os.cpu_count()} CPUs "
            "(the machine is shared: compare runs by their ratios)"
        )
        for pid, mib in rss:
            print(f"  worker pid {pid}: RSS {mib:.1f} MiB")
        print(
            "  targets: users list >= 500 req/s, /auth/me >= 2000 req/s, p99 < 100 ms at 32 "
            "connections, < 120 MiB per worker"
        )
        by_name = {name: r for name, _, r in results}
        checks = [
            ("users list >= 500 req/s", by_name[cases[0][0]]["rps"] >= 500),
            ("/auth/me >= 2000 req/s", by_name[cases[1][0]]["rps"] >= 2000),
        ]
        for name, conns, r in results:
            if conns == connections:
                checks.append((f"{name} p99 < 100 ms", to_ms(r["p99"]) < 100))
        checks.append(("RSS < 120 MiB per worker", all(mib < 120 for _, mib in rss)))
        for label, ok in checks:
            print(f"  {'met   ' if ok else 'MISSED'} {label}")
        return 0
    finally:
        try:
            stop(server)
        finally:
            psql(server_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

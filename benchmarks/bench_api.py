"""The service's own benchmark: real HTTP against gunicorn, with wrk, on PostgreSQL.

    make bench                              # 10,000 tickets in one branch, 1,000,000 in another
    BENCH_BIG=200000 BENCH_SECONDS=5 make bench

It creates a throwaway database on BENCH_PG_URL (an admin URL, default the local server),
loads the two branches with `flask seed-bulk`, starts gunicorn (BENCH_WORKERS, 2), and for
each request kind runs wrk (2 threads, 16 connections, BENCH_SECONDS): the list's first page,
the list with filters, a page a thousand pages deep through the cursor, Fetch Ticket (20
replies), Create Ticket and Reply. It prints req/s, p50 and p99 for each at both sizes, the
round trips each costs (counted on the wire by the relay of tests/test_round_trips.py), and a
worker's resident memory after 1,000 and after 20,000 requests.

Figures depend on the machine; ../shared/perf/bench.sh compares with the bare ceiling in the
same run, which is what to quote.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SMALL = int(os.environ.get("BENCH_TICKETS", "10000"))
BIG = int(os.environ.get("BENCH_BIG", "1000000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
PASSWORD = "Bench-Password-123"

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def run(*args, env=None, **kwargs) -> str:
    return subprocess.run(
        args, env=env, check=True, capture_output=True, text=True, cwd=ROOT, **kwargs
    ).stdout


def flask(env, *args) -> str:
    return run(str(VENV_BIN / "flask"), "--app", "wsgi", *args, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, path, token=None, body=None, method=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def wrk(url, token, script=None) -> dict:
    """req/s, p50 and p99 (ms) of one wrk run."""
    args = [
        "wrk",
        "-t2",
        "-c16",
        f"-d{SECONDS}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
    ]
    if script:
        args += ["-s", script]
    out = run(*args, url)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])

    def percentile(p):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {"rps": rps, "p50": percentile(50), "p99": percentile(99)}


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1])


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    database = f"bench_{secrets.token_hex(4)}"
    admin_url = PG
    url = admin_url.rsplit("/", 1)[0] + "/" + database
    run("psql", "-q", admin_url, "-c", f"CREATE DATABASE {database}")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "JWT_SECRET_KEY": secrets.token_hex(32),
        "LOG_LEVEL": "WARNING",
        "LOGIN_RATE_LIMIT_PER_ADDRESS": "100000 per minute",
    }
    server = None
    try:
        flask(env, "db", "upgrade")
        flask(
            env,
            "users",
            "create",
            "--isp-id",
            "1",
            "--branch-id",
            "1",
            "--name",
            "Bench",
            "--email",
            "bench@example.com",
            "--role",
            "admin",
            "--password",
            PASSWORD,
        )
        loaded = {}
        for branch, tickets in ((1, SMALL), (2, BIG)):
            started = time.perf_counter()
            out = flask(
                env,
                "seed-bulk",
                "--isp-id",
                "1",
                "--branch-id",
                str(branch),
                "--tickets",
                str(tickets),
                "--replies",
                "20",
            )
            loaded[branch] = json.loads(out.strip().splitlines()[-1])["newest_ticket_id"]
            seconds = time.perf_counter() - started
            print(f"loaded {tickets:,} tickets in branch {branch} in {seconds:.1f} s")
        run("psql", "-q", url, "-c", "VACUUM ANALYZE")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(100):
            try:
                call(base, "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        os.environ.update(DATABASE_URL=url, JWT_SECRET_KEY=env["JWT_SECRET_KEY"])
        login = call(
            base, "/api/v1/auth/login", body={"email": "bench@example.com", "password": PASSWORD}
        )
        token, user = login["data"]["access_token"], login["data"]["user"]["id"]
        report(base, token, user, loaded, server)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait()
        time.sleep(0.5)
        run("psql", "-q", admin_url, "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def report(base, token, user, loaded, server) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tickets-bench-"))
    create = workdir / "create.lua"
    create.write_text(
        POST_LUA
        % json.dumps(
            {
                "title": "Connection Issue",
                "description": "Cannot connect to internet",
                "priority": 2,
            }
        )
    )
    reply = workdir / "reply.lua"
    reply.write_text(POST_LUA % json.dumps({"message": "We are looking into this issue."}))

    for branch, size in ((1, SMALL), (2, BIG)):
        scope = f"isp_id=1&branch_id={branch}&user_id={user}"
        listing = f"/api/v1/tickets?{scope}&per_page=50"
        deep = deep_cursor(base, token, listing, pages=1000 if branch == 2 else 100)
        kinds = [
            ("list, first page of 50", listing, None),
            ("list, status 0,1 + priority 3", listing + "&status=0,1&priority=3", None),
            (
                f"list, cursor {1000 if branch == 2 else 100} pages deep",
                listing + "&cursor=" + urllib.parse.quote(deep),
                None,
            ),
            ("fetch ticket, 20 replies", f"/api/v1/tickets/{loaded[branch]}", None),
        ]
        if branch == 1:
            kinds += [
                ("create ticket", "/api/v1/tickets", str(create)),
                ("reply", f"/api/v1/tickets/{loaded[1]}/reply", str(reply)),
            ]
        for name, path, script in kinds:
            figures = wrk(base + path, token, script)
            rps, p50, p99 = figures["rps"], figures["p50"], figures["p99"]
            print(
                f"{size:>9,}  {name:<32} {rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms",
                flush=True,
            )

    memory_growth(base, token, user, server)
    round_trips(user, loaded)


def memory_growth(base, token, user, server) -> None:
    """Each worker's resident memory after its ~1,000th and ~20,000th list request."""
    workers = [int(pid) for pid in run("pgrep", "-P", str(server.pid)).split()]
    url = f"{base}/api/v1/tickets?isp_id=1&branch_id=1&user_id={user}&per_page=50"
    served, seen = 0, []
    for target in (1000, 20000):
        while served < target * len(workers):
            out = run("wrk", "-t2", "-c8", "-d2s", "-H", f"Authorization: Bearer {token}", url)
            served += int(re.search(r"(\d+) requests in", out)[1])
        seen.append([rss_kb(pid) for pid in workers])
    for pid, before, after in zip(workers, *seen, strict=True):
        print(
            f"worker {pid}: RSS {before / 1024:.1f} MiB after ~1,000 requests, "
            f"{after / 1024:.1f} MiB after ~20,000 ({(after - before) / before * 100:+.1f} %)"
        )


def round_trips(user, loaded) -> None:
    """Round trips per request, counted on the wire (the suite's relay), on the big branch."""
    sys.path.insert(0, str(ROOT / "tests"))
    from sqlalchemy.engine import make_url
    from test_round_trips import WireCounter

    from tickets_service import create_app

    url = make_url(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    counter = WireCounter((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(host="127.0.0.1", port=counter.port, query={"sslmode": "disable"})
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": relayed.render_as_string(hide_password=False),
            "LOG_LEVEL": "WARNING",
        }
    )
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
    ).get_json()["data"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"title": "Connection Issue", "description": "Cannot connect to internet", "priority": 2}
    calls = {
        "list": lambda: client.get(
            f"/api/v1/tickets?isp_id=1&branch_id=2&user_id={user}", headers=headers
        ),
        "fetch": lambda: client.get(f"/api/v1/tickets/{loaded[2]}", headers=headers),
        "create": lambda: client.post("/api/v1/tickets", json=body, headers=headers),
        "reply": lambda: client.post(
            f"/api/v1/tickets/{loaded[1]}/reply", json={"message": "On it."}, headers=headers
        ),
    }
    for name, do in calls.items():
        for _ in range(8):
            do()
        with counter.counting() as seen:
            do()
        print(f"round trips per request, {name}: {seen['round_trips']}")
    counter.close()


def deep_cursor(base, token, listing, pages) -> str:
    """The cursor of the page `pages` deep, by walking the list."""
    body = call(base, listing, token)
    for _ in range(pages - 1):
        body = call(
            base, listing + "&cursor=" + urllib.parse.quote(body["meta"]["next_cursor"]), token
        )
    return body["meta"]["next_cursor"]


if __name__ == "__main__":
    main()

"""Incidents at scale: what an outage costs the service, each figure against bare SQL (or the
idle service) measured in the same run, on PostgreSQL.

    make bench                                        # after bench_api.py
    .venv/bin/python benchmarks/bench_incidents.py    # the defaults: a few minutes
    BENCH_NET_OBJECTS=20000 BENCH_NET_SUBSCRIBERS=100000 python benchmarks/bench_incidents.py

It creates throwaway databases (bench_inc_*) on BENCH_PG_URL (an admin URL, default the local
server), migrates them with `flask db upgrade`, seeds them through psycopg and drops them at
the end. Absolute times on a shared machine do not compare from one run to the next, so each
figure is a ratio of two measurements taken side by side:

- open incident: POST /api/v1/incidents on a node serving BENCH_AFFECTED (10,000) subscribers
  through ~100 services, BENCH_CHILDREN (2,000) of them with an open ticket, through the app
  in-process (Flask test client), over one psycopg transaction making the same writes: the
  incident's ticket, incident and link rows, its affected subscribers, the children moved under
  it with a history entry each, its event. Median of BENCH_ROUNDS (3); target <= 3x.
- resolve incident: PUT /api/v1/tickets/{id}/status {"status": 2} on that incident, over the
  same writes (each child resolved with a history entry, each outage ended and written as an
  event, the incident's events). Median of BENCH_ROUNDS; target <= 3x.
- list / fetch during resolves: req/s of the branch's ticket list and of Fetch Ticket (a child
  the incidents move), served by gunicorn (BENCH_WORKERS, 2) to BENCH_CLIENTS (4) keep-alive
  clients for BENCH_SECONDS (5), while another process opens and resolves incidents on the
  same branch in a loop, over the same while idle; target >= 0.5 (no long lock on the branch).
- affected below depth d: the statement incidents.served_below builds (subscribers served at or
  below an object, by materialised path) over a recursive CTE walking parent_id, both through
  psycopg, on one ISP's tree of BENCH_NET_OBJECTS (200,000) objects 12 deep serving
  BENCH_NET_SUBSCRIBERS (1,000,000) subscribers: an object at depth 4-6 covering a few percent
  of them, and one at depth 12. Target <= 2x, and depth 12 well under a second.
- Create Ticket with storm detection on is ../shared/perf/bench.sh's create ratio (not here).

BENCH_EXPLAIN=1 also prints EXPLAIN ANALYZE of both network statements.
"""

import http.client
import math
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Json

from tickets_service import create_app
from tickets_service.extensions import db
from tickets_service.incidents import served_below
from tickets_service.models import User
from tickets_service.tokens import issue_token

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AFFECTED = int(os.environ.get("BENCH_AFFECTED", "10000"))
CHILDREN = int(os.environ.get("BENCH_CHILDREN", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
NET_OBJECTS = int(os.environ.get("BENCH_NET_OBJECTS", "200000"))
NET_SUBSCRIBERS = int(os.environ.get("BENCH_NET_SUBSCRIBERS", "1000000"))
EXPLAIN = os.environ.get("BENCH_EXPLAIN") == "1"
SERVICES = 100  # below the incident's node
NET_DEPTH = 12
ISP, BRANCH = 1, 1
MESSAGE = "A fibre cut near the north POP: crews are on site."


@dataclass(frozen=True)
class Row:
    """One line of the report."""

    name: str
    measured: str
    baseline: str
    ratio: float
    target: str
    passed: bool


@dataclass(frozen=True)
class Desk:
    """The incident's world: an admin, the node that fails, and a child to fetch."""

    user_id: int
    node: dict
    node_id: int
    node_path: str
    child_id: int


def main() -> None:
    secret = secrets.token_hex(32)
    rows = []
    with throwaway_database("desk") as url:
        migrate(url, secret)
        desk = seed_desk(url)
        print(f"desk: {AFFECTED:,} subscribers below one node, {CHILDREN:,} open tickets")
        rows += measure_writes(url, secret, desk)
        rows += measure_reads_during_resolves(url, secret, desk)
    with throwaway_database("net") as url:
        migrate(url, secret)
        rows += measure_network(url, secret)
    report(rows)


# --- Databases and the app ----------------------------------------------------------------------


@contextmanager
def throwaway_database(label: str):
    """A new database on the server of BENCH_PG_URL, dropped afterwards whatever happens."""
    name = f"bench_inc_{label}_{secrets.token_hex(4)}"
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PG.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def service_env(url: str, secret: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "JWT_SECRET_KEY": secret,
        "RATE_LIMITS": "off",
        "LOG_LEVEL": "WARNING",
    }


def migrate(url: str, secret: str) -> None:
    subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        env=service_env(url, secret),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def in_process_app(url: str, secret: str):
    """The service as gunicorn runs it, called through Flask's test client."""
    config = {"SQLALCHEMY_DATABASE_URI": url, "JWT_SECRET_KEY": secret, "RATE_LIMITS": False}
    return create_app({**config, "LOG_LEVEL": "WARNING"})


def bearer(app, user_id: int) -> dict:
    with app.app_context():
        token = issue_token(db.session.get(User, user_id))["access_token"]
        db.session.remove()
    return {"Authorization": f"Bearer {token}"}


def vacuum(url: str, *tables: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("VACUUM ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
            if tables
            else "VACUUM ANALYZE"
        )


def add_user(conn) -> int:
    return conn.execute(
        """INSERT INTO users (isp_id, branch_id, name, email, password_hash, role, is_active,
                              created_at, updated_at)
           VALUES (%s, %s, 'Bench Admin', 'bench@example.com', '!', 'admin', true, now(), now())
           RETURNING id""",
        (ISP, BRANCH),
    ).fetchone()[0]


# --- 1. Opening and resolving an incident ---------------------------------------------------


def seed_desk(url: str) -> Desk:
    """One ISP: a site > a node > SERVICES services serving AFFECTED subscribers, the first
    CHILDREN of them with an open ticket (open or in progress, by the parity of their id)."""
    with psycopg.connect(url) as conn:
        user_id = add_user(conn)
        site = add_objects(conn, "site", None, 1)[0]
        node = add_objects(conn, "node", site, 1)[0]
        add_objects(conn, "service", node, SERVICES)
        conn.execute(
            """INSERT INTO subscribers (isp_id, branch_id, name, external_id, created_at,
                                        updated_at)
               SELECT %s, %s, 'Subscriber ' || g, 'crm-' || g, now(), now()
               FROM generate_series(1, %s) g""",
            (ISP, BRANCH, AFFECTED),
        )
        conn.execute(
            """INSERT INTO subscriber_network (subscriber_id, object_id, isp_id)
               SELECT s.id, o.id, %(isp)s
               FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM subscribers) s
               JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM network_objects
                     WHERE parent_id = %(node)s) o ON o.n = 1 + s.n %% %(services)s""",
            {"isp": ISP, "node": node[0], "services": SERVICES},
        )
        child_id = conn.execute(
            """INSERT INTO tickets (isp_id, branch_id, subscriber_id, created_by_id, title,
                                    description, priority, status, created_at, updated_at)
               SELECT %s, %s, id, %s, 'No connection', 'The line is down', 2, id %% 2, now(),
                      now()
               FROM subscribers ORDER BY id LIMIT %s
               RETURNING id""",
            (ISP, BRANCH, user_id, CHILDREN),
        ).fetchone()[0]
    vacuum(url)
    return Desk(user_id, {"kind": "node", "external_id": f"node-{node[0]}"}, *node[:2], child_id)


def add_objects(conn, kind: str, parent: tuple | None, count: int) -> list[tuple]:
    """`count` new objects of this kind under `parent` (id, path, depth): theirs."""
    parent_id, path, depth = parent or (None, "/", 0)
    return conn.execute(
        """INSERT INTO network_objects (id, isp_id, kind, external_id, name, parent_id, path,
                                        depth, created_at, updated_at)
           SELECT n.id, %(isp)s, k.kind, k.kind || '-' || n.id, k.kind || ' ' || n.id,
                  %(parent)s, %(path)s || n.id || '/', %(depth)s, now(), now()
           FROM (SELECT nextval('network_objects_id_seq') AS id
                 FROM generate_series(1, %(count)s)) n, (SELECT %(kind)s::text AS kind) k
           RETURNING id, path, depth""",
        {
            "isp": ISP,
            "kind": kind,
            "parent": parent_id,
            "path": path,
            "depth": depth + 1,
            "count": count,
        },
    ).fetchall()


def measure_writes(url: str, secret: str, desk: Desk) -> list[Row]:
    """Open then resolve an incident through the service, then the same in bare SQL, ROUNDS
    times, the children put back as they were (and the tables vacuumed) after each."""
    app = in_process_app(url, secret)
    client, headers = app.test_client(), bearer(app, desk.user_id)
    times = {"service open": [], "service resolve": [], "bare open": [], "bare resolve": []}
    written = {}
    with psycopg.connect(url, autocommit=True) as probe, psycopg.connect(url) as bare:
        for number in range(1, ROUNDS + 1):
            for side in ("service", "bare"):
                before = history_rows(probe)
                if side == "service":
                    elapsed, incident_id = service_open(client, headers, desk)
                else:
                    elapsed, incident_id = bare_open(bare, desk)
                times[f"{side} open"].append(elapsed)
                check_opened(probe, incident_id)
                middle = history_rows(probe)
                if side == "service":
                    times["service resolve"].append(service_resolve(client, headers, incident_id))
                else:
                    times["bare resolve"].append(bare_resolve(bare, desk, incident_id))
                check_resolved(probe, incident_id)
                written[side] = (middle - before, history_rows(probe) - middle)
                reset_children(probe)
                vacuum(url, "tickets", "ticket_history", "incident_subscribers")
            if written["service"] != written["bare"]:
                sys.exit(f"bench: the bare SQL wrote other history than the service: {written}")
            took = ", ".join(f"{name} {seconds(spent[-1])}" for name, spent in times.items())
            print(f"round {number}: {took}")
    with app.app_context():
        db.engine.dispose()
    what = f"{AFFECTED:,} affected, {CHILDREN:,} children"
    return [
        ratio_row(f"open incident ({what})", times["service open"], times["bare open"], 3),
        ratio_row("resolve incident (same)", times["service resolve"], times["bare resolve"], 3),
    ]


def ratio_row(name: str, service: list[float], bare: list[float], limit: float) -> Row:
    """Medians of service and bare times (seconds), and their ratio against `limit`."""
    mine, theirs = statistics.median(service), statistics.median(bare)
    ratio = mine / theirs
    return Row(name, seconds(mine), seconds(theirs), ratio, f"<= {limit:g}x", ratio <= limit)


def seconds(value: float) -> str:
    return f"{value:.3f} s" if value >= 1 else f"{value * 1000:.1f} ms"


def service_open(client, headers: dict, desk: Desk) -> tuple[float, int]:
    body = {
        "title": "Fibre cut",
        "description": "OLT unreachable",
        "priority": 3,
        "links": [desk.node],
        "public_message": MESSAGE,
    }
    started = time.perf_counter()
    response = client.post("/api/v1/incidents", json=body, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"open incident: {response.status_code} {response.get_data(True)}")
    return elapsed, response.get_json()["data"]["id"]


def service_resolve(client, headers: dict, incident_id: int) -> float:
    started = time.perf_counter()
    response = client.put(
        f"/api/v1/tickets/{incident_id}/status", json={"status": 2}, headers=headers
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"resolve incident: {response.status_code} {response.get_data(True)}")
    return elapsed


def bare_open(conn, desk: Desk) -> tuple[float, int]:
    """What opening the incident writes, in one transaction of set-based statements."""
    started = time.perf_counter()
    values = {"isp": ISP, "branch": BRANCH, "user": desk.user_id, "message": MESSAGE}
    values.update(node=desk.node_id, path=desk.node_path + "%")
    incident_id, now = conn.execute(
        """INSERT INTO tickets (isp_id, branch_id, kind, created_by_id, title, description,
                                priority, status, created_at, updated_at)
           VALUES (%(isp)s, %(branch)s, 'incident', %(user)s, 'Fibre cut', 'OLT unreachable', 3,
                   0, now(), now())
           RETURNING id, created_at""",
        values,
    ).fetchone()
    values.update(incident=incident_id, now=now)
    conn.execute(
        """INSERT INTO incidents (ticket_id, isp_id, starts_at, planned, public_message)
           VALUES (%(incident)s, %(isp)s, %(now)s, false, %(message)s)""",
        values,
    )
    conn.execute(
        """INSERT INTO ticket_links (ticket_id, object_id, isp_id, position)
           VALUES (%(incident)s, %(node)s, %(isp)s, 0)""",
        values,
    )
    affected = conn.execute(
        """INSERT INTO incident_subscribers (incident_id, subscriber_id, isp_id, affected_from)
           SELECT DISTINCT %(incident)s, sn.subscriber_id, %(isp)s, %(now)s
           FROM subscriber_network sn JOIN network_objects o ON o.id = sn.object_id
           WHERE o.isp_id = %(isp)s AND o.path LIKE %(path)s""",
        values,
    ).rowcount
    children = conn.execute(
        """WITH moved AS (
               UPDATE tickets t SET parent_id = %(incident)s, version = t.version + 1,
                                    updated_at = %(now)s
               FROM incident_subscribers a
               WHERE a.incident_id = %(incident)s AND t.subscriber_id = a.subscriber_id
                 AND t.isp_id = %(isp)s AND t.kind = 'ticket' AND t.parent_id IS NULL
                 AND t.deleted_at IS NULL AND t.status IN (0, 1)
               RETURNING t.id)
           INSERT INTO ticket_history (ticket_id, user_id, system, action, field, new,
                                       created_at)
           SELECT id, %(user)s, false, 'linked', 'parent_id', to_json(%(incident)s::int),
                  %(now)s
           FROM moved""",
        values,
    ).rowcount
    event = {"incident_id": incident_id, "affected_subscribers": affected, "children": children}
    add_event(conn, values, "incident_opened", {**event, "planned": False})
    conn.commit()
    return time.perf_counter() - started, incident_id


def bare_resolve(conn, desk: Desk, incident_id: int) -> float:
    """What resolving it writes, in one transaction of set-based statements."""
    started = time.perf_counter()
    values = {"isp": ISP, "user": desk.user_id, "incident": incident_id}
    values["now"] = conn.execute(
        """UPDATE tickets SET status = 2, resolved_at = now(), version = version + 1,
                              updated_at = now()
           WHERE id = %(incident)s RETURNING updated_at""",
        values,
    ).fetchone()[0]
    conn.execute(
        """INSERT INTO ticket_history (ticket_id, user_id, system, action, field, old, new,
                                       created_at)
           VALUES (%(incident)s, %(user)s, false, 'status_changed', 'status', '0', '2',
                   %(now)s)""",
        values,
    )
    children = conn.execute(
        """WITH moved AS (
               UPDATE tickets t SET status = 2, resolved_at = %(now)s, version = t.version + 1,
                                    updated_at = %(now)s
               FROM (SELECT id, status FROM tickets
                     WHERE parent_id = %(incident)s AND deleted_at IS NULL
                       AND status IN (0, 1)) old
               WHERE t.id = old.id
               RETURNING t.id, old.status)
           INSERT INTO ticket_history (ticket_id, user_id, system, action, field, old, new,
                                       created_at)
           SELECT id, %(user)s, false, 'status_changed', 'status', to_json(status), '2',
                  %(now)s
           FROM moved""",
        values,
    ).rowcount
    conn.execute(
        "UPDATE incidents SET restored_at = %(now)s WHERE ticket_id = %(incident)s", values
    )
    conn.execute(
        """UPDATE incident_subscribers SET affected_until = %(now)s
           WHERE incident_id = %(incident)s AND affected_until IS NULL""",
        values,
    )
    out, minutes = conn.execute(
        """WITH sent AS (
               INSERT INTO ticket_history (ticket_id, user_id, system, action, new, created_at)
               SELECT %(incident)s, %(user)s, false, 'outage', json_build_object(
                          'incident_id', a.incident_id, 'subscriber', a.subscriber_id,
                          'external_id', s.external_id, 'minutes', m.minutes,
                          'from', to_char(a.affected_from AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD HH24:MI:SS'),
                          'to', to_char(a.affected_until AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD HH24:MI:SS')),
                      %(now)s
               FROM incident_subscribers a
               JOIN subscribers s ON s.id = a.subscriber_id
               CROSS JOIN LATERAL (SELECT greatest(0, floor(extract(epoch FROM
                                      a.affected_until - a.affected_from) / 60))::int) m(minutes)
               WHERE a.incident_id = %(incident)s
               ORDER BY a.subscriber_id
               RETURNING new)
           SELECT count(*), coalesce(sum((new ->> 'minutes')::int), 0) FROM sent""",
        values,
    ).fetchone()
    event = {"incident_id": incident_id, "affected_subscribers": 0, "children": children}
    event.update(outage_minutes=minutes, subscribers_out=out)
    add_event(conn, values, "incident_resolved", event)
    conn.commit()
    return time.perf_counter() - started


def add_event(conn, values: dict, action: str, new: dict) -> None:
    conn.execute(
        """INSERT INTO ticket_history (ticket_id, user_id, system, action, new, created_at)
           VALUES (%(incident)s, %(user)s, false, %(action)s, %(new)s, %(now)s)""",
        {**values, "action": action, "new": Json(new)},
    )


def history_rows(conn) -> int:
    return conn.execute("SELECT count(*) FROM ticket_history").fetchone()[0]


def check_opened(conn, incident_id: int) -> None:
    """Both sides must have done the whole job: every subscriber affected, every child taken."""
    found = conn.execute(
        """SELECT (SELECT count(*) FROM incident_subscribers WHERE incident_id = %(id)s),
                  (SELECT count(*) FROM tickets WHERE parent_id = %(id)s)""",
        {"id": incident_id},
    ).fetchone()
    if found != (AFFECTED, CHILDREN):
        sys.exit(f"bench: incident {incident_id} has (affected, children) {found}")


def check_resolved(conn, incident_id: int) -> None:
    found = conn.execute(
        """SELECT (SELECT count(*) FROM incident_subscribers
                   WHERE incident_id = %(id)s AND affected_until IS NOT NULL),
                  (SELECT count(*) FROM tickets WHERE parent_id = %(id)s AND status = 2)""",
        {"id": incident_id},
    ).fetchone()
    if found != (AFFECTED, CHILDREN):
        sys.exit(f"bench: resolved incident {incident_id} has (ended, resolved) {found}")


def reset_children(conn) -> None:
    """The children open again and under no incident, as seeded (`conn` autocommits)."""
    conn.execute(
        """UPDATE tickets SET parent_id = NULL, status = subscriber_id % 2, resolved_at = NULL,
                              version = version + 1
           WHERE kind = 'ticket' AND parent_id IS NOT NULL"""
    )


# --- 2. Reads on the branch while incidents resolve ---------------------------------------


def measure_reads_during_resolves(url: str, secret: str, desk: Desk) -> list[Row]:
    """List and fetch req/s under gunicorn while another process opens and resolves incidents
    on the branch in a loop (so every gunicorn worker is free for the readers), over idle: the
    mean of the rates before the loop starts and after it ends."""
    token = bearer(in_process_app(url, secret), desk.user_id)["Authorization"]
    paths = {
        "list tickets": f"/api/v1/tickets?isp_id={ISP}&branch_id={BRANCH}&user_id={desk.user_id}",
        "fetch ticket (a child)": f"/api/v1/tickets/{desk.child_id}",
    }
    with gunicorn(url, secret) as port:
        before = {name: hammer(port, path, token) for name, path in paths.items()}
        spawn = multiprocessing.get_context("spawn")
        stop, busy, results = spawn.Event(), spawn.Event(), spawn.Queue()
        loop = spawn.Process(target=resolve_loop, args=(url, secret, desk, stop, busy, results))
        loop.start()
        try:
            busy.wait(timeout=300)
            during = {name: hammer(port, path, token) for name, path in paths.items()}
        finally:
            stop.set()
            resolves, failure = results.get(timeout=600)
            loop.join()
        if failure:
            raise RuntimeError(f"the open/resolve loop failed: {failure}")
        after = {name: hammer(port, path, token) for name, path in paths.items()}
    print(
        f"resolve loop: {len(resolves)} resolves of {CHILDREN:,} children, "
        f"median {seconds(statistics.median(resolves))} each"
    )
    rows = []
    for name in paths:
        idle = (before[name]["rps"] + after[name]["rps"]) / 2
        busy_ = during[name]
        print(
            f"{name}: idle {before[name]['rps']:.0f} then {after[name]['rps']:.0f} req/s "
            f"(max {max(before[name]['max'], after[name]['max']) * 1000:.0f} ms), "
            f"during resolves {busy_['rps']:.0f} req/s (p99 {busy_['p99'] * 1000:.0f} ms, "
            f"max {busy_['max'] * 1000:.0f} ms, {busy_['errors']} errors)"
        )
        ratio = busy_["rps"] / idle
        rows.append(
            Row(
                f"{name}, during resolves / idle",
                f"{busy_['rps']:.0f} req/s",
                f"{idle:.0f} req/s",
                ratio,
                ">= 0.5",
                ratio >= 0.5 and not busy_["errors"],
            )
        )
    return rows


@contextmanager
def gunicorn(url: str, secret: str):
    """The service under gunicorn (the repo's gunicorn.conf.py), on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT,
        env=service_env(url, secret),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(150):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("gunicorn did not start")
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def hammer(port: int, path: str, token: str) -> dict:
    """CLIENTS keep-alive clients GETting `path` for SECONDS: req/s (answers 200), p99 and
    max latency (s), and how many requests failed."""
    deadline = time.perf_counter() + SECONDS
    latencies, errors = [], []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, failed = [], 0
        while (started := time.perf_counter()) < deadline:
            try:
                connection.request("GET", path, headers={"Authorization": token})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                failed += 1
                continue
            if response.status == 200:
                mine.append(time.perf_counter() - started)
            else:
                failed += 1
        connection.close()
        latencies.extend(mine)
        errors.append(failed)

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else math.inf,
        "max": latencies[-1] if latencies else math.inf,
        "errors": sum(errors),
    }


def resolve_loop(url: str, secret: str, desk: Desk, stop, busy, results) -> None:
    """Open an incident on the node and resolve it, again and again, until `stop`; `busy` once
    the first is open. Puts (the resolve times, what failed or None) in `results`."""
    resolves, failure = [], None
    try:
        app = in_process_app(url, secret)
        client, headers = app.test_client(), bearer(app, desk.user_id)
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                _, incident_id = service_open(client, headers, desk)
                busy.set()
                resolves.append(service_resolve(client, headers, incident_id))
                reset_children(conn)
    except Exception as err:  # the parent reports it
        failure = repr(err)
    finally:
        busy.set()
        results.put((resolves, failure))


# --- 3. Who is affected, at scale -------------------------------------------------------------


def level_sizes(total: int, depth: int) -> list[int]:
    """Objects per level of a tree `depth` deep with `total` objects, growing by a constant
    factor from a single root (each object below the root has a parent one level up)."""
    low, high = 1.0, float(total)
    for _ in range(100):
        factor = (low + high) / 2
        if sum(factor**level for level in range(depth)) > total:
            high = factor
        else:
            low = factor
    sizes = [max(1, round(low**level)) for level in range(depth - 1)]
    sizes.append(total - sum(sizes))
    if sizes[-1] < sizes[-2]:
        raise SystemExit(f"bench: BENCH_NET_OBJECTS={total} is too few for {depth} levels")
    return sizes


def seed_network(url: str, sizes: list[int]) -> list[int]:
    """Load the tree (level by level, ids consecutive within a level, each level's objects
    spread evenly over the level above) and its subscribers, each served by a leaf, one in
    twenty by the leaf's parent too. Returns the first id of each level."""
    starts = [1 + sum(sizes[:level]) for level in range(len(sizes))]
    kinds = ["site"] + ["node"] * 5 + ["device"] * (len(sizes) - 7) + ["service"]
    leaves, leaf_start = sizes[-1], starts[-1]
    with psycopg.connect(url) as conn:
        # Bulk load: the rows are consistent by construction, so skip the per-row FK checks.
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            """INSERT INTO network_objects (id, isp_id, kind, external_id, name, path, depth,
                                            created_at, updated_at)
               VALUES (1, %s, 'site', 'site-1', 'site 1', '/1/', 1, now(), now())""",
            (ISP,),
        )
        for level in range(1, len(sizes)):
            conn.execute(
                """INSERT INTO network_objects (id, isp_id, kind, external_id, name, parent_id,
                                                path, depth, created_at, updated_at)
                   SELECT n.id, %(isp)s, k.kind, k.kind || '-' || n.id, k.kind || ' ' || n.id,
                          p.id, p.path || n.id || '/', %(depth)s, now(), now()
                   FROM (SELECT %(start)s + g AS id,
                                %(parents_start)s + g::bigint * %(parents)s / %(count)s AS up
                         FROM generate_series(0, %(count)s - 1) g) n
                   JOIN network_objects p ON p.id = n.up
                   CROSS JOIN (SELECT %(kind)s::text AS kind) k""",
                {
                    "isp": ISP,
                    "kind": kinds[level],
                    "depth": level + 1,
                    "start": starts[level],
                    "count": sizes[level],
                    "parents_start": starts[level - 1],
                    "parents": sizes[level - 1],
                },
            )
        conn.execute(
            """INSERT INTO subscribers (id, isp_id, branch_id, name, created_at, updated_at)
               SELECT g, %s, 1 + g %% 10, 'Subscriber ' || g, now(), now()
               FROM generate_series(1, %s) g""",
            (ISP, NET_SUBSCRIBERS),
        )
        conn.execute(
            """INSERT INTO subscriber_network (subscriber_id, object_id, isp_id)
               SELECT g, %(leaf)s + (g - 1) %% %(leaves)s, %(isp)s
               FROM generate_series(1, %(subscribers)s) g""",
            {"leaf": leaf_start, "leaves": leaves, "isp": ISP, "subscribers": NET_SUBSCRIBERS},
        )
        conn.execute(
            """INSERT INTO subscriber_network (subscriber_id, object_id, isp_id)
               SELECT g, o.parent_id, %(isp)s
               FROM generate_series(20, %(subscribers)s, 20) g
               JOIN network_objects o ON o.id = %(leaf)s + (g - 1) %% %(leaves)s""",
            {"leaf": leaf_start, "leaves": leaves, "isp": ISP, "subscribers": NET_SUBSCRIBERS},
        )
        conn.execute("SELECT setval('network_objects_id_seq', max(id)) FROM network_objects")
        conn.execute("SELECT setval('subscribers_id_seq', max(id)) FROM subscribers")
    vacuum(url)
    return starts


BARE_BELOW = """
WITH RECURSIVE below AS (
    SELECT id FROM network_objects WHERE id = %(object)s
    UNION ALL
    SELECT o.id FROM network_objects o JOIN below b ON o.parent_id = b.id
)
SELECT DISTINCT subscriber_id FROM subscriber_network WHERE object_id IN (SELECT id FROM below)
"""


def measure_network(url: str, secret: str) -> list[Row]:
    """served_below's statement against the recursive CTE, for a mid-tree object and a leaf."""
    sizes = level_sizes(NET_OBJECTS, NET_DEPTH)
    started = time.perf_counter()
    starts = seed_network(url, sizes)
    print(
        f"network: {NET_OBJECTS:,} objects in {NET_DEPTH} levels {sizes}, "
        f"{NET_SUBSCRIBERS:,} subscribers, seeded in {time.perf_counter() - started:.1f} s"
    )
    # The mid-tree object: at the depth from 4 to 6 whose objects each cover nearest 3 %.
    depth = min(range(4, 7), key=lambda d: abs(math.log(sizes[d - 1] / 33)))
    objects = {
        depth: starts[depth - 1] + sizes[depth - 1] // 2,
        NET_DEPTH: starts[-1] + sizes[-1] // 2,
    }
    with psycopg.connect(url) as conn:
        user_id = add_user(conn)
        incidents = {}
        for level, object_id in objects.items():
            incidents[level] = conn.execute(
                """INSERT INTO tickets (isp_id, branch_id, kind, created_by_id, title,
                                        description, priority, status, created_at, updated_at)
                   VALUES (%s, %s, 'incident', %s, 'Outage', 'Down', 3, 0, now(), now())
                   RETURNING id""",
                (ISP, BRANCH, user_id),
            ).fetchone()[0]
            conn.execute(
                """INSERT INTO ticket_links (ticket_id, object_id, isp_id, position)
                   VALUES (%s, %s, %s, 0)""",
                (incidents[level], object_id, ISP),
            )
    app = in_process_app(url, secret)
    with app.app_context():
        statements = {}
        for level, incident_id in incidents.items():
            compiled = served_below(ISP, incident_id).compile(dialect=db.engine.dialect)
            statements[level] = (str(compiled), compiled.params)
        db.session.remove()
        db.engine.dispose()
    rows = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        for level, object_id in objects.items():
            service, bare = statements[level], (BARE_BELOW, {"object": object_id})
            if EXPLAIN:
                for name, (query, params) in (("service", service), ("bare", bare)):
                    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params).fetchall()
                    print(f"-- {name}, depth {level}:\n" + "\n".join(line for (line,) in plan))
            times = {"service": [], "bare": []}
            found = {}
            for _ in range(6):  # the first run of each warms the cache and is not counted
                for name, (query, params) in (("service", service), ("bare", bare)):
                    began = time.perf_counter()
                    found[name] = len(conn.execute(query, params).fetchall())
                    times[name].append(time.perf_counter() - began)
            if found["service"] != found["bare"]:
                sys.exit(f"bench: depth {level}: service found {found}, bare SQL otherwise")
            share = found["service"] / NET_SUBSCRIBERS * 100
            row = ratio_row(
                f"affected below depth {level} ({found['service']:,} subs, {share:.2g} %)",
                times["service"][1:],
                times["bare"][1:],
                2,
            )
            if level == NET_DEPTH:  # and "well under a second": a tenth of one
                fast = statistics.median(times["service"][1:]) < 0.1
                row = replace(row, target="<= 2x, < 0.1 s", passed=row.passed and fast)
            rows.append(row)
    return rows


# --- The report -------------------------------------------------------------------------------


def report(rows: list[Row]) -> None:
    width = max(len(row.name) for row in rows)
    print()
    print(f"{'':<{width}}  {'service':>11}  {'bare / idle':>11}  {'ratio':>6}  target")
    for row in rows:
        verdict = "pass" if row.passed else "FAIL"
        print(
            f"{row.name:<{width}}  {row.measured:>11}  {row.baseline:>11}  {row.ratio:6.2f}  "
            f"{row.target:<15} {verdict}"
        )
    print(
        "create ticket with storm detection on: see ../shared/perf/bench.sh (its create ratio, "
        "against a bare INSERT)"
    )


if __name__ == "__main__":
    main()

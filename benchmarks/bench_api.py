"""Benchmark the hot endpoints on a large database and report figures (run on demand).

    make bench                                   # SQLite, 200,000 tickets
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/tickets_bench \\
    BENCH_TICKETS=1000000 make bench             # PostgreSQL (the database must exist, empty)

It migrates the database, bulk-loads tickets spread over ISPs and branches, then times requests
through the Flask test client (the app and the database, without the network) and prints
median and p95 latency and SQL statements per request. Figures depend on the machine; compare
runs on the same machine only.
"""

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta

import flask_migrate
from sqlalchemy import event, insert, text

from tickets_service import create_app
from tickets_service.auth import issue_token
from tickets_service.extensions import db
from tickets_service.models import Subscriber, Ticket, TicketReply, User, utcnow

TICKETS = int(os.environ.get("BENCH_TICKETS", "200000"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200"))
ISPS, BRANCHES = 10, 5
BATCH = 10_000


def build_app():
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="tickets-bench-"), "bench.db")
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET_KEY": os.urandom(32).hex(),
        }
    )
    return app, url


def load(app):
    """Migrate and fill the database; returns (admin token headers, a busy ticket id)."""
    random.seed(7)
    with app.app_context():
        with db.engine.begin() as connection:
            db.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        flask_migrate.upgrade()
        admin = User(
            isp_id=1,
            branch_id=1,
            name="Bench Admin",
            email="bench@example.test",
            password_hash="-",
            role="admin",
        )
        db.session.add(admin)
        db.session.flush()
        subscribers = [
            Subscriber(isp_id=isp, branch_id=branch, name=f"Subscriber {isp}-{branch}-{n}")
            for isp in range(1, ISPS + 1)
            for branch in range(1, BRANCHES + 1)
            for n in range(20)
        ]
        db.session.add_all(subscribers)
        db.session.commit()
        by_scope = {}
        for subscriber in subscribers:
            by_scope.setdefault((subscriber.isp_id, subscriber.branch_id), []).append(subscriber.id)

        start = utcnow() - timedelta(days=365)
        started = time.perf_counter()
        for offset in range(0, TICKETS, BATCH):
            rows = []
            for n in range(offset, min(offset + BATCH, TICKETS)):
                isp, branch = random.randint(1, ISPS), random.randint(1, BRANCHES)
                created = start + timedelta(seconds=n * 30)
                rows.append(
                    {
                        "isp_id": isp,
                        "branch_id": branch,
                        "subscriber_id": random.choice(by_scope[(isp, branch)] + [None]),
                        "created_by_id": admin.id,
                        "title": f"Ticket {n}",
                        "description": "Cannot connect to internet",
                        "priority": random.randint(1, 3),
                        "status": random.randint(0, 3),
                        "created_at": created,
                        "updated_at": created,
                    }
                )
            db.session.execute(insert(Ticket), rows)
            db.session.commit()
        busy = Ticket(
            isp_id=1,
            branch_id=1,
            created_by_id=admin.id,
            title="Busy",
            description="Many replies",
            priority=3,
            status=1,
        )
        db.session.add(busy)
        db.session.flush()
        db.session.execute(
            insert(TicketReply),
            [
                {"ticket_id": busy.id, "user_id": admin.id, "message": f"Reply {n}"}
                for n in range(50)
            ],
        )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                # Steady state: autovacuum keeps the visibility map current in production.
                c.execute(text("VACUUM ANALYZE"))
        print(f"loaded {TICKETS:,} tickets in {time.perf_counter() - started:.1f}s", flush=True)
        token = issue_token(admin)["access_token"]
        return {"Authorization": f"Bearer {token}"}, busy.id, admin.id


def measure(app, headers, path):
    client = app.test_client()
    statements = []
    with app.app_context():
        engine = db.engine

    def count(*_args):
        statements[-1] += 1

    event.listen(engine, "before_cursor_execute", count)
    timings = []
    try:
        for _ in range(REQUESTS):
            statements.append(0)
            began = time.perf_counter()
            response = client.get(path, headers=headers)
            timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (path, response.status_code, response.json)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], max(statements)


def main() -> int:
    app, url = build_app()
    print(f"database: {url.split('@')[-1]}  tickets: {TICKETS:,}  requests each: {REQUESTS}")
    headers, busy_id, admin_id = load(app)
    scope = f"isp_id=1&branch_id=1&user_id={admin_id}"
    cases = [
        ("list, first page of 50", f"/api/v1/tickets?{scope}"),
        ("list, status filter", f"/api/v1/tickets?{scope}&status=1"),
        ("list, priority + status", f"/api/v1/tickets?{scope}&status=0&priority=3"),
        ("list, 200 per page", f"/api/v1/tickets?{scope}&per_page=200"),
        ("list, page 100", f"/api/v1/tickets?{scope}&page=100"),
        ("fetch ticket, 50 replies", f"/api/v1/tickets/{busy_id}"),
    ]
    print(f"{'case':28} {'median ms':>10} {'p95 ms':>10} {'SQL/request':>12}")
    for name, path in cases:
        median, p95, statements = measure(app, headers, path)
        print(f"{name:28} {median:10.2f} {p95:10.2f} {statements:12d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

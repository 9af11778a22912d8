"""Time is UTC everywhere. Every database session runs in UTC, whatever the database, the
server or PGTZ say; and timestamps at both ends of their range (0001-01-01 00:00:00 and
9999-12-31 23:59:59) round-trip through every endpoint that takes one, with the database's own
zone set far east of UTC, far west, or (SQLite) not at all.

The probe's finding: with the database east of UTC, a ticket due 9999-12-31 23:59:59 made its
fetch, edit, delete and its whole branch's list answer 500 (the session wrote year 10000).
CI also runs the whole suite once with the database east of UTC and once west (.ci/run).
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from support.client import assert_success, scope_of
from support.client import call as call_as
from support.database import ON_POSTGRES, session

from tickets_service.extensions import db
from tickets_service.models import Ticket

FIRST, LAST = "0001-01-01 00:00:00", "9999-12-31 23:59:59"
# Kiribati's Line Islands are UTC+14, American Samoa UTC-11: the far ends.
ZONES = ["Pacific/Kiritimati", "Pacific/Pago_Pago"] if ON_POSTGRES else [None]


@pytest.fixture(params=ZONES, ids=lambda zone: zone or "sqlite")
def database_zone(request, app, db_url):
    """The test database's own time zone set to the parameter for the test's duration (new
    connections take it), then reset."""
    zone = request.param
    if zone is None:
        yield None
        return
    name = make_url(db_url).database

    def alter(clause: str) -> None:
        with app.app_context():
            with db.engine.begin() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" {clause}'))
            db.engine.dispose()  # every connection from now on is a new one

    with app.app_context(), db.engine.connect() as connection:
        # The zone the database had (CI sets one for the whole run): given back afterwards.
        settings = connection.execute(
            text(
                "SELECT unnest(setconfig) FROM pg_db_role_setting s"
                " JOIN pg_database d ON d.oid = s.setdatabase"
                " WHERE d.datname = :name AND s.setrole = 0"
            ),
            {"name": name},
        ).scalars()
        had = [v.split("=", 1)[1] for v in settings if v.lower().startswith("timezone=")]
    alter(f"SET timezone TO '{zone}'")
    try:
        yield zone
    finally:
        alter(f"SET timezone TO '{had[0]}'" if had else "RESET timezone")


def session_zone(app) -> str:
    with session(app) as own:
        return own.execute(text("SHOW timezone")).scalar_one()


@pytest.mark.postgres
@pytest.mark.skipif(not ON_POSTGRES, reason="needs TEST_DATABASE_URL pointing at PostgreSQL")
def test_every_session_runs_in_utc_whatever_the_database_says(app, database_zone):
    with app.app_context(), db.engine.connect() as connection:
        # What a session that did not set its own zone would run in:
        raw = connection.exec_driver_sql("SELECT current_setting('TimeZone')").scalar_one()
    assert session_zone(app) == "UTC"
    assert raw == "UTC"  # the app's connections set it on connect, this one included


@pytest.mark.postgres
@pytest.mark.skipif(not ON_POSTGRES, reason="needs TEST_DATABASE_URL pointing at PostgreSQL")
def test_sessions_run_in_utc_whatever_pgtz_says(make_app, monkeypatch):
    monkeypatch.setenv("PGTZ", "Asia/Tokyo")
    assert session_zone(make_app()) == "UTC"


def call(client, account, method, path, body=None, **query):
    """A request as `account`, with its own scope and then `query` in the query string."""
    return call_as(client, account, method, path, body, {**scope_of(account), **query})


@pytest.mark.parametrize("bound", [FIRST, LAST], ids=["first", "last"])
def test_a_due_time_at_either_end_round_trips_through_every_ticket_endpoint(
    client, admin, database_zone, fetch, bound
):
    other = LAST if bound == FIRST else FIRST
    body = {"title": "Bound", "description": "At the edge of time", "priority": 2}
    created = call(client, admin, "POST", "/api/v1/tickets", {**body, "due_at": bound})
    ticket_id = assert_success(created, 201)["data"]["id"]
    path = f"/api/v1/tickets/{ticket_id}"

    assert assert_success(call(client, admin, "GET", path), 200)["data"]["due_at"] == bound
    for sort in ("due_at", "-due_at", "-created_at"):
        listed = assert_success(call(client, admin, "GET", "/api/v1/tickets", sort=sort), 200)
        assert [(t["id"], t["due_at"]) for t in listed["data"]] == [(ticket_id, bound)]
    for overdue in ("true", "false"):
        assert_success(call(client, admin, "GET", "/api/v1/tickets", overdue=overdue), 200)
    assert_success(call(client, admin, "GET", "/api/v1/tickets/stats"), 200)

    assert_success(call(client, admin, "PUT", path, {"due_at": other}), 200)
    assert assert_success(call(client, admin, "GET", path), 200)["data"]["due_at"] == other
    history = assert_success(call(client, admin, "GET", f"{path}/history"), 200)["data"]
    assert [(h["old"], h["new"]) for h in history if h["field"] == "due_at"] == [(bound, other)]
    assert_success(call(client, admin, "PUT", path, {"due_at": bound}), 200)
    assert_success(call(client, admin, "POST", f"{path}/reply", {"message": "Noted."}), 201)
    assert_success(call(client, admin, "PUT", f"{path}/status", {"status": 1}), 200)
    assert_success(call(client, admin, "GET", f"{path}/replies"), 200)
    assert_success(call(client, admin, "DELETE", path), 200)
    deleted = call(client, admin, "GET", "/api/v1/tickets", deleted="only")
    assert [t["due_at"] for t in assert_success(deleted, 200)["data"]] == [bound]
    assert_success(call(client, admin, "POST", f"{path}/restore"), 200)
    assert str(fetch(Ticket, ticket_id)["due_at"])[:4] == bound[:4]


@pytest.mark.parametrize(
    "query",
    [
        {"created_from": FIRST, "created_to": LAST},
        {"created_from": FIRST[:10], "created_to": LAST[:10]},
        {"updated_since": FIRST},
        {"updated_since": LAST},
        {"created_to": LAST, "sort": "due_at"},
    ],
    ids=["full-range", "dates", "updated-since-first", "updated-since-last", "sorted"],
)
def test_list_bounds_at_either_end_are_answered(client, admin, make_ticket, database_zone, query):
    ticket_id = make_ticket(admin)
    listed = assert_success(call(client, admin, "GET", "/api/v1/tickets", **query), 200)
    expected = [] if query.get("updated_since") == LAST else [ticket_id]
    assert [t["id"] for t in listed["data"]] == expected


def test_a_cursor_walks_past_due_times_at_both_ends(client, admin, make_ticket, database_zone):
    moments = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    ids = [make_ticket(admin, due_at=moment) for moment in moments]
    seen, cursor = [], None
    while True:
        query = {"sort": "-due_at", "per_page": 1, **({"cursor": cursor} if cursor else {})}
        page = assert_success(call(client, admin, "GET", "/api/v1/tickets", **query), 200)
        seen += [t["id"] for t in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]

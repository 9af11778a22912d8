"""The desk's sweep (tickets_service.desk.sweep, `flask desk sweep`, the Procfile's clock):
resolved tickets close, as the system, once their ISP's auto_close_days have passed since they
were resolved; the SLA's warnings (at 80% of a deadline's time) and breaches are recorded, and
so sent to the webhooks that want them, once per deadline, only while a ticket's clock runs.
Time passes by handing the sweep the moment it runs at, never by sleeping; a second sweep at
the same moment changes nothing. On PostgreSQL the sweep finds its work through its two
partial indexes, never a scan of the tickets table."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text
from support.client import assert_success, call, create_ticket, get, reply, set_status
from support.database import as_utc, explain, history_in_db, plan_nodes, session, set_columns, stamp
from support.urls import WEBHOOKS, ticket_url

from tickets_service.desk import sweep, sweep_command
from tickets_service.extensions import db
from tickets_service.models import (
    SYSTEM_NAME,
    IspSettings,
    SlaPolicy,
    Ticket,
    TicketHistory,
    WebhookDelivery,
    utcnow,
)
from tickets_service.webhooks import worker

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = "/api/v1/settings"
FAULT_POLICY = "/api/v1/sla-policies/fault/3"
POLICY = {"first_response_minutes": 10, "resolve_minutes": 100}
NOTHING = {"closed": 0, "sla_events": 0}
SECOND = timedelta(seconds=1)


def sweep_at(app, moment=None) -> dict:
    """One sweep, as the clock runs it, at `moment` (None: now)."""
    with session(app):
        return sweep(now=moment)


def put_settings(client, admin, **values) -> dict:
    response = call(client, admin, "PUT", SETTINGS, values)
    return assert_success(response, 200, "Settings updated successfully")["data"]


def resolve(client, account, fetch, ticket_id: int):
    """Resolve the ticket through the API; when it was resolved, as stored."""
    response = set_status(client, account, ticket_id, 2)
    assert_success(response, 200, "Ticket status updated successfully")
    return as_utc(fetch(Ticket, ticket_id)["resolved_at"])


def resolved_ticket(client, account, fetch):
    """A ticket created and resolved through the API: (its id, when it was resolved)."""
    ticket_id = create_ticket(client, account)
    return ticket_id, resolve(client, account, fetch, ticket_id)


def sweep_state(rows) -> dict:
    """What a sweep may change: the tickets and their history."""
    return {"tickets": rows(Ticket), "ticket_history": rows(TicketHistory)}


# --- Auto-close ---------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [None, 3, 1], ids=["default 7 days", "3 days", "1 day"])
def test_a_resolved_ticket_closes_once_its_days_have_passed_and_not_before(
    app, client, admin, staff, fetch, rows, days
):
    if days is not None:
        put_settings(client, admin, auto_close_days=days)
    wait = timedelta(days=7 if days is None else days)
    ticket_id, resolved_at = resolved_ticket(client, staff, fetch)

    assert sweep_at(app, resolved_at + wait - SECOND) == NOTHING
    assert fetch(Ticket, ticket_id)["status"] == 2
    assert sweep_at(app, resolved_at + wait) == {"closed": 1, "sla_events": 0}

    row = fetch(Ticket, ticket_id)
    assert (row["status"], as_utc(row["resolved_at"])) == (3, resolved_at)
    assert row["closed_at"] is not None and as_utc(row["closed_at"]) >= resolved_at
    assert history_in_db(rows, ticket_id)[-1] == ("status_changed", "status", 2, 3, staff.id)


def test_with_auto_close_days_0_the_next_sweep_closes_a_resolved_ticket(
    app, client, admin, staff, fetch
):
    assert put_settings(client, admin, auto_close_days=0)["auto_close_days"] == 0
    ticket_id, _ = resolved_ticket(client, staff, fetch)

    assert sweep_at(app) == {"closed": 1, "sla_events": 0}

    assert fetch(Ticket, ticket_id)["status"] == 3


def test_with_the_default_a_ticket_resolved_6_days_ago_stays_and_one_of_7_days_closes(
    app, client, staff, fetch, rows
):
    recent, _ = resolved_ticket(client, staff, fetch)
    old, _ = resolved_ticket(client, staff, fetch)
    set_columns(app, Ticket, recent, resolved_at=utcnow() - timedelta(days=6))
    set_columns(app, Ticket, old, resolved_at=utcnow() - timedelta(days=7, minutes=1))
    recent_before = fetch(Ticket, recent)

    assert sweep_at(app) == {"closed": 1, "sla_events": 0}

    assert fetch(Ticket, recent) == recent_before
    assert fetch(Ticket, old)["status"] == 3
    assert rows(IspSettings) == []


@pytest.mark.parametrize(
    ("setter", "days", "later"),
    [("other_admin", 0, 1), ("other_admin", 3, 4), ("admin", 30, 8)],
    ids=["theirs 0", "theirs 3", "mine 30"],
)
def test_one_isps_auto_close_days_never_affect_anothers_tickets(
    request, app, client, admin, other_admin, fetch, setter, days, later
):
    """The ISP that sets its days is swept by them; the other keeps the default (7)."""
    put_settings(client, request.getfixturevalue(setter), auto_close_days=days)
    mine, mine_at = resolved_ticket(client, admin, fetch)
    theirs, theirs_at = resolved_ticket(client, other_admin, fetch)

    done = sweep_at(app, max(mine_at, theirs_at) + timedelta(days=later))

    # One of them closes: the one whose days (its own or the default) have passed.
    mine_closes = (days if setter == "admin" else 7) <= later
    theirs_closes = (days if setter == "other_admin" else 7) <= later
    assert done == {"closed": int(mine_closes) + int(theirs_closes), "sla_events": 0}
    assert fetch(Ticket, mine)["status"] == (3 if mine_closes else 2)
    assert fetch(Ticket, theirs)["status"] == (3 if theirs_closes else 2)
    assert mine_closes != theirs_closes


def test_the_close_is_recorded_as_the_system(app, client, admin, staff, fetch, rows):
    put_settings(client, admin, auto_close_days=0)
    ticket_id, _ = resolved_ticket(client, staff, fetch)

    sweep_at(app)

    body = assert_success(get(client, staff, ticket_url(ticket_id, "/history")), 200)
    shown = body["data"][-1]
    assert {name: shown[name] for name in ("action", "field", "old", "new")} == {
        "action": "status_changed",
        "field": "status",
        "old": 2,
        "new": 3,
    }
    assert (shown["user_id"], shown["user_name"], shown["key_id"]) == (None, SYSTEM_NAME, None)
    assert SYSTEM_NAME == "Network operations"
    stored = rows(TicketHistory)[-1]
    assert (stored["id"], stored["action"], stored["system"]) == (
        shown["id"],
        "status_changed",
        True,
    )
    assert body["meta"]["total"] == len(history_in_db(rows, ticket_id)) == 3


@pytest.mark.parametrize("then", ["deleted", "reopened", "in progress again", "closed by hand"])
def test_a_ticket_deleted_reopened_or_closed_after_resolution_is_not_closed(
    app, client, admin, staff, fetch, rows, then
):
    ticket_id, resolved_at = resolved_ticket(client, staff, fetch)
    if then == "deleted":
        response = call(client, admin, "DELETE", ticket_url(ticket_id))
        assert_success(response, 200, "Ticket deleted successfully")
    else:
        status = {"reopened": 0, "in progress again": 1, "closed by hand": 3}[then]
        assert_success(set_status(client, staff, ticket_id, status), 200)
    before = sweep_state(rows)

    assert sweep_at(app, resolved_at + timedelta(days=30)) == NOTHING

    assert sweep_state(rows) == before


def test_a_second_sweep_at_once_changes_nothing(
    app, client, admin, staff, fault_policy, fetch, rows
):
    resolved_ticket(client, staff, fetch)
    resolved_ticket(client, staff, fetch)
    ticket_id, created = fault_ticket(client, staff, fetch)
    moment = created + timedelta(days=8)

    first = sweep_at(app, moment)
    after_first = sweep_state(rows)
    second = sweep_at(app, moment)

    assert first == {"closed": 2, "sla_events": 2}  # the two breaches alone: both missed
    assert second == NOTHING
    assert sweep_state(rows) == after_first
    assert fetch(Ticket, ticket_id)["sla_next_at"] is None


# --- The command and the clock ------------------------------------------------------------------


def test_flask_desk_sweep_sweeps_once_and_says_what_it_did(
    app, client, admin, staff, runner, fetch, rows
):
    put_settings(client, admin, auto_close_days=0)
    ticket_id, _ = resolved_ticket(client, staff, fetch)

    result = runner.invoke(args=["desk", "sweep"])

    assert result.exit_code == 0, result.output
    assert result.output == "closed 1 tickets, sent 0 SLA events\n"
    assert fetch(Ticket, ticket_id)["status"] == 3
    assert history_in_db(rows, ticket_id)[-1] == ("status_changed", "status", 2, 3, staff.id)
    before = sweep_state(rows)
    again = runner.invoke(args=["desk", "sweep"])
    assert (again.exit_code, again.output) == (0, "closed 0 tickets, sent 0 SLA events\n")
    assert sweep_state(rows) == before


@pytest.mark.parametrize("every", ["0", "86401", "-5", "soon", ""])
def test_flask_desk_sweep_refuses_a_bad_interval_and_sweeps_nothing(
    client, admin, staff, runner, fetch, rows, every
):
    put_settings(client, admin, auto_close_days=0)
    resolved_ticket(client, staff, fetch)
    before = sweep_state(rows)

    result = runner.invoke(args=["desk", "sweep", "--every", every])

    assert result.exit_code == 2
    assert "--every" in result.output
    assert sweep_state(rows) == before


def test_the_procfiles_clock_sweeps_every_minute():
    lines = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )

    assert lines["clock"].strip() == "flask --app wsgi desk sweep --every 60"
    # What the clock's arguments mean to the command (parsed, not run: it never returns).
    context = sweep_command.make_context("sweep", ["--every", "60"])
    assert context.params == {"every": 60}


# --- SLA events ---------------------------------------------------------------------------------


@pytest.fixture
def fault_policy(client, admin, rows) -> None:
    """ISP 1's policy for fault tickets of priority 3: a first response within 10 minutes, a
    resolution within 100, round the clock."""
    response = call(client, admin, "PUT", FAULT_POLICY, POLICY)
    data = assert_success(response, 201, "SLA policy saved successfully")["data"]
    assert (data["type"], data["priority"], data["business_hours"]) == ("fault", 3, None)
    [stored] = rows(SlaPolicy)
    assert (stored["first_response_minutes"], stored["resolve_minutes"]) == (10, 100)


def fault_ticket(client, account, fetch):
    """A fault ticket of priority 3 created through the API: (its id, when it was created);
    its deadlines are its policy's."""
    ticket_id = create_ticket(client, account, type="fault", priority=3)
    row = fetch(Ticket, ticket_id)
    created = as_utc(row["created_at"])
    assert as_utc(row["response_due_at"]) == created + timedelta(minutes=10)
    assert as_utc(row["due_at"]) == created + timedelta(minutes=100)
    return ticket_id, created


def sla_entries(rows, ticket_id: int) -> list[tuple]:
    """The ticket's SLA events, as recorded: (action, deadline, its time), oldest first."""
    return [
        (row["action"], row["field"], row["new"])
        for row in rows(TicketHistory)
        if row["ticket_id"] == ticket_id and row["action"] in ("sla_warning", "sla_breached")
    ]


def expected(created, *events: tuple[str, str]) -> list[tuple]:
    """SLA entries of a ticket created then under the fault policy: the deadline's time."""
    minutes = {"response_due_at": 10, "due_at": 100}
    return [
        (action, field, stamp(created + timedelta(minutes=minutes[field])))
        for action, field in events
    ]


RESPONSE_WARNING = ("sla_warning", "response_due_at")
RESPONSE_BREACH = ("sla_breached", "response_due_at")
RESOLUTION_WARNING = ("sla_warning", "due_at")
RESOLUTION_BREACH = ("sla_breached", "due_at")

# Minutes after the ticket's creation a sweep runs at, and the events it sends then.
TIMELINE = [
    (7, []),
    (8, [RESPONSE_WARNING]),
    (9, []),
    (11, [RESPONSE_BREACH]),
    (11, []),
    (12, []),
    (79, []),
    (80, [RESOLUTION_WARNING]),
    (99, []),
    (100, [RESOLUTION_BREACH]),
    (101, []),
    (60 * 24 * 30, []),
]


def test_each_sla_event_is_sent_once_when_it_falls_due(
    app, client, staff, fault_policy, fetch, rows
):
    ticket_id, created = fault_ticket(client, staff, fetch)

    for minutes, events in TIMELINE:
        before = sla_entries(rows, ticket_id)
        done = sweep_at(app, created + timedelta(minutes=minutes))
        sent = sla_entries(rows, ticket_id)[len(before) :]
        assert (minutes, done, sent) == (
            minutes,
            {"closed": 0, "sla_events": len(events)},
            expected(created, *events),
        )
    assert fetch(Ticket, ticket_id)["sla_next_at"] is None


def test_sla_events_reach_a_webhook_subscribed_to_them(
    app, client, admin, staff, fault_policy, fetch, rows
):
    body = {
        "url": "https://93.184.216.34/hooks/sla",
        "events": ["ticket.sla_warning", "ticket.sla_breached"],
    }
    response = call(client, admin, "POST", WEBHOOKS, body)
    endpoint_id = assert_success(response, 201, "Webhook created successfully")["data"]["id"]
    ticket_id, created = fault_ticket(client, staff, fetch)
    sweep_at(app, created + timedelta(minutes=8))
    sweep_at(app, created + timedelta(minutes=11))

    with session(app):
        worker.dispatch()

    entries = {
        row["action"]: row["id"]
        for row in rows(TicketHistory)
        if row["ticket_id"] == ticket_id and row["action"].startswith("sla_")
    }
    delivered = sorted(
        (row["history_id"], row["endpoint_id"], row["event"]) for row in rows(WebhookDelivery)
    )
    assert delivered == [
        (entries["sla_warning"], endpoint_id, "ticket.sla_warning"),
        (entries["sla_breached"], endpoint_id, "ticket.sla_breached"),
    ]
    assert all(row["dispatched_at"] is not None for row in rows(TicketHistory))


@pytest.mark.parametrize(
    ("internal", "events"),
    [
        (False, [RESOLUTION_WARNING]),
        (True, [RESPONSE_WARNING, RESPONSE_BREACH, RESOLUTION_WARNING]),
    ],
    ids=["a public reply stops them", "an internal note does not"],
)
def test_a_first_public_reply_before_the_deadline_stops_the_response_events(
    app, client, staff, fault_policy, fetch, rows, internal, events
):
    ticket_id, created = fault_ticket(client, staff, fetch)
    response = reply(client, staff, ticket_id, internal=internal)
    assert_success(response, 201, "Reply added successfully")
    assert (fetch(Ticket, ticket_id)["first_response_at"] is None) is internal

    for minutes in (8, 11, 80):
        sweep_at(app, created + timedelta(minutes=minutes))

    assert sla_entries(rows, ticket_id) == expected(created, *events)


@pytest.mark.parametrize("status", [2, 3, 4], ids=["resolved", "closed", "waiting"])
def test_a_resolved_closed_or_waiting_ticket_gets_no_sla_events(
    app, client, staff, fault_policy, fetch, rows, status
):
    ticket_id, created = fault_ticket(client, staff, fetch)
    assert_success(set_status(client, staff, ticket_id, status), 200)

    for minutes in (8, 11, 80, 100, 1000):
        done = sweep_at(app, created + timedelta(minutes=minutes))
        assert done["sla_events"] == 0

    assert sla_entries(rows, ticket_id) == []
    assert fetch(Ticket, ticket_id)["status"] == status


@pytest.mark.parametrize(
    ("first", "events", "afterwards"),
    [
        (11, [RESPONSE_BREACH], [RESOLUTION_BREACH]),
        (101, [RESPONSE_BREACH, RESOLUTION_BREACH], []),
    ],
    ids=["response missed", "both missed"],
)
def test_a_deadline_already_missed_when_first_seen_gets_its_breach_alone(
    app, client, staff, fault_policy, fetch, rows, first, events, afterwards
):
    ticket_id, created = fault_ticket(client, staff, fetch)

    done = sweep_at(app, created + timedelta(minutes=first))

    assert done == {"closed": 0, "sla_events": len(events)}
    assert sla_entries(rows, ticket_id) == expected(created, *events)
    sweep_at(app, created + timedelta(days=1))
    assert sla_entries(rows, ticket_id) == expected(created, *events, *afterwards)


def test_another_isps_policy_never_gives_this_isps_tickets_deadlines(
    app, client, other_admin, fault_policy, fetch, rows
):
    ticket_id = create_ticket(client, other_admin, type="fault", priority=3)
    row = fetch(Ticket, ticket_id)

    assert (row["response_due_at"], row["due_at"], row["sla_next_at"]) == (None, None, None)
    assert sweep_at(app, as_utc(row["created_at"]) + timedelta(days=1)) == NOTHING
    assert sla_entries(rows, ticket_id) == []


# --- The plans (PostgreSQL) ---------------------------------------------------------------------


@pytest.fixture
def big_desk(app, db_url, admin):
    """30,000 tickets of ISP 1, analysed: 1% resolved (a third of those long enough ago to
    close), 1% with an SLA event planned (half of them due)."""
    if not db_url.startswith("postgres"):
        pytest.skip("needs TEST_DATABASE_URL pointing at PostgreSQL")
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tickets (isp_id, branch_id, created_by_id, title, description, "
                "priority, status, resolved_at, sla_next_at, reply_count, version, created_at, "
                "updated_at) "
                "SELECT 1, 1, :author, 'Ticket ' || n, 'Case ' || n, 1 + n % 3, "
                "CASE WHEN n % 100 = 0 THEN 2 ELSE n % 2 END, "
                "CASE WHEN n % 100 = 0 THEN now() - n * interval '1 minute' END, "
                "CASE WHEN n % 100 = 1 THEN now() + (n - 15000) * interval '1 minute' END, "
                "0, 1, now() - n * interval '1 minute', now() - n * interval '1 minute' "
                "FROM generate_series(1, 30000) AS n"
            ),
            {"author": admin.id},
        )
        connection.execute(text("ANALYZE"))


def sweep_statements(app) -> list[tuple[str, dict]]:
    """The statements a sweep (now) runs on tickets, with their parameters."""
    seen = []

    def capture(_connection, _cursor, statement, parameters, *_args):
        if "FROM tickets" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        done = sweep_at(app)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert done["closed"] > 0  # the plans are of a sweep that had work to do
    return seen


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("column", "index"),
    [("sla_next_at", "ix_tickets_sla_next"), ("resolved_at", "ix_tickets_resolved")],
    ids=["sla events", "auto-close"],
)
def test_the_sweep_finds_its_tickets_through_its_index(app, big_desk, column, index):
    statements = [(s, p) for s, p in sweep_statements(app) if f"tickets.{column} <=" in s]
    assert statements, "the sweep ran no such query"

    plan = explain(app, *statements[0])

    on_tickets = [n for n in plan_nodes(plan) if n.get("Relation Name") == "tickets"]
    assert on_tickets, plan
    assert not [n for n in on_tickets if n["Node Type"] == "Seq Scan"], plan
    assert index in {n.get("Index Name") for n in plan_nodes(plan)}, plan

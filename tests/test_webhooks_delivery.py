"""The worker takes events from the history outbox to a real HTTP receiver on 127.0.0.1, signed;
retries with the same delivery id, backing off with jitter, then fails; never follows a
redirect; loses nothing when it dies; shares the outbox with other workers. Time passes by
moving next_attempt_at into the past, never by sleeping."""

import json
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support.client import assert_success, call, create_ticket
from support.database import ON_POSTGRES, TIMESTAMP, as_utc, read_rows, set_columns
from support.urls import DELIVERIES, WEBHOOKS, ticket_url
from support.webhooks import Receiver, Redirect, Slow, Trickle, verify_signature, work

from tickets_service.config import normalize_database_url
from tickets_service.models import (
    DeliveryStatus,
    HistoryAction,
    TicketHistory,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from tickets_service.webhooks import worker
from tickets_service.webhooks.events import EVENT_TYPES, EVENTS, INTERNAL
from tickets_service.webhooks.worker import MAX_TRIES, RETRY_DELAYS

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def hooks(app, make_app):
    """The app the worker runs in: private hosts allowed (the receiver is on loopback), and a
    one-second timeout so a slow receiver costs one second."""
    return make_app(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_TIMEOUT=1)


@pytest.fixture
def client(hooks):
    """Every request of these tests goes through the app that allows the loopback receiver."""
    return hooks.test_client()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def register(client, admin, receiver, events=EVENT_TYPES, path="/hook") -> dict:
    body = {"url": receiver.url(path), "events": list(events)}
    return assert_success(call(client, admin, "POST", WEBHOOKS, body), 201)["data"]


def deliveries(app, *columns) -> list:
    """Every delivery's row; or, given columns, a tuple of them for each."""
    rows = read_rows(app, WebhookDelivery)
    return [tuple(row[c] for c in columns) for row in rows] if columns else rows


def attempts(app) -> list[dict]:
    return read_rows(app, WebhookAttempt)


def let_time_pass(app) -> None:
    """Every pending delivery is due now (as if its retry delay had passed), and every
    endpoint's lease and rest are over."""
    pending, past = (
        WebhookDelivery.status == DeliveryStatus.PENDING,
        utcnow() - timedelta(seconds=1),
    )
    set_columns(app, WebhookDelivery, pending, next_attempt_at=past, leased_until=None)
    set_columns(app, WebhookEndpoint, WebhookEndpoint.paused_until.is_not(None), paused_until=None)


def act(client, account, ticket_id, method, suffix="", body=None):
    """A change to a ticket, which succeeds: a reply is 201, anything else 200."""
    response = call(client, account, method, ticket_url(ticket_id, suffix), body)
    assert_success(response, 201 if suffix == "/reply" else 200)


# --- Each event type, signed ------------------------------------------------------------------

# What makes each event on a new ticket: (method, path suffix, body), "staff" standing for the
# staff user's id; and the data the event carries.
REQUESTS = {
    "ticket.created": [],
    "ticket.updated": [("PUT", "", {"title": "Faster"})],
    "ticket.status_changed": [("PUT", "/status", {"status": 2})],
    "ticket.assigned": [("PUT", "", {"assignee_id": "staff"})],
    "ticket.replied/public": [("POST", "/reply", {"message": "On it."})],
    "ticket.replied/internal": [("POST", "/reply", {"message": "Note", "internal": True})],
    "ticket.deleted": [("DELETE", "", None)],
    "ticket.restored": [("DELETE", "", None), ("POST", "/restore", None)],
}
NO_CHANGE = {"field": None, "old": None, "new": None}
DATA = {
    "ticket.created": NO_CHANGE,
    "ticket.updated": {"field": "title", "old": "Slow", "new": "Faster"},
    "ticket.status_changed": {"field": "status", "old": 0, "new": 2},
    "ticket.assigned": {"field": "assignee_id", "old": None, "new": "staff"},
    "ticket.replied/public": {"internal": False},
    "ticket.replied/internal": {"internal": True},
    "ticket.deleted": NO_CHANGE,
    "ticket.restored": NO_CHANGE,
}


def make_event(client, admin, staff, ticket_id, case):
    for method, suffix, body in REQUESTS[case]:
        body = body and {name: staff.id if v == "staff" else v for name, v in body.items()}
        act(client, admin, ticket_id, method, suffix, body)


def test_an_event_made_with_an_api_key_names_the_key_and_no_user(
    hooks, client, admin, make_key, receiver
):
    register(client, admin, receiver, events=["ticket.created", "ticket.replied"])
    key = make_key(admin, scopes=["tickets:write"])
    ticket_id = create_ticket(client, key)
    act(client, key, ticket_id, "POST", "/reply", {"message": "Seen by the NOC."})

    assert work(hooks) == 2

    sent = {got.json["event"]: got.json["data"] for got in receiver.received}
    assert sent == {
        "ticket.created": {**NO_CHANGE, "user_id": None, "key_id": key.id},
        "ticket.replied": {"user_id": None, "key_id": key.id, "internal": False},
    }


@pytest.mark.parametrize("case", list(REQUESTS))
def test_the_worker_delivers_each_event_type_signed(
    app, hooks, client, admin, staff, receiver, case
):
    event, data = case.split("/")[0], DATA[case]
    secret = register(client, admin, receiver, events=[event])["secret"]
    ticket_id = create_ticket(client, admin)
    make_event(client, admin, staff, ticket_id, case)

    assert work(hooks) == 1

    (got,) = receiver.received
    assert (got.method, got.path) == ("POST", "/hook")
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Tickets-Event"] == event
    assert UUID.fullmatch(got.delivery_id)
    assert abs(int(got.headers["X-Tickets-Timestamp"]) - time.time()) < 60
    assert verify_signature(secret, got.headers, got.body)
    assert not verify_signature(secret + "x", got.headers, got.body)
    assert not verify_signature(secret, got.headers, got.body + b" ")
    body = got.json
    assert TIMESTAMP.fullmatch(body.pop("occurred_at"))
    if data.get("new") == "staff":
        data = {**data, "new": staff.id}
    assert body == {
        "delivery_id": got.delivery_id,
        "event": event,
        "isp_id": admin.isp_id,
        "ticket_id": ticket_id,
        "data": {**data, "user_id": admin.id, "key_id": None},
    }
    delivered = (got.delivery_id, DeliveryStatus.DELIVERED, 1)
    assert deliveries(app, "delivery_id", "status", "attempts") == [delivered]


def test_every_change_reaches_an_endpoint_of_all_events_in_order(
    app, hooks, client, admin, staff, receiver
):
    register(client, admin, receiver)
    ticket_id = create_ticket(client, admin)
    for case in list(REQUESTS)[1:-1]:  # the last case deletes again before restoring
        make_event(client, admin, staff, ticket_id, case)
    act(client, admin, ticket_id, "POST", "/restore")

    work(hooks)

    # Attempts go out side by side (the contract: order by occurred_at, or here by the
    # history entry each delivery is for).
    entry_of = {d["delivery_id"]: d["history_id"] for d in deliveries(app)}
    received = sorted(receiver.received, key=lambda r: entry_of[r.delivery_id])
    events = [(r.json["event"], r.json["data"].get("internal")) for r in received]
    assert events == [(case.split("/")[0], DATA[case].get("internal")) for case in DATA]
    assert len({r.delivery_id for r in receiver.received}) == len(events)


# --- Which events reach which endpoint --------------------------------------------------------


def test_only_events_of_the_endpoints_own_isp_reach_it(hooks, client, admin, other_admin, receiver):
    register(client, admin, receiver, path="/isp1")
    register(client, other_admin, receiver, path="/isp2")
    mine = [create_ticket(client, admin) for _ in range(2)]
    theirs = [create_ticket(client, other_admin) for _ in range(3)]
    act(client, other_admin, theirs[0], "PUT", "/status", {"status": 1})

    work(hooks)

    to_isp1 = [r.json for r in receiver.at("/isp1")]
    to_isp2 = [r.json for r in receiver.at("/isp2")]
    assert sorted(body["ticket_id"] for body in to_isp1) == mine
    assert sorted(body["ticket_id"] for body in to_isp2) == sorted([*theirs, theirs[0]])
    assert {body["isp_id"] for body in to_isp1} == {admin.isp_id}
    assert {body["isp_id"] for body in to_isp2} == {other_admin.isp_id}


def test_events_from_before_the_endpoint_was_registered_are_not_sent(
    hooks, client, admin, receiver
):
    ticket_id = create_ticket(client, admin)
    act(client, admin, ticket_id, "POST", "/reply", {"message": "Before"})
    register(client, admin, receiver)
    act(client, admin, ticket_id, "PUT", "/status", {"status": 1})

    work(hooks)

    assert [r.json["event"] for r in receiver.received] == ["ticket.status_changed"]


def test_an_endpoint_gets_only_the_events_it_subscribed_to(hooks, client, admin, receiver):
    register(client, admin, receiver, events=["ticket.status_changed", "ticket.deleted"], path="/a")
    register(client, admin, receiver, path="/all")
    ticket_id = create_ticket(client, admin)
    act(client, admin, ticket_id, "PUT", "", {"title": "Faster"})
    act(client, admin, ticket_id, "PUT", "/status", {"status": 3})
    act(client, admin, ticket_id, "POST", "/reply", {"message": "Closed."})
    act(client, admin, ticket_id, "DELETE")

    work(hooks)

    # Sent side by side, they may arrive in any order (docs/webhooks.md).
    events = sorted(r.json["event"] for r in receiver.at("/a"))
    assert events == ["ticket.deleted", "ticket.status_changed"]
    assert len(receiver.at("/all")) == 5


# --- Retries ----------------------------------------------------------------------------------


SETTLED = ("status", "attempts", "next_attempt_at")


def gap_seconds(attempt: dict) -> float:
    return (as_utc(attempt["next_attempt_at"]) - as_utc(attempt["attempted_at"])).total_seconds()


@pytest.mark.parametrize(
    "failure", [500, 503, 404, Slow(1.5)], ids=["500", "503", "404", "timeout"]
)
def test_a_failed_delivery_is_retried_with_the_same_id_after_backoff_with_jitter(
    app, hooks, client, admin, receiver, failure
):
    register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)
    receiver.plan = [failure, failure, 200]
    code = None if isinstance(failure, Slow) else failure

    assert work(hooks) == 1
    assert work(hooks) == 0  # the retry is not due yet
    first = attempts(app)
    assert [a["status_code"] for a in first] == [code]
    assert 8 <= gap_seconds(first[0]) <= 12

    let_time_pass(app)
    assert work(hooks) == 1
    second = attempts(app)[1]
    assert second["status_code"] == code
    assert 36 <= gap_seconds(second) <= 54

    let_time_pass(app)
    assert work(hooks) == 1

    assert deliveries(app, *SETTLED) == [(DeliveryStatus.DELIVERED, 3, None)]
    assert [a["status_code"] for a in attempts(app)] == [code, code, 200]
    assert [r.delivery_id for r in receiver.received] == [deliveries(app)[0]["delivery_id"]] * 3
    assert len({r.body for r in receiver.received}) == 1


def test_after_max_tries_the_delivery_is_failed_and_never_sent_again(
    app, hooks, client, admin, receiver
):
    register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)
    receiver.plan = [500] * (MAX_TRIES + 1)

    for _ in range(MAX_TRIES + 2):
        work(hooks)
        let_time_pass(app)

    assert deliveries(app, *SETTLED) == [(DeliveryStatus.FAILED, MAX_TRIES, None)]
    assert len(receiver.received) == MAX_TRIES == 8
    assert {r.delivery_id for r in receiver.received} == {deliveries(app)[0]["delivery_id"]}
    tries = attempts(app)
    for attempt, delay in zip(tries, RETRY_DELAYS, strict=False):
        assert 0.8 * delay <= gap_seconds(attempt) <= 1.2 * delay
    assert tries[-1]["next_attempt_at"] is None
    assert sum(RETRY_DELAYS) <= 24 * 3600  # about eight tries over a day


def test_a_redirect_is_not_followed_and_counts_as_a_failure(app, hooks, client, admin, receiver):
    register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)
    receiver.plan = [Redirect("/elsewhere")]

    work(hooks)

    assert [r.path for r in receiver.received] == ["/hook"]
    assert receiver.at("/elsewhere") == []
    assert [a["status_code"] for a in attempts(app)] == [302]
    assert deliveries(app, "status", "attempts") == [(DeliveryStatus.PENDING, 1)]


def test_an_answer_that_takes_longer_than_the_timeout_in_total_is_a_timeout(
    app, hooks, client, admin, receiver
):
    register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)
    receiver.plan = [Trickle(lines=6, interval=0.5)]  # every read quick, 3 s in all

    started = time.monotonic()
    work(hooks)
    elapsed = time.monotonic() - started

    assert [a["status_code"] for a in attempts(app)] == [None]
    assert elapsed < 2.5  # WEBHOOK_TIMEOUT is 1 s
    assert deliveries(app)[0]["status"] == DeliveryStatus.PENDING


def test_the_worker_checks_the_destination_again_before_each_delivery(
    app, hooks, client, admin, receiver
):
    """An endpoint accepted once (here: private hosts allowed then, not now; in real life a
    host name that now resolves to a private address) is never called where it must not be."""
    register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)

    assert work(app) == 1  # the test app: WEBHOOK_ALLOW_PRIVATE off

    assert receiver.received == []
    assert [a["status_code"] for a in attempts(app)] == [None]
    assert deliveries(app)[0]["status"] == DeliveryStatus.PENDING


# --- Following deliveries, redelivering -------------------------------------------------------


def test_the_deliveries_list_shows_every_attempt_newest_first(app, hooks, client, admin, receiver):
    webhook = register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)
    receiver.plan = [Slow(1.5), 200]
    work(hooks)
    let_time_pass(app)
    work(hooks)

    response = call(client, admin, "GET", f"{WEBHOOKS}/{webhook['id']}/deliveries")

    body = assert_success(response, 200)
    (delivery_id,) = {r.delivery_id for r in receiver.received}
    assert [set(item) for item in body["data"]] == [
        {"delivery_id", "event", "status_code", "attempted_at", "next_attempt_at"}
    ] * 2
    success, timeout = body["data"]
    assert (success["delivery_id"], success["event"]) == (delivery_id, "ticket.created")
    assert (timeout["delivery_id"], timeout["event"]) == (delivery_id, "ticket.created")
    assert (success["status_code"], success["next_attempt_at"]) == (200, None)
    assert timeout["status_code"] is None
    assert TIMESTAMP.fullmatch(timeout["next_attempt_at"])
    assert TIMESTAMP.fullmatch(success["attempted_at"])
    assert timeout["attempted_at"] <= success["attempted_at"]
    assert body["meta"]["total"] == 2


@pytest.mark.parametrize("spelling", [str.lower, str.upper], ids=["lower", "upper"])
def test_redeliver_sends_the_same_event_again_under_a_new_delivery_id(
    app, hooks, client, admin, receiver, spelling
):
    """A delivery id is a UUID, whose hex digits may be written in either case."""
    register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)
    work(hooks)
    (first,) = receiver.received

    url = f"{DELIVERIES}/{spelling(first.delivery_id)}/redeliver"
    response = call(client, admin, "POST", url)

    data = assert_success(response, 201, "Delivery scheduled")["data"]
    assert UUID.fullmatch(data["delivery_id"]) and data["delivery_id"] != first.delivery_id
    assert work(hooks) == 1
    again = receiver.received[1]
    assert again.delivery_id == data["delivery_id"]
    assert again.headers["X-Tickets-Event"] == "ticket.created"
    assert again.json == {**first.json, "delivery_id": data["delivery_id"]}
    rows = deliveries(app)
    assert [row["history_id"] for row in rows] == [rows[0]["history_id"]] * 2
    assert {row["status"] for row in rows} == {DeliveryStatus.DELIVERED}


def test_a_deleted_endpoint_gets_nothing_more(app, hooks, client, admin, receiver):
    webhook = register(client, admin, receiver)
    ticket_id = create_ticket(client, admin)
    receiver.plan = [500]
    work(hooks)  # one delivery pending a retry
    act(client, admin, ticket_id, "PUT", "/status", {"status": 1})  # one event not dispatched
    assert len(receiver.received) == 1

    assert_success(call(client, admin, "DELETE", f"{WEBHOOKS}/{webhook['id']}"), 200)
    let_time_pass(app)
    work(hooks)

    assert len(receiver.received) == 1
    assert deliveries(app) == []
    assert all(row["dispatched_at"] is not None for row in read_rows(app, TicketHistory))


# --- A worker that dies, workers side by side -------------------------------------------------


class Killed(BaseException):
    """What a SIGKILL looks like from inside: the worker stops before it commits."""


def test_a_worker_that_dies_after_sending_loses_nothing(
    app, hooks, client, admin, receiver, monkeypatch
):
    register(client, admin, receiver, events=["ticket.created"])
    ticket_id = create_ticket(client, admin)

    def die(*_args):
        raise Killed

    monkeypatch.setattr(worker, "record_attempt", die)
    with pytest.raises(Killed):
        work(hooks)
    monkeypatch.undo()
    (pending,) = deliveries(app)
    assert (pending["status"], pending["attempts"]) == (DeliveryStatus.PENDING, 0)
    assert attempts(app) == []
    assert work(hooks) == 0  # it is still leased to the dead worker

    let_time_pass(app)  # until the lease runs out
    assert work(hooks) == 1

    # Sent twice under one delivery id: the receiver keeps one.
    assert [r.json["ticket_id"] for r in receiver.received] == [ticket_id, ticket_id]
    assert {r.delivery_id for r in receiver.received} == {pending["delivery_id"]}
    assert deliveries(app)[0]["status"] == DeliveryStatus.DELIVERED
    assert [a["status_code"] for a in attempts(app)] == [200]


def test_a_worker_that_dies_while_dispatching_loses_nothing(
    app, hooks, client, admin, receiver, monkeypatch
):
    register(client, admin, receiver, events=["ticket.created"])
    tickets = [create_ticket(client, admin) for _ in range(3)]
    made = []

    def dies_on_the_third(*args):
        if len(made) == 2:
            raise Killed
        made.append(args)
        return real(*args)

    real = worker.new_delivery
    monkeypatch.setattr(worker, "new_delivery", dies_on_the_third)
    with pytest.raises(Killed):
        work(hooks)
    monkeypatch.undo()
    assert deliveries(app) == []
    assert all(row["dispatched_at"] is None for row in read_rows(app, TicketHistory))

    work(hooks)

    assert sorted(r.json["ticket_id"] for r in receiver.received) == tickets
    assert len({r.delivery_id for r in receiver.received}) == 3


def run_workers(hooks, count: int, deadline_seconds: float = 30) -> list[BaseException]:
    """`count` workers side by side, each until the outbox is empty; their errors."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def worker():
        barrier.wait()
        deadline = time.monotonic() + deadline_seconds
        try:
            while time.monotonic() < deadline:
                work(hooks)
                rows = read_rows(hooks, WebhookDelivery)
                history = read_rows(hooks, TicketHistory)
                pending = [r for r in rows if r["status"] == DeliveryStatus.PENDING]
                if not pending and all(h["dispatched_at"] for h in history):
                    return
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline_seconds + 10)
    return errors


def test_two_workers_side_by_side_deliver_every_event_exactly_once(
    app, hooks, client, admin, staff, receiver
):
    register(client, admin, receiver)
    tickets = [create_ticket(client, admin) for _ in range(8)]
    for ticket_id in tickets:
        act(client, staff, ticket_id, "PUT", "/status", {"status": 1})
        act(client, staff, ticket_id, "POST", "/reply", {"message": "On it."})
    events = {(h["id"], h["ticket_id"]) for h in read_rows(app, TicketHistory)}
    assert len(events) == 24

    errors = run_workers(hooks, 2)

    assert errors == []
    by_id: dict[str, list] = {}
    for request in receiver.received:
        by_id.setdefault(request.delivery_id, []).append(request.body)
    assert all(len(set(bodies)) == 1 for bodies in by_id.values())
    rows = deliveries(app)
    assert {row["delivery_id"] for row in rows} == set(by_id)
    assert sorted(row["history_id"] for row in rows) == sorted(h for h, _t in events)
    assert {row["status"] for row in rows} == {DeliveryStatus.DELIVERED}
    sent = sorted(
        (json.loads(b[0])["ticket_id"], json.loads(b[0])["event"]) for b in by_id.values()
    )
    kinds = ("ticket.created", "ticket.status_changed", "ticket.replied")
    assert sent == sorted((t, e) for t in tickets for e in kinds)
    if ON_POSTGRES:  # SKIP LOCKED: no delivery is even sent twice
        assert len(receiver.received) == len(by_id)


# --- PostgreSQL: SKIP LOCKED ------------------------------------------------------------------


@pytest.fixture
def other_connection(db_url):
    """A second PostgreSQL session, as another worker holding rows would have."""
    if not db_url.startswith("postgres"):
        pytest.skip("needs TEST_DATABASE_URL pointing at PostgreSQL")
    engine = create_engine(normalize_database_url(db_url))
    connection = engine.connect()
    yield connection
    connection.close()
    engine.dispose()


@pytest.mark.postgres
def test_a_worker_waits_while_another_shares_out_an_endpoints_deliveries(
    app, hooks, client, admin, receiver, other_connection
):
    """Sharing out is short and one worker at a time per endpoint, so the in-flight limits
    hold: a second worker waits its turn (then finds the delivery still free)."""
    register(client, admin, receiver, events=["ticket.created"])
    create_ticket(client, admin)
    with hooks.app_context():
        assert worker.dispatch() == 1
    (row,) = deliveries(app)
    transaction = other_connection.begin()
    other_connection.execute(
        text("SELECT id FROM webhook_endpoints WHERE id = :id FOR UPDATE"),
        {"id": row["endpoint_id"]},
    )
    taken = []

    def claim():
        with hooks.app_context():
            taken.extend(worker.claim(1))

    waiting = threading.Thread(target=claim)
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and taken == []  # waiting for the other worker

    transaction.rollback()  # the other worker is done (or dies: its transaction goes)
    waiting.join(10)
    assert [work.delivery_id for work in taken] == [row["delivery_id"]]
    let_time_pass(app)  # the lease this test took without making the attempt
    assert work(hooks) == 1
    assert [r.delivery_id for r in receiver.received] == [row["delivery_id"]]


@pytest.mark.postgres
def test_an_event_locked_by_a_dying_worker_is_skipped_then_dispatched(
    app, hooks, client, admin, receiver, other_connection
):
    register(client, admin, receiver, events=["ticket.created"])
    locked, free = create_ticket(client, admin), create_ticket(client, admin)
    transaction = other_connection.begin()
    other_connection.execute(
        text("SELECT id FROM ticket_history WHERE ticket_id = :id FOR UPDATE"), {"id": locked}
    )

    work(hooks)
    assert [r.json["ticket_id"] for r in receiver.received] == [free]

    transaction.rollback()
    work(hooks)
    assert [r.json["ticket_id"] for r in receiver.received] == [free, locked]


# --- How it runs ------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_the_procfile_runs_the_worker():
    lines = (ROOT / "Procfile").read_text().splitlines()

    assert "worker: flask --app wsgi webhooks work" in lines


def test_the_docs_show_the_worker_its_settings_and_how_to_verify_a_signature():
    webhooks = (ROOT / "docs" / "webhooks.md").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    python_blocks = re.findall(r"```python\n(.*?)```", webhooks, flags=re.DOTALL)

    assert "webhooks work" in webhooks
    for setting in ("WEBHOOK_ALLOW_PRIVATE", "WEBHOOK_TIMEOUT", "WEBHOOK_CONCURRENCY"):
        assert f"| `{setting}` |" in operations or f"| `{setting}` /" in operations, setting
    assert any("X-Tickets-Signature" in block and "hmac" in block for block in python_blocks)


# --- The catalogue ------------------------------------------------------------------------------


def test_every_history_action_is_an_event_or_declared_internal():
    assert {a.value for a in HistoryAction} == set(EVENTS) | INTERNAL
    assert not set(EVENTS) & INTERNAL


def test_an_action_the_worker_has_no_event_for_is_passed_over(
    app, hooks, client, admin, receiver, monkeypatch
):
    """A history action added without its event (or declared internal) is marked dispatched
    and sent nowhere; the worker carries on with the rest (it used to raise, and crash-loop)."""
    register(client, admin, receiver)
    ticket_id = create_ticket(client, admin)
    act(client, admin, ticket_id, "POST", "/reply", {"message": "Hello."})
    monkeypatch.delitem(worker.EVENTS, "replied")

    assert work(hooks) == 1

    assert [r.json["event"] for r in receiver.received] == ["ticket.created"]
    assert all(h["dispatched_at"] is not None for h in read_rows(app, TicketHistory))

"""Issue 17's "done when", through the API (and the sweep, at the moments it runs): a fault of
high priority takes its deadlines from the policy; the clock stops while the subscriber is asked
for their router's serial and restarts when they answer; the ticket is resolved with a canned
reply, closes itself a week later, and the desk's stats show faults apart from installations."""

from datetime import timedelta

from support.client import assert_success, call, scope_of
from support.database import as_utc, session, set_columns
from support.urls import STATS, TICKETS, ticket_url

from tickets_service.desk import sweep
from tickets_service.models import SYSTEM_NAME, Ticket, TicketReply, utcnow

POLICY = {"first_response_minutes": 30, "resolve_minutes": 240}
SERIAL = "Hello {{ subscriber.name }}, could you read us your router's serial number?"
FIXED = "{{ subscriber.name }}, {{ ticket.title | lower }} is fixed: {{ cause }}. {{ agent.name }}"


def saved(response, status=200) -> dict:
    return assert_success(response, status).get("data")


def canned(client, admin, title: str, body: str) -> int:
    answer = {"title": title, "body": body, "scope": "isp"}
    return saved(call(client, admin, "POST", "/api/v1/canned-replies", answer), 201)["id"]


def test_a_fault_is_timed_paused_resolved_with_a_canned_reply_and_closes_itself(
    app, client, admin, staff, make_subscriber, fetch, rows
):
    # The admin sets the desk up: a policy for high-priority faults, two canned replies.
    saved(call(client, admin, "PUT", "/api/v1/sla-policies/fault/3", POLICY), 201)
    ask = canned(client, admin, "Ask for the serial", SERIAL)
    fixed = canned(client, admin, "Fixed", FIXED)
    subscriber = make_subscriber(name="Ada Lovelace")

    # A high-priority fault, and an installation beside it.
    body = {"title": "No light on the ONT", "description": "Since 9", "priority": 3}
    made = call(
        client, staff, "POST", TICKETS, {**body, "type": "fault", "subscriber_id": subscriber}
    )
    ticket_id = saved(made, 201)["id"]
    install = {"title": "New line", "description": "Flat 3", "priority": 2, "type": "installation"}
    saved(call(client, staff, "POST", TICKETS, install), 201)
    row = fetch(Ticket, ticket_id)
    created = as_utc(row["created_at"])
    assert as_utc(row["response_due_at"]) == created + timedelta(minutes=30)
    assert as_utc(row["due_at"]) == created + timedelta(minutes=240)
    shown = saved(client.get(ticket_url(ticket_id), headers=staff.headers))
    assert (shown["type"], shown["due_at_manual"]) == ("fault", False)
    assert shown["breached"] == {"response": False, "resolution": False}

    # Staff ask for the router's serial (a canned reply: the first response) and wait.
    asked = call(client, staff, "POST", ticket_url(ticket_id, "/reply"), {"canned_reply_id": ask})
    assert_success(asked, 201, "Reply added successfully")
    [question] = [r for r in rows(TicketReply) if r["ticket_id"] == ticket_id]
    assert question["message"] == SERIAL.replace("{{ subscriber.name }}", "Ada Lovelace")
    saved(call(client, staff, "PUT", ticket_url(ticket_id, "/status"), {"status": 4}))

    # Two hours pass while the subscriber looks for the sticker: the clock stands still.
    waited = timedelta(hours=2)
    since = as_utc(fetch(Ticket, ticket_id)["waiting_since"]) - waited
    set_columns(app, Ticket, Ticket.id == ticket_id, waiting_since=since)
    late = saved(client.get(ticket_url(ticket_id), headers=staff.headers))
    assert late["breached"] == {"response": False, "resolution": False}

    # They answer; work goes on, and the deadline has moved by the wait.
    before = utcnow()
    saved(call(client, staff, "PUT", ticket_url(ticket_id, "/status"), {"status": 1}))
    after = utcnow()
    moved = as_utc(fetch(Ticket, ticket_id)["due_at"]) - (created + timedelta(minutes=240))
    assert (
        waited - timedelta(seconds=1) <= moved <= waited + (after - before) + timedelta(seconds=1)
    )

    # Resolved with the canned answer, its variable filled in.
    reply = {"canned_reply_id": fixed, "variables": {"cause": "a bent patch cord"}}
    assert_success(call(client, staff, "POST", ticket_url(ticket_id, "/reply"), reply), 201)
    saved(call(client, staff, "PUT", ticket_url(ticket_id, "/status"), {"status": 2}))
    last = max((r for r in rows(TicketReply) if r["ticket_id"] == ticket_id), key=lambda r: r["id"])
    assert last["message"] == (
        "Ada Lovelace, no light on the ont is fixed: a bent patch cord. Staff One"
    )

    # A week later (by default) the sweep closes it, as the system; not a minute before.
    resolved = as_utc(fetch(Ticket, ticket_id)["resolved_at"])
    with session(app):
        assert sweep(now=resolved + timedelta(days=7) - timedelta(minutes=1))["closed"] == 0
    assert fetch(Ticket, ticket_id)["status"] == 2
    with session(app):
        assert sweep(now=resolved + timedelta(days=7))["closed"] == 1
    assert fetch(Ticket, ticket_id)["status"] == 3
    history = saved(client.get(ticket_url(ticket_id, "/history"), headers=staff.headers))
    closing = history[-1]
    assert (closing["action"], closing["old"], closing["new"]) == ("status_changed", 2, 3)
    assert (closing["user_id"], closing["user_name"]) == (None, SYSTEM_NAME)

    # The desk's stats count faults apart from installations.
    stats = saved(client.get(STATS, query_string=scope_of(staff), headers=staff.headers))
    assert stats["by_type"] == {
        "billing": 0,
        "fault": 1,
        "installation": 1,
        "other": 0,
        "relocation": 0,
    }
    assert stats["by_status"] == {"0": 1, "1": 0, "2": 0, "3": 1, "4": 0}

"""Incidents: an outage of network objects, opened by an admin as a ticket of kind incident. It
affects every subscriber served at or below the objects it links, gathers their open tickets
(and, while open and started, their new ones, told its public message), copies its public
replies to its open children, moves them when it is resolved or closed, and ends each outage
for billing. Nothing of another ISP is ever read, gathered or touched."""

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from support.client import (
    assert_error,
    assert_success,
    call,
    create_ticket,
    get,
    ids,
    list_tickets,
    reply,
    set_status,
)
from support.database import as_utc, history_in_db, now, set_columns, stamp
from support.urls import SUBSCRIBERS, ticket_url

from tickets_service.models import (
    SYSTEM_NAME,
    AffectedSubscriber,
    HistoryAction,
    Incident,
    NetworkObject,
    Ticket,
    TicketHistory,
    TicketLink,
    TicketReply,
)
from tickets_service.webhooks.events import EVENTS, payload

INCIDENTS = "/api/v1/incidents"
NETWORK = "/api/v1/network"
MESSAGE = "A fibre cut near the north POP: crews are on site, service back by 18:00."
AFFECTED_KEYS = ["subscriber_id", "external_id", "name", "branch_id", "from", "to", "minutes"]
INCIDENT_KEYS = ["id", "title", "status", "priority", "branch_id", "starts_at", "expected_end_at"]
INCIDENT_KEYS += ["planned", "public_message", "restored_at", "links", "affected_count"]
INCIDENT_KEYS += ["children_count"]

# One ISP's network (site > node > service), and who each object serves (in which branch):
# node:n1 serves dan itself and ann and bob through its services; node:n2 serves cat.
TREE = [("site:s1", None), ("node:n1", "site:s1"), ("service:svc1", "node:n1")]
TREE += [("service:svc2", "node:n1"), ("node:n2", "site:s1"), ("service:svc3", "node:n2")]
SERVED = {
    "ann": ("service:svc1", 1),
    "bob": ("service:svc2", 2),
    "cat": ("service:svc3", 1),
    "dan": ("node:n1", 1),
}


def ref(target: str) -> dict:
    kind, external_id = target.split(":", 1)
    return {"kind": kind, "external_id": external_id}


def place(client, admin, target: str, parent: str | None = None) -> None:
    body = {"name": target, **({"parent": ref(parent)} if parent else {})}
    response = call(client, admin, "PUT", f"{NETWORK}/{target.replace(':', '/', 1)}", body)
    assert_success(response, 201)


def build_network(client, admin, make_subscriber) -> dict[str, int]:
    """TREE in the admin's ISP, and a subscriber (external id crm-<name>) served as SERVED
    says: name -> subscriber id."""
    for target, parent in TREE:
        place(client, admin, target, parent)
    people = {}
    for name, (target, branch_id) in SERVED.items():
        subscriber_id = make_subscriber(isp_id=admin.isp_id, branch_id=branch_id, name=name.title())
        body = {"network": [ref(target)], "external_id": f"crm-{name}"}
        assert_success(call(client, admin, "PUT", f"{SUBSCRIBERS}/{subscriber_id}", body), 200)
        people[name] = subscriber_id
    return people


@pytest.fixture
def people(client, admin, make_subscriber) -> dict[str, int]:
    return build_network(client, admin, make_subscriber)


def when(minutes: float) -> str:
    """A timestamp this many minutes from now (negative: ago), as the API writes one."""
    return stamp(now() + timedelta(minutes=minutes))


def incident_body(*targets: str, **fields) -> dict:
    """A valid body on these objects; starts_at / expected_end_at given as minutes from now."""
    for name in ("starts_at", "expected_end_at"):
        if isinstance(fields.get(name), int):
            fields[name] = when(fields[name])
    body = {"title": "Fibre cut", "description": "OLT unreachable", "priority": 3}
    return {**body, "links": [ref(t) for t in targets], "public_message": MESSAGE, **fields}


def open_incident(client, account, *targets: str, **fields) -> int:
    response = call(client, account, "POST", INCIDENTS, incident_body(*targets, **fields))
    return assert_success(response, 201, "Incident opened successfully")["data"]["id"]


def affected_rows(rows, incident_id: int) -> dict[int, dict]:
    """The incident's affected subscribers in the database, by subscriber id."""
    return {
        r["subscriber_id"]: r for r in rows(AffectedSubscriber) if r["incident_id"] == incident_id
    }


def entries(rows, ticket_id: int, action: str) -> list[tuple]:
    """(field, old, new) of each history entry of this action, oldest first."""
    return [(f, old, new) for a, f, old, new, _ in history_in_db(rows, ticket_id) if a == action]


def parent_history(rows, ticket_id: int) -> list[tuple]:
    return [h[:4] for h in history_in_db(rows, ticket_id) if h[0] in ("linked", "unlinked")]


def put_parent(client, account, ticket_id: int, incident_id: int):
    return call(
        client, account, "PUT", ticket_url(ticket_id, "/parent"), {"incident_id": incident_id}
    )


def affected_page(client, account, incident_id: int, **query) -> dict:
    return assert_success(get(client, account, f"{INCIDENTS}/{incident_id}/affected", **query), 200)


# --- Opening ------------------------------------------------------------------------------------


def test_an_admin_opens_an_incident_as_a_ticket_of_kind_incident(
    client, admin, people, fetch, rows
):
    response = call(client, admin, "POST", INCIDENTS, incident_body("node:n1", "service:svc3"))

    body = assert_success(response, 201, "Incident opened successfully")
    incident_id = body["data"]["id"]
    assert body["data"] == {"id": incident_id}
    ticket = fetch(Ticket, incident_id)
    assert (ticket["kind"], ticket["isp_id"], ticket["branch_id"]) == ("incident", 1, 1)
    assert (ticket["status"], ticket["priority"], ticket["parent_id"]) == (0, 3, None)
    info = fetch(Incident, incident_id)
    assert (info["planned"], info["expected_end_at"]) == (False, None)
    assert info["public_message"] == MESSAGE
    assert abs(as_utc(info["starts_at"]) - now()) < timedelta(minutes=1)  # default: now
    names = {r["id"]: f"{r['kind']}:{r['external_id']}" for r in rows(NetworkObject)}
    links = sorted((r["position"], names[r["object_id"]], r["ticket_id"]) for r in rows(TicketLink))
    assert links == [(0, "node:n1", incident_id), (1, "service:svc3", incident_id)]
    [(_, _, opened)] = entries(rows, incident_id, "incident_opened")
    assert (opened["incident_id"], opened["planned"]) == (incident_id, False)


def test_fetch_and_the_list_tell_incidents_from_tickets(client, admin, people, make_ticket):
    ticket_id = make_ticket(admin)
    incident_id = open_incident(client, admin, "service:svc3", "node:n1")

    shown = assert_success(get(client, admin, ticket_url(incident_id)), 200)["data"]
    assert (shown["kind"], shown["parent_id"]) == ("incident", None)
    assert shown["links"] == [ref("service:svc3"), ref("node:n1")]
    assert (
        assert_success(get(client, admin, ticket_url(ticket_id)), 200)["data"]["kind"] == "ticket"
    )
    assert ids(assert_success(list_tickets(client, admin, kind="incident"), 200)) == [incident_id]
    assert ids(assert_success(list_tickets(client, admin, kind="ticket"), 200)) == [ticket_id]


def test_staff_may_not_open_an_incident(client, staff, people, assert_refused):
    assert_refused(lambda: call(client, staff, "POST", INCIDENTS, incident_body("node:n1")), 403)


def test_an_api_key_opens_one_only_with_incidents_write(
    client, admin, people, make_key, assert_refused, fetch
):
    lacking = make_key(admin, scopes=["tickets:read", "tickets:write"])
    body = incident_body("node:n1")
    assert_refused(lambda: call(client, lacking, "POST", INCIDENTS, body), 403)

    key = make_key(admin, scopes=["incidents:write"], name="NOC")
    incident_id = open_incident(client, key, "node:n1")

    assert fetch(Ticket, incident_id)["created_by_key_id"] == key.id


OMIT = object()
BAD_INCIDENTS = [
    ({"links": OMIT}, "links"),
    ({"links": []}, "links"),
    ({"links": [ref("node:nowhere")]}, "links"),
    ({"links": [ref("node:n1"), ref("node:nowhere")]}, "links"),
    ({"links": [ref(f"node:x{n}") for n in range(21)]}, "links"),
    ({"starts_at": -5, "expected_end_at": -10}, "expected_end_at"),
    ({"planned": True}, "starts_at"),  # starts now: not in the future
    ({"planned": True, "starts_at": -1}, "starts_at"),
    ({"planned": True, "starts_at": 120, "expected_end_at": 60}, "expected_end_at"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_INCIDENTS)
def test_a_bad_incident_is_422_and_opens_nothing(
    client, admin, people, assert_refused, changes, field
):
    body = incident_body("node:n1", **changes)
    body = {name: value for name, value in body.items() if value is not OMIT}

    assert_refused(lambda: call(client, admin, "POST", INCIDENTS, body), 422, field)


def test_another_isps_object_is_refused_as_an_unknown_one_is(
    client, admin, other_admin, make_subscriber, assert_refused
):
    body = incident_body("node:n1")
    unknown = assert_refused(
        lambda: call(client, other_admin, "POST", INCIDENTS, body), 422, "links"
    )
    build_network(client, admin, make_subscriber)  # ISP 1 now has node:n1; ISP 2 still has none

    theirs = assert_refused(
        lambda: call(client, other_admin, "POST", INCIDENTS, body), 422, "links"
    )

    assert theirs.get_json() == unknown.get_json()


# --- Who it affects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["node:n1"], ["ann", "bob", "dan"]),
        (["site:s1"], ["ann", "bob", "cat", "dan"]),
        (["service:svc3"], ["cat"]),
        (["service:svc1", "service:svc3"], ["ann", "cat"]),
        (["node:n1", "service:svc1"], ["ann", "bob", "dan"]),
    ],
)
def test_it_affects_those_served_at_or_below_its_links(
    client, admin, people, rows, targets, expected
):
    starts = when(-15)
    incident_id = open_incident(client, admin, *targets, starts_at=starts)

    affected = affected_rows(rows, incident_id)
    assert sorted(affected) == sorted(people[name] for name in expected)
    assert {(stamp(r["affected_from"]), r["affected_until"]) for r in affected.values()} == {
        (starts, None)
    }


def test_the_affected_are_listed_a_page_at_a_time_with_when_and_for_how_long(client, admin, people):
    starts = when(-90)
    incident_id = open_incident(client, admin, "node:n1", starts_at=starts)

    first = affected_page(client, admin, incident_id, per_page=2)
    second = affected_page(client, admin, incident_id, per_page=2, page=2)

    assert first["meta"]["total"] == second["meta"]["total"] == 3
    assert [list(item) for item in first["data"]] == [AFFECTED_KEYS] * 2
    assert first["data"] + second["data"] == [
        {
            "subscriber_id": people[name],
            "external_id": f"crm-{name}",
            "name": name.title(),
            "branch_id": SERVED[name][1],
            "from": starts,
            "to": None,
            "minutes": 90,
        }
        for name in ("ann", "bob", "dan")
    ]


def test_staff_see_only_their_branchs_affected_subscribers(client, admin, staff, people):
    incident_id = open_incident(client, admin, "node:n1")

    body = affected_page(client, staff, incident_id)

    assert [item["subscriber_id"] for item in body["data"]] == [people["ann"], people["dan"]]
    assert body["meta"]["total"] == 2


def test_an_incident_shows_its_times_message_links_and_counts(client, admin, people, make_ticket):
    make_ticket(admin, subscriber_id=people["ann"])
    starts, ends = when(-10), when(120)
    incident_id = open_incident(client, admin, "node:n1", starts_at=starts, expected_end_at=ends)

    shown = assert_success(get(client, admin, f"{INCIDENTS}/{incident_id}"), 200)["data"]

    assert list(shown) == INCIDENT_KEYS
    assert shown == {
        "id": incident_id,
        "title": "Fibre cut",
        "status": 0,
        "priority": 3,
        "branch_id": 1,
        "starts_at": starts,
        "expected_end_at": ends,
        "planned": False,
        "public_message": MESSAGE,
        "restored_at": None,
        "links": [ref("node:n1")],
        "affected_count": 3,
        "children_count": 1,
    }


@pytest.mark.parametrize("suffix", ["", "/affected"])
@pytest.mark.parametrize("who", ["other_admin", "staff_branch2", "an ordinary ticket"])
def test_an_incident_out_of_reach_is_404(request, client, admin, people, make_ticket, who, suffix):
    incident_id = open_incident(client, admin, "node:n1")
    if who == "an ordinary ticket":
        who, incident_id = "admin", make_ticket(admin)

    response = get(client, request.getfixturevalue(who), f"{INCIDENTS}/{incident_id}{suffix}")

    assert assert_error(response, 404)["message"] == "Incident not found."


# An incident's links change as a ticket's do, or with its own fields.
RELINK = {
    "as a ticket": (lambda incident_id: ticket_url(incident_id), "Ticket updated successfully"),
    "as an incident": (
        lambda incident_id: f"{INCIDENTS}/{incident_id}",
        "Incident updated successfully",
    ),
}


@pytest.mark.parametrize("route", RELINK)
def test_new_links_work_the_affected_out_again_and_gather_their_tickets(
    client, admin, people, make_ticket, rows, fetch, route
):
    incident_id = open_incident(client, admin, "node:n2", starts_at=-60)
    waiting = make_ticket(admin, subscriber_id=people["ann"])  # after the open: not gathered
    url, message = RELINK[route]

    response = call(client, admin, "PUT", url(incident_id), {"links": [ref("node:n1")]})

    assert_success(response, 200, message)
    shown = assert_success(get(client, admin, f"{INCIDENTS}/{incident_id}"), 200)["data"]
    assert shown["links"] == [ref("node:n1")]
    affected = affected_rows(rows, incident_id)
    assert sorted(affected) == sorted(people.values())
    ended = {s for s, row in affected.items() if row["affected_until"] is not None}
    assert ended == {people["cat"]}
    assert abs(as_utc(affected[people["cat"]]["affected_until"]) - now()) < timedelta(minutes=1)
    assert fetch(Ticket, waiting)["parent_id"] == incident_id
    assert entries(rows, waiting, "linked") == [("parent_id", None, incident_id)]
    [(_, _, updated)] = entries(rows, incident_id, "incident_updated")
    assert updated["incident_id"] == incident_id


@pytest.mark.parametrize("route", RELINK)
@pytest.mark.parametrize(
    "links", [[], [{"kind": "node", "external_id": "nowhere"}]], ids=["none", "unknown"]
)
def test_an_incident_cannot_lose_all_its_links(client, admin, people, assert_refused, route, links):
    incident_id = open_incident(client, admin, "node:n1")
    url = RELINK[route][0](incident_id)

    request = lambda: call(client, admin, "PUT", url, {"links": links})  # noqa: E731
    assert_refused(request, 422, "links")


def test_the_same_links_again_change_nothing(client, admin, people, snapshot):
    incident_id = open_incident(client, admin, "node:n1")
    before = snapshot()

    response = call(client, admin, "PUT", f"{INCIDENTS}/{incident_id}", {"links": [ref("node:n1")]})

    assert_success(response, 200, "Incident updated successfully")
    assert snapshot() == before


# --- Its children ------------------------------------------------------------------------------

# Tickets that exist when the incident on node:n1 opens: whose, what else, and whether it joins.
EXISTING = {
    "open": ("ann", {"status": 0}, True),
    "in progress": ("ann", {"status": 1}, True),
    "another branch's": ("bob", {"status": 0, "branch_id": 2}, True),
    "resolved": ("ann", {"status": 2}, False),
    "closed": ("ann", {"status": 3}, False),
    "deleted": ("ann", {"deleted_at": "now"}, False),
    "unaffected": ("cat", {"status": 0}, False),
    "no subscriber": (None, {"status": 0}, False),
    "under another incident": ("dan", {"parent_id": "other"}, False),
    "an incident": ("ann", {"kind": "incident"}, False),
}


def test_at_open_the_open_tickets_of_the_affected_become_its_children(
    client, admin, people, make_ticket, rows, fetch
):
    other = open_incident(client, admin, "node:n1")
    made = {}
    for case, (name, fields, _) in EXISTING.items():
        fields = dict(fields, subscriber_id=people.get(name))
        fields.update({"deleted_at": now()} if "deleted_at" in fields else {})
        fields.update({"parent_id": other} if "parent_id" in fields else {})
        made[case] = make_ticket(admin, **fields)
    before = {case: fetch(Ticket, ticket_id) for case, ticket_id in made.items()}

    incident_id = open_incident(client, admin, "node:n1")

    for case, (_, _, joins) in EXISTING.items():
        row, ticket_id = fetch(Ticket, made[case]), made[case]
        if joins:
            assert (row["parent_id"], row["version"]) == (incident_id, before[case]["version"] + 1)
            assert entries(rows, ticket_id, "linked") == [("parent_id", None, incident_id)], case
        else:
            assert row == before[case], case
            assert entries(rows, ticket_id, "linked") == [], case


def test_a_new_ticket_of_an_affected_subscriber_joins_and_is_told_the_message(
    client, admin, staff, people, rows, fetch
):
    incident_id = open_incident(client, admin, "node:n1")

    ticket_id = create_ticket(client, staff, subscriber_id=people["ann"])

    row = fetch(Ticket, ticket_id)
    assert (row["parent_id"], row["reply_count"]) == (incident_id, 1)
    assert row["first_response_at"] is None  # the service's message answers no one
    assert entries(rows, ticket_id, "linked") == [("parent_id", None, incident_id)]
    [told] = assert_success(get(client, staff, ticket_url(ticket_id)), 200)["data"]["replies"]
    assert (told["message"], told["internal"]) == (MESSAGE, False)
    assert (told["user_name"], told["user_id"], told["key_id"]) == (SYSTEM_NAME, None, None)
    assert SYSTEM_NAME == "Network operations"


@pytest.mark.parametrize(
    ("subscriber", "fields", "then"),
    [
        ("cat", {}, None),  # not affected
        ("ann", {}, 2),  # the incident is resolved
        ("ann", {}, 3),  # ... or closed
        ("ann", {"planned": True, "starts_at": 60, "expected_end_at": 120}, None),  # not begun
    ],
)
def test_a_new_ticket_stays_alone_without_an_open_started_incident_over_it(
    client, admin, staff, people, rows, fetch, subscriber, fields, then
):
    incident_id = open_incident(client, admin, "node:n1", **fields)
    if then is not None:
        assert_success(set_status(client, admin, incident_id, then), 200)

    ticket_id = create_ticket(client, staff, subscriber_id=people[subscriber])

    row = fetch(Ticket, ticket_id)
    assert (row["parent_id"], row["reply_count"]) == (None, 0)
    assert entries(rows, ticket_id, "linked") == []


def test_planned_maintenance_knows_its_affected_at_once_but_gathers_nothing_yet(
    client, admin, people, make_ticket, fetch
):
    waiting = make_ticket(admin, subscriber_id=people["ann"])
    starts = when(60)

    incident_id = open_incident(
        client, admin, "node:n1", planned=True, starts_at=starts, expected_end_at=120
    )

    body = affected_page(client, admin, incident_id)
    assert body["meta"]["total"] == 3
    assert {(item["from"], item["to"]) for item in body["data"]} == {(starts, None)}
    assert fetch(Ticket, waiting)["parent_id"] is None
    shown = assert_success(get(client, admin, f"{INCIDENTS}/{incident_id}"), 200)["data"]
    assert (shown["planned"], shown["children_count"]) == (True, 0)


def test_planned_maintenance_gathers_new_tickets_once_its_window_has_begun(
    app, client, admin, staff, people, fetch
):
    incident_id = open_incident(
        client, admin, "node:n1", planned=True, starts_at=60, expected_end_at=120
    )
    began = now() - timedelta(minutes=1)  # time passes: the window has begun
    set_columns(app, Incident, Incident.ticket_id == incident_id, starts_at=began)

    ticket_id = create_ticket(client, staff, subscriber_id=people["ann"])

    assert fetch(Ticket, ticket_id)["parent_id"] == incident_id


# --- Children by hand --------------------------------------------------------------------------


def test_a_ticket_is_put_under_an_incident_by_hand(client, admin, people, make_ticket, rows, fetch):
    incident_id = open_incident(client, admin, "service:svc3")
    ticket_id = make_ticket(admin)

    response = put_parent(client, admin, ticket_id, incident_id)

    assert_success(response, 200, "Ticket linked to the incident")
    assert fetch(Ticket, ticket_id)["parent_id"] == incident_id
    assert parent_history(rows, ticket_id) == [("linked", "parent_id", None, incident_id)]


def test_moving_a_ticket_to_another_incident_unlinks_it_then_links_it(
    client, admin, people, make_ticket, rows, fetch
):
    first = open_incident(client, admin, "service:svc3")
    second = open_incident(client, admin, "node:n2")
    ticket_id = make_ticket(admin, parent_id=first)

    assert_success(put_parent(client, admin, ticket_id, second), 200)

    assert fetch(Ticket, ticket_id)["parent_id"] == second
    assert parent_history(rows, ticket_id) == [
        ("unlinked", "parent_id", first, None),
        ("linked", "parent_id", None, second),
    ]


def test_a_ticket_is_taken_from_under_its_incident_once(
    client, admin, people, make_ticket, rows, fetch, assert_refused
):
    incident_id = open_incident(client, admin, "service:svc3")
    ticket_id = make_ticket(admin, parent_id=incident_id)
    url = ticket_url(ticket_id, "/parent")

    assert_success(call(client, admin, "DELETE", url), 200, "Ticket unlinked from its incident")

    assert fetch(Ticket, ticket_id)["parent_id"] is None
    assert parent_history(rows, ticket_id) == [("unlinked", "parent_id", incident_id, None)]
    assert_refused(lambda: call(client, admin, "DELETE", url), 409)


@pytest.mark.parametrize(
    ("child", "parent", "status"),
    [
        ("ticket", "other ticket", 422),
        ("incident", "incident", 422),  # itself
        ("incident", "second incident", 422),  # an incident under an incident
        ("ticket", "their incident", 422),
        ("their ticket", "incident", 404),
    ],
)
def test_only_a_ticket_of_reach_goes_under_an_incident_of_reach(
    client, admin, other_admin, people, make_ticket, assert_refused, child, parent, status
):
    place(client, other_admin, "node:n1")
    made = {
        "ticket": make_ticket(admin),
        "other ticket": make_ticket(admin),
        "incident": open_incident(client, admin, "node:n1"),
        "second incident": open_incident(client, admin, "node:n2"),
        "their incident": open_incident(client, other_admin, "node:n1"),
        "their ticket": make_ticket(other_admin),
    }
    field = "incident_id" if status == 422 else None

    assert_refused(lambda: put_parent(client, admin, made[child], made[parent]), status, field)


# --- Replies and status --------------------------------------------------------------------------


@pytest.fixture
def family(client, admin, people, make_ticket) -> dict[str, int]:
    """An open incident on node:n1 (started 90 minutes ago) and its children: waiting (open),
    working (in progress) and done (resolved)."""
    waiting = make_ticket(admin, subscriber_id=people["ann"], status=0)
    working = make_ticket(admin, subscriber_id=people["dan"], status=1)
    incident_id = open_incident(client, admin, "node:n1", starts_at=-90)
    done = make_ticket(
        admin, subscriber_id=people["ann"], status=2, resolved_at=now(), parent_id=incident_id
    )
    return {"incident": incident_id, "waiting": waiting, "working": working, "done": done}


def test_a_public_reply_on_the_incident_reaches_each_open_child_once(
    client, admin, family, rows, fetch
):
    before = {name: fetch(Ticket, ticket_id) for name, ticket_id in family.items()}

    response = reply(client, admin, family["incident"], "Crews are on site.")

    assert_success(response, 201, "Reply added successfully")
    replies = sorted((r["ticket_id"], r["message"], r["internal"]) for r in rows(TicketReply))
    reached = sorted(family[name] for name in ("incident", "waiting", "working"))
    assert replies == [(ticket_id, "Crews are on site.", False) for ticket_id in reached]
    for name in ("waiting", "working"):
        row, old = fetch(Ticket, family[name]), before[name]
        assert (row["reply_count"], row["version"]) == (old["reply_count"] + 1, old["version"] + 1)
        assert entries(rows, family[name], "replied") == [(None, None, None)]
    assert fetch(Ticket, family["done"]) == before["done"]


def test_an_internal_note_on_the_incident_stays_on_it(client, admin, family, rows, fetch):
    children = ("waiting", "working", "done")
    before = {name: fetch(Ticket, family[name]) for name in children}

    assert_success(reply(client, admin, family["incident"], "NOC only.", internal=True), 201)

    assert [r["ticket_id"] for r in rows(TicketReply)] == [family["incident"]]
    assert {name: fetch(Ticket, family[name]) for name in children} == before


@pytest.mark.parametrize(("status", "column"), [(2, "resolved_at"), (3, "closed_at")])
def test_resolving_or_closing_the_incident_moves_its_open_children(
    client, admin, family, rows, fetch, status, column
):
    done = fetch(Ticket, family["done"])

    response = set_status(client, admin, family["incident"], status)

    assert_success(response, 200, "Ticket status updated successfully")
    for name, old in (("waiting", 0), ("working", 1)):
        row = fetch(Ticket, family[name])
        assert row["status"] == status
        assert abs(as_utc(row[column]) - now()) < timedelta(minutes=1)
        assert entries(rows, family[name], "status_changed") == [("status", old, status)]
    assert fetch(Ticket, family["done"]) == done


def test_reopening_the_incident_leaves_its_children_resolved(client, admin, family, fetch):
    assert_success(set_status(client, admin, family["incident"], 2), 200)
    children = {name: fetch(Ticket, family[name]) for name in ("waiting", "working")}

    assert_success(set_status(client, admin, family["incident"], 0), 200)

    assert fetch(Ticket, family["incident"])["status"] == 0
    assert {name: fetch(Ticket, family[name]) for name in children} == children
    assert {row["status"] for row in children.values()} == {2}


def test_resolving_ends_every_outage_now(client, admin, family, rows, fetch):
    assert_success(set_status(client, admin, family["incident"], 2), 200)

    ends = {r["affected_until"] for r in affected_rows(rows, family["incident"]).values()}
    assert len(ends) == 1
    [end] = ends
    assert abs(as_utc(end) - now()) < timedelta(minutes=1)
    assert as_utc(fetch(Incident, family["incident"])["restored_at"]) == as_utc(end)


def test_restored_at_dates_the_end_and_each_outage_is_recorded_in_whole_minutes(
    client, admin, people, rows, fetch
):
    starts, restored = when(-90), when(-30)
    incident_id = open_incident(client, admin, "node:n1", starts_at=starts)
    body = {"status": 2, "restored_at": restored}

    response = call(client, admin, "PUT", ticket_url(incident_id, "/status"), body)

    assert_success(response, 200, "Ticket status updated successfully")
    affected = affected_rows(rows, incident_id).values()
    assert {stamp(row["affected_until"]) for row in affected} == {restored}
    assert stamp(fetch(Incident, incident_id)["restored_at"]) == restored
    assert [new for _, _, new in entries(rows, incident_id, "outage")] == [
        {
            "incident_id": incident_id,
            "subscriber": people[name],
            "external_id": f"crm-{name}",
            "minutes": 60,
            "from": starts,
            "to": restored,
        }
        for name in ("ann", "bob", "dan")
    ]
    [(_, _, resolved)] = entries(rows, incident_id, "incident_resolved")
    summary = {"restored_at": restored, "outage_minutes": 180, "subscribers_out": 3}
    assert {name: resolved[name] for name in summary} == summary
    assert {item["minutes"] for item in affected_page(client, admin, incident_id)["data"]} == {60}


@pytest.mark.parametrize(
    ("target", "status", "restored"),
    [
        ("incident", 2, 30),  # in the future
        ("incident", 2, -120),  # before starts_at (90 minutes ago)
        ("ticket", 2, -30),  # not an incident
        ("incident", 3, -30),  # closing, not resolving
        ("incident", 1, -30),
    ],
)
def test_a_bad_restored_at_is_422_and_changes_nothing(
    client, admin, family, make_ticket, assert_refused, target, status, restored
):
    ticket_id = family["incident"] if target == "incident" else make_ticket(admin)
    body = {"status": status, "restored_at": when(restored)}

    request = lambda: call(client, admin, "PUT", ticket_url(ticket_id, "/status"), body)  # noqa: E731
    assert_refused(request, 422, "restored_at")


# --- Events --------------------------------------------------------------------------------------


INCIDENT_ACTIONS = {
    "incident_opened": "incident.opened",
    "incident_updated": "incident.updated",
    "incident_resolved": "incident.resolved",
    "outage": "subscriber.outage",
    "linked": "ticket.linked",
    "unlinked": "ticket.unlinked",
}


def test_the_incident_actions_are_events():
    assert {a: EVENTS[HistoryAction(a)] for a in INCIDENT_ACTIONS} == INCIDENT_ACTIONS


def test_an_incident_events_data_is_its_entrys_new_and_who_acted(
    client, admin, people, make_ticket, make_key, rows
):
    make_ticket(admin, subscriber_id=people["ann"])
    key = make_key(admin, scopes=["incidents:write"], name="NOC")
    incident_id = open_incident(client, key, "node:n1", starts_at=-30)
    assert_success(set_status(client, admin, incident_id, 2), 200)
    by_key, by_admin = {"user_id": None, "key_id": key.id}, {"user_id": admin.id, "key_id": None}

    sent = {}
    for entry in rows(TicketHistory):
        event = INCIDENT_ACTIONS.get(entry["action"])
        if event is None:
            continue
        body = json.loads(payload("d-1", event, SimpleNamespace(**entry), admin.isp_id))
        assert (body["event"], body["ticket_id"], body["isp_id"]) == (event, entry["ticket_id"], 1)
        sent.setdefault(event, []).append(body["data"])
        if event == "ticket.linked":
            change = {"field": "parent_id", "old": None, "new": incident_id}
            assert body["data"] == {**change, **by_key}
        else:
            actor = by_key if event == "incident.opened" else by_admin
            assert body["data"] == {**entry["new"], **actor}
    assert [data["new"] for data in sent.pop("ticket.linked")] == [incident_id]
    assert len(sent.pop("subscriber.outage")) == 3
    assert sorted(sent) == ["incident.opened", "incident.resolved"]


# --- Tenancy -------------------------------------------------------------------------------------


def test_an_incident_never_touches_another_isps_same_named_network(
    client, admin, other_admin, people, make_subscriber, make_ticket, rows, fetch
):
    theirs = build_network(client, other_admin, make_subscriber)
    their_tickets = [
        make_ticket(other_admin, branch_id=SERVED[name][1], subscriber_id=subscriber_id)
        for name, subscriber_id in theirs.items()
    ]
    before = {ticket_id: fetch(Ticket, ticket_id) for ticket_id in their_tickets}
    mine = make_ticket(admin, subscriber_id=people["ann"])

    incident_id = open_incident(client, admin, "site:s1")
    assert_success(reply(client, admin, incident_id, "Crews are on site."), 201)
    new_theirs = create_ticket(client, other_admin, subscriber_id=theirs["ann"])
    assert_success(set_status(client, admin, incident_id, 2), 200)

    assert {ticket_id: fetch(Ticket, ticket_id) for ticket_id in their_tickets} == before
    assert fetch(Ticket, new_theirs)["parent_id"] is None
    assert (fetch(Ticket, mine)["parent_id"], fetch(Ticket, mine)["status"]) == (incident_id, 2)
    assert sorted(affected_rows(rows, incident_id)) == sorted(people.values())
    assert {r["isp_id"] for r in rows(AffectedSubscriber)} == {1}
    assert {r["ticket_id"] for r in rows(TicketReply)} == {incident_id, mine}


# --- Outages end once, and never before they began ------------------------------------------


def test_closing_an_open_incident_straight_away_ends_every_outage(client, admin, people, rows):
    incident_id = open_incident(client, admin, "node:n1", starts_at=-30)

    assert_success(set_status(client, admin, incident_id, 3), 200)

    assert all(row["affected_until"] for row in affected_rows(rows, incident_id).values())
    assert len(entries(rows, incident_id, "outage")) == 3
    [incident] = rows(Incident)
    assert incident["restored_at"] is not None


def test_new_links_on_a_resolved_incident_leave_its_outages_as_they_ended(
    client, admin, people, rows
):
    incident_id = open_incident(client, admin, "node:n1")
    assert_success(set_status(client, admin, incident_id, 2), 200)
    ended = affected_rows(rows, incident_id)

    body = {"links": [ref("site:s1")]}
    assert_success(call(client, admin, "PUT", ticket_url(incident_id), body), 200)

    assert affected_rows(rows, incident_id) == ended


def test_an_outage_that_began_after_the_restore_time_ends_where_it_began(
    client, admin, people, rows
):
    incident_id = open_incident(client, admin, "node:n1", starts_at=-90)
    body = {"links": [ref("site:s1")]}  # cat joins now
    assert_success(call(client, admin, "PUT", ticket_url(incident_id), body), 200)

    restored = {"status": 2, "restored_at": when(-30)}
    assert_success(call(client, admin, "PUT", ticket_url(incident_id, "/status"), restored), 200)

    cat = affected_rows(rows, incident_id)[people["cat"]]
    assert cat["affected_until"] == cat["affected_from"]
    page = affected_page(client, admin, incident_id)["data"]
    assert [item["minutes"] for item in page if item["subscriber_id"] == people["cat"]] == [0]

"""Bulk changes, POST /api/v1/tickets/bulk: one change (set status, priority or assignee, and
a reply) to the tickets `ids` names or the list's `filter` finds. Each ticket changes as if
alone, with its own history and version, and has a result of its own; one out of the caller's
reach is 404 there and never touched; bad input changes nothing at all."""

import pytest
from sqlalchemy import insert
from support.client import assert_success, call
from support.database import history_in_db, now, session
from support.urls import SUBSCRIBERS, TICKETS

from tickets_service.bulk import FILTER_LIMIT
from tickets_service.models import Ticket, TicketReply

BULK = f"{TICKETS}/bulk"
CHANGED = {"status": 200, "message": "Changed."}


def bulk(client, account, body: dict, headers=None):
    return call(client, account, "POST", BULK, body, headers=headers)


def results(response) -> list[dict]:
    body = assert_success(response, 200)
    assert list(body["data"]) == ["results"]
    return body["data"]["results"]


def changes_of(rows, ticket_id: int) -> list[tuple]:
    """A ticket's history less its creation, as (action, field, old, new, user_id)."""
    return [entry for entry in history_in_db(rows, ticket_id) if entry[0] != "created"]


# --- What changes -------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["admin", "staff"])
def test_each_ticket_named_changes_with_its_own_history_and_version(
    request, client, staff, make_ticket, fetch, rows, caller
):
    who = request.getfixturevalue(caller)
    tickets = [make_ticket(staff, priority=2, status=0) for _ in range(3)]
    before = {t: fetch(Ticket, t) for t in tickets}
    body = {
        "ids": [tickets[2], tickets[0], tickets[1]],
        "set": {"status": 1, "priority": 3, "assignee_id": staff.id},
        "reply": {"message": "We are on it.", "internal": False},
    }

    answer = results(bulk(client, who, body))

    assert answer == [{"id": t, **CHANGED} for t in body["ids"]]
    for t in tickets:
        row = fetch(Ticket, t)
        assert (row["status"], row["priority"], row["assignee_id"]) == (1, 3, staff.id)
        assert row["version"] > before[t]["version"]
        assert sorted(changes_of(rows, t), key=str) == sorted(
            [
                ("status_changed", "status", 0, 1, who.id),
                ("updated", "priority", 2, 3, who.id),
                ("assigned", "assignee_id", None, staff.id, who.id),
                ("replied", None, None, None, who.id),
            ],
            key=str,
        )
    replies = [
        (r["ticket_id"], r["user_id"], r["message"], r["internal"]) for r in rows(TicketReply)
    ]
    assert sorted(replies) == [(t, who.id, "We are on it.", False) for t in tickets]


def test_an_internal_reply_alone_is_a_note_on_each(client, admin, make_ticket, fetch, rows):
    tickets = [make_ticket(admin) for _ in range(2)]

    body = {"ids": tickets, "reply": {"message": "Checked the OLT.", "internal": True}}
    assert results(bulk(client, admin, body)) == [{"id": t, **CHANGED} for t in tickets]

    for t in tickets:
        assert changes_of(rows, t) == [("noted", None, None, None, admin.id)]
        assert fetch(Ticket, t)["status"] == 0
    assert {r["internal"] for r in rows(TicketReply)} == {True}


# The tickets made for the filter's tests: (status, priority, branch), and which of them
# {"status": "0,1", "priority": 3} finds for ISP 1's admin (branch 1).
FILTERED = [(0, 3, 1), (1, 3, 1), (2, 3, 1), (0, 2, 1), (1, 3, 2)]


@pytest.mark.parametrize(
    ("filters", "found"),
    [
        ({"status": "0,1", "priority": 3}, [0, 1]),
        ({"status": [0, 1], "priority": "3"}, [0, 1]),
        ({"status": "0,1", "priority": 3, "branch_id": 2}, [4]),
        ({"priority": 1}, []),
    ],
)
def test_a_filter_changes_the_tickets_the_list_would_find(
    client, admin, make_ticket, fetch, filters, found
):
    tickets = [make_ticket(admin, status=s, priority=p, branch_id=b) for s, p, b in FILTERED]
    before = {t: fetch(Ticket, t) for t in tickets}

    answer = results(bulk(client, admin, {"filter": filters, "set": {"priority": 1}}))

    assert answer == [{"id": tickets[n], **CHANGED} for n in found]
    for n, t in enumerate(tickets):
        if n in found:
            assert fetch(Ticket, t)["priority"] == 1
        else:
            assert fetch(Ticket, t) == before[t]


@pytest.mark.parametrize(
    ("caller", "owner", "branch_id"),
    [
        ("admin", "other_admin", 1),  # another ISP's ticket
        ("staff", "other_staff", 1),
        ("staff", "staff_branch2", 2),  # for staff, another branch's
    ],
)
def test_a_ticket_out_of_reach_is_404_in_the_results_and_untouched(
    request, client, make_ticket, fetch, rows, caller, owner, branch_id
):
    who = request.getfixturevalue(caller)
    mine = make_ticket(who)
    theirs = make_ticket(request.getfixturevalue(owner), branch_id=branch_id)
    before = fetch(Ticket, theirs)
    body = {"ids": [theirs, mine], "set": {"status": 1}, "reply": {"message": "Done."}}

    answer = results(bulk(client, who, body))

    assert answer == [
        {"id": theirs, "status": 404, "message": "Ticket not found."},
        {"id": mine, **CHANGED},
    ]
    assert fetch(Ticket, theirs) == before
    assert changes_of(rows, theirs) == []
    assert [r["ticket_id"] for r in rows(TicketReply)] == [mine]
    assert fetch(Ticket, mine)["status"] == 1


def test_an_assignee_a_tickets_branch_cannot_take_is_422_for_that_ticket_only(
    client, admin, staff_branch2, make_ticket, fetch, rows
):
    first = make_ticket(admin, branch_id=1)
    second = make_ticket(admin, branch_id=2)
    before = fetch(Ticket, first)

    body = {"ids": [first, second], "set": {"assignee_id": staff_branch2.id, "priority": 3}}
    answer = results(bulk(client, admin, body))

    assert [(r["id"], r["status"]) for r in answer] == [(first, 422), (second, 200)]
    assert answer[0]["message"].startswith("assignee_id: ")
    assert fetch(Ticket, first) == before
    assert changes_of(rows, first) == []
    assert (fetch(Ticket, second)["assignee_id"], fetch(Ticket, second)["priority"]) == (
        staff_branch2.id,
        3,
    )


# --- Refused as a whole -------------------------------------------------------------------------

TICKET = object()  # stands for the id of a live ticket of the caller's
SET = {"priority": 3}
BAD_BULKS = [
    ({"ids": list(range(1, 1002)), "set": SET}, "ids"),
    ({"ids": [], "set": SET}, "ids"),
    ({"ids": [TICKET], "filter": {"status": "0"}, "set": SET}, "ids"),
    ({"set": SET}, "ids"),
    ({"ids": [TICKET]}, "set"),
    ({"ids": [TICKET], "set": {}}, "set"),
    ({"ids": [TICKET, TICKET], "set": SET}, "ids"),
    ({"ids": [TICKET, 0], "set": SET}, "ids.1"),
    ({"filter": {"status": "9"}, "set": SET}, "filter.status"),
    ({"filter": {"priority": "urgent"}, "set": SET}, "filter.priority"),
    ({"filter": {"colour": "red"}, "set": SET}, "filter.colour"),
    ({"ids": [TICKET], "set": {"status": 9}}, "set.status"),
    ({"ids": [TICKET], "set": {"priority": "3"}}, "set.priority"),
    ({"ids": [TICKET], "set": {"title": "New"}}, "set.title"),
    ({"ids": [TICKET], "reply": {"message": ""}}, "reply.message"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BULKS)
def test_bad_input_is_422_and_changes_nothing(
    client, admin, make_ticket, assert_refused, body, field
):
    ticket_id = make_ticket(admin)
    if "ids" in body:
        body = {**body, "ids": [ticket_id if i is TICKET else i for i in body["ids"]]}

    assert_refused(lambda: bulk(client, admin, body), 422, field)


def test_a_filter_finding_more_than_ten_thousand_tickets_is_422(app, client, admin, assert_refused):
    created = now()
    row = {"isp_id": 1, "branch_id": 1, "created_by_id": admin.id, "title": "Down"}
    row |= {"description": "Red light", "priority": 1, "status": 0}
    row |= {"created_at": created, "updated_at": created}
    with session(app) as own:
        own.execute(insert(Ticket), [row] * (FILTER_LIMIT + 1))
        own.commit()

    assert FILTER_LIMIT == 10_000
    body = {"filter": {"status": "0"}, "set": {"priority": 2}}
    assert_refused(lambda: bulk(client, admin, body), 422, "filter")


# --- Idempotency and incidents ------------------------------------------------------------------


def test_the_same_bulk_with_one_idempotency_key_replays_its_first_answer(
    client, admin, make_ticket, snapshot
):
    tickets = [make_ticket(admin) for _ in range(2)]
    body = {"ids": tickets, "set": {"status": 1}, "reply": {"message": "On it."}}
    key = {"Idempotency-Key": "bulk-3f9a-open-them"}
    first = bulk(client, admin, body, headers=key)
    assert results(first) == [{"id": t, **CHANGED} for t in tickets]
    assert "Idempotent-Replayed" not in first.headers
    after_first = snapshot()

    again = bulk(client, admin, body, headers=key)

    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert snapshot() == after_first


def test_a_bulk_resolving_an_incident_resolves_its_children(
    client, admin, make_subscriber, make_ticket, fetch, rows
):
    url = "/api/v1/network/node/n1"
    assert_success(call(client, admin, "PUT", url, {"name": "OLT 1"}), 201)
    children = []
    for _ in range(2):
        subscriber_id = make_subscriber()
        body = {"network": [{"kind": "node", "external_id": "n1"}]}
        assert_success(call(client, admin, "PUT", f"{SUBSCRIBERS}/{subscriber_id}", body), 200)
        children.append(make_ticket(admin, subscriber_id=subscriber_id))
    body = {"title": "OLT down", "description": "No light", "priority": 3}
    body |= {"links": [{"kind": "node", "external_id": "n1"}], "public_message": "On it."}
    opened = call(client, admin, "POST", "/api/v1/incidents", body)
    incident_id = assert_success(opened, 201)["data"]["id"]
    assert {fetch(Ticket, t)["parent_id"] for t in children} == {incident_id}

    answer = results(bulk(client, admin, {"ids": [incident_id], "set": {"status": 2}}))

    assert answer == [{"id": incident_id, **CHANGED}]
    assert fetch(Ticket, incident_id)["status"] == 2
    for t in children:
        assert fetch(Ticket, t)["status"] == 2
        assert ("status_changed", "status", 0, 2, admin.id) in changes_of(rows, t)


@pytest.mark.parametrize("caller", ["admin", "staff"])
def test_a_filter_of_deleted_tickets_is_422_and_names_none_of_them(
    request, client, make_ticket, assert_refused, caller
):
    account = request.getfixturevalue(caller)
    make_ticket(account, deleted_at=now())
    body = {"filter": {"deleted": "only"}, "set": {"priority": 3}}
    request_it = lambda: call(client, account, "POST", BULK, body)  # noqa: E731
    response = assert_refused(request_it, 422, "filter.deleted")
    assert "results" not in response.get_data(as_text=True)

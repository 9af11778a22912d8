"""Tenant isolation: an ISP's data is invisible to other ISPs, a staff user's reach ends at its
branch, and the isp_id / branch_id / user_id a client sends must agree with its token."""

import pytest

from tickets_service.models import Ticket, TicketReply

from conftest import assert_error, assert_success, scope_of

TICKETS = "/api/v1/tickets"


# --- Helpers ----------------------------------------------------------------------------------


def ticket_url(ticket_id: int, suffix: str = "") -> str:
    return f"{TICKETS}/{ticket_id}{suffix}"


def call(client, account, method: str, url: str, body: dict | None, query: dict | None = None):
    return client.open(url, method=method, json=body, query_string=query, headers=account.headers)


# Every per-ticket endpoint: (method, path suffix, request body without scope).
PER_TICKET = {
    "GET": ("GET", "", None),
    "PUT": ("PUT", "", {"title": "Updated Title"}),
    "DELETE": ("DELETE", "", None),
    "reply": ("POST", "/reply", {"message": "We are looking into this issue."}),
    "status": ("PUT", "/status", {"status": 2}),
}
WITH_BODY = ["PUT", "reply", "status"]


def scoped_call(client, account, endpoint: str, ticket_id: int, scope: dict):
    """Call a per-ticket endpoint the way a client of the spec does: the scope goes in the
    body when there is one, else in the query string."""
    method, suffix, body = PER_TICKET[endpoint]
    url = ticket_url(ticket_id, suffix)
    if body is None:
        return call(client, account, method, url, None, query=scope)
    return call(client, account, method, url, {**scope, **body})


# --- Another ISP, another branch: 404 on every per-ticket endpoint -----------------------------


@pytest.mark.parametrize("intruder", ["other_admin", "other_staff", "staff_branch2"])
@pytest.mark.parametrize("endpoint", list(PER_TICKET))
def test_ticket_outside_reach_is_404_and_untouched(
    request, client, staff, make_ticket, make_reply, snapshot, intruder, endpoint
):
    """ISP 2's users and branch 2's staff see ISP 1 branch 1's ticket as nonexistent."""
    ticket_id = make_ticket(staff)
    make_reply(ticket_id, staff)
    account = request.getfixturevalue(intruder)
    before = snapshot()

    assert_error(scoped_call(client, account, endpoint, ticket_id, scope_of(account)), 404)

    assert snapshot() == before


@pytest.mark.parametrize("endpoint", list(PER_TICKET))
def test_other_isp_admin_gets_404_even_without_scope(
    client, staff, other_admin, make_ticket, snapshot, endpoint
):
    ticket_id = make_ticket(staff)
    before = snapshot()
    method, suffix, body = PER_TICKET[endpoint]

    response = call(client, other_admin, method, ticket_url(ticket_id, suffix), body)

    assert_error(response, 404)
    assert snapshot() == before


# --- Within reach: admins reach every branch of their ISP, staff their own branch --------------


def _answered_with_the_ticket(body, row, reply_rows):
    return body["data"]["id"] == row["id"]


def _title_updated(body, row, reply_rows):
    return row["title"] == "Updated Title"


def _deleted(body, row, reply_rows):
    return row["deleted_at"] is not None


def _reply_stored(body, row, reply_rows):
    return [reply["ticket_id"] for reply in reply_rows] == [row["id"]]


def _status_changed(body, row, reply_rows):
    return row["status"] == 2


# endpoint -> (status code, message, what the database or body shows afterwards)
SUCCESS = {
    "GET": (200, None, _answered_with_the_ticket),
    "PUT": (200, "Ticket updated successfully", _title_updated),
    "DELETE": (200, "Ticket deleted successfully", _deleted),
    "reply": (201, "Reply added successfully", _reply_stored),
    "status": (200, "Ticket status updated successfully", _status_changed),
}


@pytest.mark.parametrize("branch_id", [1, 2])
@pytest.mark.parametrize("endpoint", list(PER_TICKET))
def test_admin_reaches_every_branch_of_its_isp(
    client, admin, make_ticket, fetch, rows, branch_id, endpoint
):
    ticket_id = make_ticket(admin, branch_id=branch_id)
    status, message, took_effect = SUCCESS[endpoint]
    scope = {**scope_of(admin), "branch_id": branch_id}

    response = scoped_call(client, admin, endpoint, ticket_id, scope)

    body = assert_success(response, status, message)
    assert took_effect(body, fetch(Ticket, ticket_id), rows(TicketReply))


@pytest.mark.parametrize("endpoint", ["GET", "PUT", "reply", "status"])
def test_staff_reaches_its_own_branch(client, admin, staff, make_ticket, fetch, rows, endpoint):
    ticket_id = make_ticket(admin, branch_id=staff.branch_id)
    status, message, took_effect = SUCCESS[endpoint]

    response = scoped_call(client, staff, endpoint, ticket_id, scope_of(staff))

    body = assert_success(response, status, message)
    assert took_effect(body, fetch(Ticket, ticket_id), rows(TicketReply))


def test_admin_lists_another_branch_of_its_isp(client, admin, staff_branch2, make_ticket, fetch):
    ticket_id = make_ticket(staff_branch2)

    body = assert_success(
        client.get(
            TICKETS, query_string={**scope_of(admin), "branch_id": 2}, headers=admin.headers
        ),
        200,
    )

    assert [item["id"] for item in body["data"]] == [ticket_id]
    assert fetch(Ticket, ticket_id)["branch_id"] == 2


def test_staff_cannot_delete(client, staff, make_ticket, snapshot):
    ticket_id = make_ticket(staff)
    before = snapshot()

    assert_error(client.delete(ticket_url(ticket_id), headers=staff.headers), 403)

    assert snapshot() == before


# --- Scope in the request must agree with the token: else 403, nothing changed ----------------

# (caller, field, whose value it carries instead of the caller's)
MISMATCHES = [
    ("admin", "isp_id", "other_admin"),
    ("admin", "user_id", "staff"),
    ("staff", "isp_id", "other_staff"),
    ("staff", "branch_id", "staff_branch2"),
    ("staff", "user_id", "admin"),
]
MISMATCH_IDS = [f"{caller} sends {owner}'s {field}" for caller, field, owner in MISMATCHES]


def mismatched_scope(request, caller: str, field: str, owner: str) -> tuple:
    """The caller's account, and its own scope with one field taken from another account."""
    account = request.getfixturevalue(caller)
    other = scope_of(request.getfixturevalue(owner))
    assert other[field] != scope_of(account)[field]
    return account, {**scope_of(account), field: other[field]}


@pytest.mark.parametrize(("caller", "field", "owner"), MISMATCHES, ids=MISMATCH_IDS)
def test_list_with_foreign_scope_is_403(request, client, make_ticket, caller, field, owner):
    account, scope = mismatched_scope(request, caller, field, owner)
    make_ticket(request.getfixturevalue(owner))

    body = assert_error(client.get(TICKETS, query_string=scope, headers=account.headers), 403)

    assert "data" not in body


@pytest.mark.parametrize(("caller", "field", "owner"), MISMATCHES, ids=MISMATCH_IDS)
def test_create_with_foreign_scope_is_403(request, client, rows, caller, field, owner):
    account, scope = mismatched_scope(request, caller, field, owner)
    sent = {**scope, "title": "Connection Issue", "description": "Down", "priority": 2}

    assert_error(client.post(TICKETS, json=sent, headers=account.headers), 403)

    assert rows(Ticket) == []


@pytest.mark.parametrize(("caller", "field", "owner"), MISMATCHES, ids=MISMATCH_IDS)
@pytest.mark.parametrize("endpoint", WITH_BODY)
def test_body_with_foreign_scope_is_403(
    request, client, admin, make_ticket, snapshot, caller, field, owner, endpoint
):
    account, scope = mismatched_scope(request, caller, field, owner)
    ticket_id = make_ticket(admin, branch_id=account.branch_id)
    method, suffix, body = PER_TICKET[endpoint]
    before = snapshot()

    assert_error(
        call(client, account, method, ticket_url(ticket_id, suffix), {**scope, **body}), 403
    )

    assert snapshot() == before


# Staff are refused DELETE whatever the scope, so only admins' DELETE tells scope apart.
QUERY_CASES = [
    (endpoint, *mismatch)
    for endpoint in PER_TICKET
    for mismatch in MISMATCHES
    if not (endpoint == "DELETE" and mismatch[0] == "staff")
]


@pytest.mark.parametrize(
    ("endpoint", "caller", "field", "owner"),
    QUERY_CASES,
    ids=[
        f"{endpoint}: {caller} sends {owner}'s {field}"
        for endpoint, caller, field, owner in QUERY_CASES
    ],
)
def test_query_string_with_foreign_scope_is_403(
    request, client, admin, make_ticket, snapshot, endpoint, caller, field, owner
):
    account, scope = mismatched_scope(request, caller, field, owner)
    ticket_id = make_ticket(admin, branch_id=account.branch_id)
    method, suffix, body = PER_TICKET[endpoint]
    before = snapshot()

    assert_error(
        call(client, account, method, ticket_url(ticket_id, suffix), body, query=scope), 403
    )

    assert snapshot() == before


# --- Lists never show what is outside the caller's reach --------------------------------------


@pytest.mark.parametrize("caller", ["admin", "staff"])
def test_list_never_includes_another_isps_tickets(
    request, client, other_admin, make_ticket, fetch, caller
):
    account = request.getfixturevalue(caller)
    own = make_ticket(account)
    foreign = make_ticket(other_admin, branch_id=account.branch_id)

    body = assert_success(
        client.get(TICKETS, query_string=scope_of(account), headers=account.headers), 200
    )

    assert fetch(Ticket, foreign)["branch_id"] == account.branch_id
    assert [item["id"] for item in body["data"]] == [own]
    assert body["meta"]["total"] == 1


def test_staff_list_never_includes_another_branchs_tickets(
    client, staff, staff_branch2, make_ticket, fetch
):
    own = make_ticket(staff)
    other_branch = make_ticket(staff_branch2)

    body = assert_success(
        client.get(TICKETS, query_string=scope_of(staff), headers=staff.headers), 200
    )

    assert fetch(Ticket, other_branch)["isp_id"] == staff.isp_id
    assert [item["id"] for item in body["data"]] == [own]
    assert body["meta"]["total"] == 1


# --- A subscriber must belong to the ticket's ISP and branch ----------------------------------

# (caller, branch of the ticket, ISP and branch of the subscriber)
FOREIGN_SUBSCRIBERS = [
    ("staff", 1, (2, 1)),
    ("staff", 1, (1, 2)),
    ("admin", 1, (2, 1)),
    ("admin", 1, (1, 2)),
    ("admin", 2, (1, 1)),
]
FOREIGN_SUBSCRIBER_IDS = [
    f"{caller}, branch-{branch} ticket, subscriber of ISP {isp} branch {sub_branch}"
    for caller, branch, (isp, sub_branch) in FOREIGN_SUBSCRIBERS
]


@pytest.mark.parametrize(
    ("caller", "branch_id", "subscriber_scope"), FOREIGN_SUBSCRIBERS, ids=FOREIGN_SUBSCRIBER_IDS
)
def test_create_with_foreign_subscriber_is_422(
    request, client, make_subscriber, rows, caller, branch_id, subscriber_scope
):
    account = request.getfixturevalue(caller)
    isp_id, subscriber_branch = subscriber_scope
    subscriber_id = make_subscriber(isp_id=isp_id, branch_id=subscriber_branch)
    sent = {
        **scope_of(account),
        "branch_id": branch_id,
        "subscriber_id": subscriber_id,
        "title": "Connection Issue",
        "description": "Down",
        "priority": 2,
    }

    body = assert_error(client.post(TICKETS, json=sent, headers=account.headers), 422)

    assert "subscriber_id" in body["errors"]
    assert rows(Ticket) == []


@pytest.mark.parametrize(
    ("caller", "branch_id", "subscriber_scope"), FOREIGN_SUBSCRIBERS, ids=FOREIGN_SUBSCRIBER_IDS
)
def test_update_with_foreign_subscriber_is_422(
    request,
    client,
    admin,
    make_subscriber,
    make_ticket,
    snapshot,
    caller,
    branch_id,
    subscriber_scope,
):
    account = request.getfixturevalue(caller)
    ticket_id = make_ticket(
        admin, branch_id=branch_id, subscriber_id=make_subscriber(branch_id=branch_id)
    )
    isp_id, subscriber_branch = subscriber_scope
    subscriber_id = make_subscriber(isp_id=isp_id, branch_id=subscriber_branch)
    before = snapshot()

    body = assert_error(
        client.put(
            ticket_url(ticket_id), json={"subscriber_id": subscriber_id}, headers=account.headers
        ),
        422,
    )

    assert "subscriber_id" in body["errors"]
    assert snapshot() == before

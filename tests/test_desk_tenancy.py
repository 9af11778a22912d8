"""Tenant isolation on every new endpoint. Another ISP's admin and staff, and
another branch's staff, get 404 for an object out of reach and 403 for a scope parameter that
disagrees with their token; they never get data, and nothing changes."""

from dataclasses import dataclass

import pytest
from support.client import (
    STATS,
    SUBSCRIBERS,
    USERS,
    Account,
    assert_error,
    assert_success,
    call,
    get,
    ids,
    list_tickets,
    scope_of,
    ticket_url,
)
from support.database import desk_state, now

from tickets_service.models import Subscriber


@dataclass(frozen=True)
class Branch1:
    """ISP 1 branch 1's objects: a live ticket with a reply, a deleted one, a subscriber, and
    the branch's staff member."""

    ticket: int
    deleted_ticket: int
    subscriber: int
    staff: Account


@pytest.fixture
def branch1(admin, staff, make_ticket, make_subscriber, make_reply) -> Branch1:
    subscriber = make_subscriber(name="Ann Lee", phone="+1555", email="ann@example.test")
    ticket = make_ticket(staff, subscriber_id=subscriber, assignee_id=staff.id, due_at=now())
    make_reply(ticket, staff)
    deleted = make_ticket(admin, deleted_at=now())
    return Branch1(ticket, deleted, subscriber, staff)


# (method, url from the branch's objects, body)
OBJECT_ENDPOINTS = {
    "history": ("GET", lambda b: ticket_url(b.ticket, "/history"), None),
    "replies": ("GET", lambda b: ticket_url(b.ticket, "/replies"), None),
    "restore": ("POST", lambda b: ticket_url(b.deleted_ticket, "/restore"), None),
    "assign": ("PUT", lambda b: ticket_url(b.ticket), {"assignee_id": None}),
    "due_at": ("PUT", lambda b: ticket_url(b.ticket), {"due_at": None}),
    "note": ("POST", lambda b: ticket_url(b.ticket, "/reply"), {"message": "x", "internal": True}),
    "get subscriber": ("GET", lambda b: f"{SUBSCRIBERS}/{b.subscriber}", None),
    "put subscriber": ("PUT", lambda b: f"{SUBSCRIBERS}/{b.subscriber}", {"name": "Mine now"}),
    "get user": ("GET", lambda b: f"{USERS}/{b.staff.id}", None),
    "put user": ("PUT", lambda b: f"{USERS}/{b.staff.id}", {"is_active": False}),
}
INTRUDERS = ["other_admin", "other_staff", "staff_branch2"]


@pytest.mark.parametrize("intruder", INTRUDERS)
@pytest.mark.parametrize("endpoint", list(OBJECT_ENDPOINTS))
def test_object_out_of_reach_is_404_without_data_or_change(
    request, client, branch1, rows, intruder, endpoint
):
    account = request.getfixturevalue(intruder)
    method, url, body = OBJECT_ENDPOINTS[endpoint]
    before = desk_state(rows)

    body = assert_error(call(client, account, method, url(branch1), body), 404)

    assert "data" not in body
    assert desk_state(rows) == before


@pytest.mark.parametrize("intruder", INTRUDERS)
def test_sync_never_reaches_another_tenants_subscriber(request, client, admin, rows, intruder):
    """The same external id names a different subscriber in another ISP; staff may not sync."""
    made = call(client, admin, "PUT", f"{SUBSCRIBERS}/by-external-id/crm-1", {"name": "Ann"})
    mine = assert_success(made, 201)["data"]["id"]
    account = request.getfixturevalue(intruder)

    response = call(client, account, "PUT", f"{SUBSCRIBERS}/by-external-id/crm-1", {"name": "X"})

    if account.role == "admin":
        assert assert_success(response, 201)["data"]["id"] != mine
    else:
        assert_error(response, 403)
    assert (rows(Subscriber)[0]["isp_id"], rows(Subscriber)[0]["name"]) == (1, "Ann")


# --- Scope parameters that disagree with the token: 403 ---------------------------------------

# (method, url, where the scope goes) for every new endpoint that takes scope parameters.
SCOPED = {
    "stats": ("GET", lambda b: STATS, "query", None),
    "history": ("GET", lambda b: ticket_url(b.ticket, "/history"), "query", None),
    "replies": ("GET", lambda b: ticket_url(b.ticket, "/replies"), "query", None),
    "restore": ("POST", lambda b: ticket_url(b.deleted_ticket, "/restore"), "query", None),
    "list subscribers": ("GET", lambda b: SUBSCRIBERS, "query", None),
    "get subscriber": ("GET", lambda b: f"{SUBSCRIBERS}/{b.subscriber}", "query", None),
    "create subscriber": ("POST", lambda b: SUBSCRIBERS, "body", {"name": "N"}),
    "put subscriber": ("PUT", lambda b: f"{SUBSCRIBERS}/{b.subscriber}", "body", {"name": "N"}),
    "sync subscriber": ("PUT", lambda b: f"{SUBSCRIBERS}/by-external-id/e1", "body", {"name": "N"}),
    "list users": ("GET", lambda b: USERS, "query", None),
    "get user": ("GET", lambda b: f"{USERS}/{b.staff.id}", "query", None),
    "create user": (
        "POST",
        lambda b: USERS,
        "body",
        {"name": "N", "email": "n@example.test", "role": "staff", "password": "12345678"},
    ),
    "put user": ("PUT", lambda b: f"{USERS}/{b.staff.id}", "body", {"name": "N"}),
}
MISMATCHES = {
    "another isp": lambda account, other: {"isp_id": 2},
    "another user": lambda account, other: {"user_id": other.id},
    "another branch (staff)": lambda account, other: {"branch_id": 2},
}


@pytest.mark.parametrize("mismatch", list(MISMATCHES))
@pytest.mark.parametrize("endpoint", list(SCOPED))
def test_scope_parameter_that_disagrees_with_the_token_is_403(
    client, admin, staff, branch1, rows, endpoint, mismatch
):
    method, url, where, body = SCOPED[endpoint]
    account = staff if "staff" in mismatch else admin
    other = admin if account is staff else staff
    scope = {**scope_of(account), **MISMATCHES[mismatch](account, other)}
    before = desk_state(rows)

    if where == "query":
        response = call(client, account, method, url(branch1), None, query=scope)
    else:
        response = call(client, account, method, url(branch1), {**body, **scope})

    assert "data" not in assert_error(response, 403)
    assert desk_state(rows) == before


# --- Lists never show another tenant's rows -----------------------------------------------------


@pytest.mark.parametrize("intruder", INTRUDERS)
def test_another_tenants_lists_and_counts_hold_nothing_of_branch_one(
    request, client, branch1, intruder
):
    account = request.getfixturevalue(intruder)

    subscribers = assert_success(get(client, account, SUBSCRIBERS, q="ann"), 200)
    users = assert_success(get(client, account, USERS), 200)
    stats = assert_success(get(client, account, STATS), 200)["data"]
    tickets = assert_success(list_tickets(client, account, status="0,1,2,3"), 200)

    assert (subscribers["data"], subscribers["meta"]["total"]) == ([], 0)
    assert branch1.staff.id not in ids(users)
    assert sum(stats["by_status"].values()) == stats["unassigned_open"] == stats["overdue"] == 0
    assert (tickets["data"], tickets["meta"]["total"]) == ([], 0)


def test_another_isps_admin_lists_no_deleted_ticket_of_isp_one(client, other_admin, branch1):
    body = assert_success(list_tickets(client, other_admin, deleted="only"), 200)

    assert (ids(body), body["meta"]["total"]) == ([], 0)

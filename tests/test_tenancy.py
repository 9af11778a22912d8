"""Tenant isolation, on every scoped endpoint of the catalogue: an ISP's data is invisible to
other ISPs, a staff user's reach ends at its branch, and the isp_id / branch_id / user_id a client
sends must agree with its token."""

from dataclasses import replace

import pytest
from support.catalogue import LIST, REACHING, ROLE_FIRST, SCOPED
from support.client import assert_error, assert_success, call, get, ids, list_tickets, scope_of
from support.urls import STATS, SUBSCRIBERS, USERS

from tickets_service.models import Subscriber, Ticket

INTRUDERS = ["other_admin", "other_staff", "staff_branch2"]


# --- Outside one's reach, a ticket does not exist ---------------------------------------------


@pytest.mark.parametrize("claims", ["own-scope", "no-scope"])
@pytest.mark.parametrize("intruder", INTRUDERS)
@pytest.mark.parametrize("endpoint", REACHING, ids=str)
def test_an_object_outside_ones_reach_is_404_and_untouched(
    request, send, staff, make_world, make_reply, assert_refused, endpoint, intruder, claims
):
    """Another ISP's users, and another branch's staff, cannot tell the ticket, subscriber,
    user, webhook or delivery exists: 404, not 403, so ids cannot be probed across tenants.
    (Webhooks are an admin's only: staff are 403 there before anything is looked up.)"""
    world = make_world(staff)
    make_reply(world.ticket_id, staff)
    caller = request.getfixturevalue(intruder)
    intruding = replace(world, caller=caller, scope={} if claims == "no-scope" else None)
    expected = 403 if endpoint in ROLE_FIRST and caller.role == "staff" else 404
    assert "data" not in assert_refused(lambda: send(endpoint, intruding), expected).get_json()


@pytest.mark.parametrize("caller", ["admin", "staff"])
def test_the_list_never_shows_another_isps_or_branchs_tickets(
    request, send, make_world, make_ticket, other_admin, staff_branch2, fetch, caller
):
    world = make_world(request.getfixturevalue(caller))
    foreign = make_ticket(other_admin, branch_id=world.caller.branch_id)
    other_branch = make_ticket(staff_branch2)
    body = assert_success(send(LIST, world), 200)
    assert [item["id"] for item in body["data"]] == [world.ticket_id]
    assert body["meta"]["total"] == 1
    assert fetch(Ticket, foreign)["branch_id"] == fetch(Ticket, world.ticket_id)["branch_id"]
    assert fetch(Ticket, other_branch)["isp_id"] == world.caller.isp_id


# --- Within reach: admins reach every branch of their ISP, staff their own branch --------------


@pytest.mark.parametrize("branch_id", [1, 2])
@pytest.mark.parametrize("endpoint", SCOPED, ids=str)
def test_an_admin_reaches_every_branch_of_its_isp(
    send, admin, make_world, assert_took_effect, endpoint, branch_id
):
    world = make_world(admin, branch_id, scope={**scope_of(admin), "branch_id": branch_id})
    assert_took_effect(endpoint, world, send(endpoint, world))


@pytest.mark.parametrize("endpoint", [e for e in SCOPED if not e.admin_only], ids=str)
def test_staff_reach_their_own_branch(send, admin, staff, make_world, assert_took_effect, endpoint):
    world = make_world(staff, author=admin)
    assert_took_effect(endpoint, world, send(endpoint, world))


@pytest.mark.parametrize("endpoint", [e for e in SCOPED if e.admin_only], ids=str)
def test_staff_cannot_call_an_admin_only_endpoint(
    send, staff, make_world, assert_refused, endpoint
):
    world = make_world(staff)
    assert_refused(lambda: send(endpoint, world), 403)


# --- The scope a request claims must agree with its token: else 403, nothing changed ----------

# (caller, field, whose value it carries instead of the caller's)
MISMATCHES = [
    ("admin", "isp_id", "other_admin"),
    ("admin", "user_id", "staff"),
    ("staff", "isp_id", "other_staff"),
    ("staff", "branch_id", "staff_branch2"),
    ("staff", "user_id", "admin"),
]
FOREIGN_SCOPES = [
    pytest.param(
        endpoint,
        where,
        *mismatch,
        id=f"{endpoint}-{where}: {mismatch[0]} sends {mismatch[2]}'s {mismatch[1]}",
    )
    for endpoint in SCOPED
    for where in (("body", "query") if endpoint.body else ("query",))
    for mismatch in MISMATCHES
    # Staff are refused admin-only endpoints whatever they claim: only admins tell scope apart.
    if not (endpoint.admin_only and mismatch[0] == "staff")
]


@pytest.mark.parametrize(("endpoint", "where", "caller", "field", "owner"), FOREIGN_SCOPES)
def test_a_scope_that_disagrees_with_the_token_is_403(
    request, send, make_world, make_ticket, assert_refused, endpoint, where, caller, field, owner
):
    world = make_world(request.getfixturevalue(caller))
    other = scope_of(request.getfixturevalue(owner))
    make_ticket(request.getfixturevalue(owner))
    claimed = {**world.claimed, field: other[field]}
    assert claimed != world.claimed
    if where == "body":
        assert_refused(lambda: send(endpoint, replace(world, scope=claimed)), 403)
    else:
        assert_refused(lambda: send(endpoint, world, query_string=claimed), 403)


# --- A subscriber must belong to the ticket's ISP and branch ----------------------------------

# (caller, branch of the ticket, ISP and branch of the subscriber, or None for no such one)
FOREIGN_SUBSCRIBERS = [
    ("staff", 1, (2, 1)),
    ("staff", 1, (1, 2)),
    ("admin", 1, (2, 1)),
    ("admin", 1, (1, 2)),
    ("admin", 2, (1, 1)),
    ("admin", 1, None),
]


@pytest.mark.parametrize(
    ("caller", "branch_id", "subscriber"),
    FOREIGN_SUBSCRIBERS,
    ids=[
        f"{caller}, branch-{branch} ticket, subscriber "
        + (f"of ISP {where[0]} branch {where[1]}" if where else "that no longer exists")
        for caller, branch, where in FOREIGN_SUBSCRIBERS
    ],
)
@pytest.mark.parametrize(
    "endpoint", [e for e in SCOPED if "subscriber_id" in e.integer_fields], ids=str
)
def test_a_subscriber_outside_the_tickets_isp_and_branch_is_422(
    request,
    send,
    admin,
    make_world,
    make_subscriber,
    assert_refused,
    endpoint,
    caller,
    branch_id,
    subscriber,
):
    account = request.getfixturevalue(caller)
    world = make_world(account, branch_id, admin, {**scope_of(account), "branch_id": branch_id})
    if subscriber is None:
        subscriber_id = world.subscriber_id + 1000
    else:
        subscriber_id = make_subscriber(isp_id=subscriber[0], branch_id=subscriber[1])
    sent = {**endpoint.body(world), "subscriber_id": subscriber_id}
    assert_refused(lambda: send(endpoint, world, sent), 422, "subscriber_id")


# --- Across tenants, by external id and in lists and counts -----------------------------------


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


@pytest.mark.parametrize("intruder", INTRUDERS)
def test_another_tenants_lists_and_counts_hold_nothing_of_branch_one(
    request, client, staff, make_world, make_reply, intruder
):
    """Branch 1 of ISP 1 holds a ticket with a reply, a deleted ticket, a subscriber and its
    staff: another ISP's users and branch 2's staff see none of it."""
    world = make_world(staff)
    make_reply(world.ticket_id, staff)
    account = request.getfixturevalue(intruder)

    subscribers = assert_success(get(client, account, SUBSCRIBERS, q="ann"), 200)
    users = assert_success(get(client, account, USERS), 200)
    stats = assert_success(get(client, account, STATS), 200)["data"]
    tickets = assert_success(list_tickets(client, account, status="0,1,2,3"), 200)

    assert (subscribers["data"], subscribers["meta"]["total"]) == ([], 0)
    assert staff.id not in ids(users)
    assert sum(stats["by_status"].values()) == stats["unassigned_open"] == stats["overdue"] == 0
    assert (tickets["data"], tickets["meta"]["total"]) == ([], 0)


def test_another_isps_admin_lists_no_deleted_ticket_of_isp_one(
    client, other_admin, staff, make_world
):
    make_world(staff)  # a live and a deleted ticket
    body = assert_success(list_tickets(client, other_admin, deleted="only"), 200)

    assert (ids(body), body["meta"]["total"]) == ([], 0)

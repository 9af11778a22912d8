"""Staff read the subscribers of their reach, admins write them, and the ISP
platform syncs them by an external id unique per ISP. Deleting is not offered."""

import pytest
from support.client import assert_error, assert_success, call, get, ids
from support.database import TIMESTAMP, desk_state, stamp
from support.urls import SUBSCRIBERS

from tickets_service.models import Subscriber, Ticket

SUBSCRIBER_KEYS = ["id", "isp_id", "branch_id", "name", "phone", "email", "external_id"]
SUBSCRIBER_KEYS += ["created_at", "updated_at", "network"]


def subscriber_url(subscriber_id) -> str:
    return f"{SUBSCRIBERS}/{subscriber_id}"


SYNCED = {"name": "Synced Person", "phone": "+15550909", "email": "sync@example.test"}


def sync(client, account, external_id="crm-77", body=None):
    body = body or SYNCED
    return call(client, account, "PUT", f"{SUBSCRIBERS}/by-external-id/{external_id}", body)


def create(client, account, **body) -> int:
    response = call(client, account, "POST", SUBSCRIBERS, body)
    return assert_success(response, 201, "Subscriber created successfully")["data"]["id"]


# --- Reading ----------------------------------------------------------------------------------


@pytest.fixture
def people(make_subscriber) -> dict:
    return {
        "ann": make_subscriber(name="Ann Lee", phone="+15550101", email="ann@example.test"),
        "bob": make_subscriber(name="Bob Stone", phone="+15550202", email="bob@mail.test"),
        "school": make_subscriber(name="100% Fibre École"),
        "branch 2": make_subscriber(branch_id=2, name="Ann Far"),
        "isp 2": make_subscriber(isp_id=2, name="Ann Other"),
    }


@pytest.mark.parametrize(
    ("who", "query", "expected"),
    [
        ("staff", {}, ["school", "ann", "bob"]),
        ("admin", {}, ["school", "ann", "bob"]),
        ("admin", {"branch_id": 2}, ["branch 2"]),
        ("staff", {"per_page": 2}, ["school", "ann"]),
        ("staff", {"per_page": 2, "page": 2}, ["bob"]),
    ],
)
def test_the_list_shows_one_branch_by_name_a_page_at_a_time(
    request, client, people, who, query, expected
):
    body = assert_success(get(client, request.getfixturevalue(who), SUBSCRIBERS, **query), 200)

    assert ids(body) == [people[name] for name in expected]
    assert {tuple(item) for item in body["data"]} == {tuple(SUBSCRIBER_KEYS)}
    assert body["meta"]["total"] == (1 if query.get("branch_id") else 3)


SEARCHES = [
    ("ann", ["ann"]),
    ("ANN LEE", ["ann"]),
    ("0202", ["bob"]),
    ("+1555", ["ann", "bob"]),
    ("MAIL.TEST", ["bob"]),
    ("%", ["school"]),
    ("_", []),
    ("far", []),
    ("other", []),
    ("école", ["school"]),
]


@pytest.mark.parametrize(("q", "expected"), SEARCHES)
def test_q_searches_name_phone_and_email_in_the_branch(client, staff, people, q, expected):
    body = assert_success(get(client, staff, SUBSCRIBERS, q=q), 200)

    assert sorted(ids(body)) == sorted(people[name] for name in expected)


def test_one_subscriber_is_shown_as_stored(client, staff, people, fetch):
    shown = assert_success(get(client, staff, subscriber_url(people["ann"])), 200)["data"]

    row = fetch(Subscriber, people["ann"])
    assert list(shown) == SUBSCRIBER_KEYS
    assert shown == {**{k: row[k] for k in SUBSCRIBER_KEYS[:7]}} | {
        "created_at": stamp(row["created_at"]),
        "updated_at": stamp(row["updated_at"]),
        "network": [],
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [("q", ""), ("q", "a\x00b"), ("q", "x" * 201), ("per_page", "0"), ("name", "Ann")],
)
def test_a_bad_list_parameter_is_422_on_that_parameter(client, staff, name, value):
    assert_error(get(client, staff, SUBSCRIBERS, **{name: value}), 422, name)


# --- Creating and updating (admins) ------------------------------------------------------------


@pytest.mark.parametrize("branch", [{}, {"branch_id": 2}])
def test_an_admin_creates_a_subscriber_in_a_branch_of_the_isp(client, admin, fetch, branch):
    body = {"name": " Jane Roe ", "phone": "+15550303", "email": "jane@example.test", **branch}

    row = fetch(Subscriber, create(client, admin, **body))

    assert (row["isp_id"], row["branch_id"]) == (1, branch.get("branch_id", 1))
    assert row["name"] == "Jane Roe"
    assert (row["phone"], row["email"], row["external_id"]) == (body["phone"], body["email"], None)


def test_subscribers_without_an_external_id_never_collide(client, admin, rows):
    create(client, admin, name="No Id")
    create(client, admin, name="No Id")

    assert [row["external_id"] for row in rows(Subscriber)] == [None, None]


BAD_BODY = [
    ({"name": ""}, "name"),
    ({"name": "Two\nLines"}, "name"),
    ({"name": "Bell\x07"}, "name"),
    ({"name": 7}, "name"),
    ({"phone": "1" * 33}, "phone"),
    ({"email": "not-an-email"}, "email"),
    ({"external_id": ""}, "external_id"),
    ({"external_id": "crm\x1b42"}, "external_id"),
    ({"external_id": "x" * 256}, "external_id"),
    ({"external_id": 42}, "external_id"),
    # A path segment of the sync, where a slash could never be named.
    ({"external_id": "crm/42"}, "external_id"),
    ({"external_id": "/"}, "external_id"),
    ({"notes": "x"}, "notes"),
    ({"branch_id": "2"}, "branch_id"),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("body", "field"), [({}, "name"), *BAD_BODY])
def test_a_bad_subscriber_body_is_422_and_writes_nothing(
    client, admin, make_subscriber, assert_refused, method, body, field
):
    url = SUBSCRIBERS if method == "POST" else subscriber_url(make_subscriber())
    body = {"name": "A", **body} if method == "POST" and field != "name" else body
    assert_refused(lambda: call(client, admin, method, url, body), 422, field if body else None)


def test_an_admin_updates_a_subscriber(client, admin, make_subscriber, fetch):
    subscriber_id = make_subscriber(name="Old", phone="+1")
    body = {"name": "New", "phone": None, "email": "new@example.test", "external_id": "crm-9"}

    response = call(client, admin, "PUT", subscriber_url(subscriber_id), body)

    assert_success(response, 200, "Subscriber updated successfully")
    assert {k: v for k, v in fetch(Subscriber, subscriber_id).items() if k in body} == body


def test_a_moved_subscriber_keeps_its_tickets(client, admin, make_subscriber, make_ticket, fetch):
    subscriber_id = make_subscriber(name="Mover")
    ticket_id = make_ticket(admin, subscriber_id=subscriber_id)

    assert_success(call(client, admin, "PUT", subscriber_url(subscriber_id), {"branch_id": 2}), 200)

    assert fetch(Subscriber, subscriber_id)["branch_id"] == 2
    assert fetch(Ticket, ticket_id)["subscriber_id"] == subscriber_id
    shown = assert_success(get(client, admin, f"/api/v1/tickets/{ticket_id}"), 200)["data"]
    assert shown["subscriber_name"] == "Mover"


def test_a_ticket_sent_back_with_its_moved_subscriber_updates(
    client, admin, make_subscriber, make_ticket, fetch
):
    """A client that PUTs back what it fetched, subscriber included, is not refused because the
    subscriber has moved; linking another branch's subscriber anew still is."""
    mover, other = make_subscriber(name="Mover"), make_subscriber(branch_id=2, name="Far")
    ticket_id = make_ticket(admin, subscriber_id=mover)
    assert_success(call(client, admin, "PUT", subscriber_url(mover), {"branch_id": 2}), 200)
    url = f"/api/v1/tickets/{ticket_id}"

    response = call(client, admin, "PUT", url, {"subscriber_id": mover, "title": "Kept"})

    assert_success(response, 200)
    row = fetch(Ticket, ticket_id)
    assert (row["subscriber_id"], row["title"]) == (mover, "Kept")
    assert_error(call(client, admin, "PUT", url, {"subscriber_id": other}), 422, "subscriber_id")
    assert fetch(Ticket, ticket_id)["subscriber_id"] == mover


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_an_external_id_is_unique_in_the_isp(client, admin, assert_refused, method):
    create(client, admin, name="Holder", external_id="crm-1")
    other = create(client, admin, name="Other", external_id="crm-2")
    url = SUBSCRIBERS if method == "POST" else subscriber_url(other)
    body = {"name": "X", "external_id": "crm-1"}
    assert_refused(lambda: call(client, admin, method, url, body), 409)


def test_a_subscriber_may_be_sent_its_own_external_id(client, admin, rows):
    holder = create(client, admin, name="Holder", external_id="crm-1")
    body = {"name": "X", "external_id": "crm-1"}
    assert_success(call(client, admin, "PUT", subscriber_url(holder), body), 200)
    assert rows(Subscriber)[0]["name"] == "X"


def test_the_same_external_id_in_another_isp_is_another_subscriber(
    client, admin, other_admin, rows
):
    for account in (admin, other_admin):
        create(client, account, name="Same Id", external_id="crm-1")

    stored = [(r["isp_id"], r["external_id"]) for r in rows(Subscriber)]
    assert stored == [(1, "crm-1"), (2, "crm-1")]


# --- Sync by external id ----------------------------------------------------------------------


def test_sync_creates_an_unknown_subscriber(client, admin, fetch):
    created = assert_success(sync(client, admin), 201)

    row = fetch(Subscriber, created["data"]["id"])
    assert list(created["data"]) == ["id"]
    assert (row["isp_id"], row["branch_id"], row["external_id"]) == (1, 1, "crm-77")
    assert {name: row[name] for name in SYNCED} == SYNCED


def test_sync_updates_a_known_subscriber(client, admin, fetch, rows):
    first = assert_success(sync(client, admin), 201)["data"]["id"]

    again = sync(client, admin, body={"name": "Renamed", "branch_id": 2})

    assert assert_success(again, 200)["data"] == {"id": first}
    row = fetch(Subscriber, first)
    assert (row["name"], row["phone"], row["branch_id"]) == ("Renamed", "+15550909", 2)
    assert len(rows(Subscriber)) == 1


def test_repeating_a_sync_changes_nothing(client, admin, rows):
    first = assert_success(sync(client, admin), 201)["data"]["id"]
    before = desk_state(rows)

    again = sync(client, admin)

    assert assert_success(again, 200)["data"] == {"id": first}
    assert desk_state(rows) == before  # updated_at included


@pytest.mark.parametrize(
    ("external_id", "body", "field"),
    [
        ("crm%01x", None, "external_id"),
        ("crm%7F", None, "external_id"),
        ("x" * 256, None, "external_id"),
        ("%20%20", None, "external_id"),
        ("crm-1", {"phone": "+1"}, "name"),
        ("crm-1", {"name": "A", "external_id": "other"}, "external_id"),
        ("crm-1", {"name": "A", "email": "nope"}, "email"),
        ("crm-1", {"name": "a\tb\nc"}, "name"),
    ],
)
def test_a_bad_sync_is_422_and_writes_nothing(
    client, admin, assert_refused, external_id, body, field
):
    assert_refused(lambda: sync(client, admin, external_id, body), 422, field)


def test_synced_times_are_in_the_api_format(client, admin):
    subscriber_id = assert_success(sync(client, admin), 201)["data"]["id"]

    shown = assert_success(get(client, admin, subscriber_url(subscriber_id)), 200)["data"]

    assert TIMESTAMP.match(shown["created_at"])
    assert TIMESTAMP.match(shown["updated_at"])

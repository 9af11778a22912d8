"""Issue 9, point 9: staff read the subscribers of their reach, admins write them, and the ISP
platform syncs them by an external id that is unique per ISP. Deleting is not offered."""

import pytest
from desk_helpers import SUBSCRIBERS, TIMESTAMP, call, desk_state, ids, stamp

from tickets_service.models import Subscriber, Ticket

from conftest import assert_error, assert_success

SUBSCRIBER_KEYS = ["id", "isp_id", "branch_id", "name", "phone", "email", "external_id"]
SUBSCRIBER_KEYS += ["created_at", "updated_at"]


def subscriber_url(subscriber_id) -> str:
    return f"{SUBSCRIBERS}/{subscriber_id}"


def sync_url(external_id: str) -> str:
    return f"{SUBSCRIBERS}/by-external-id/{external_id}"


def listed(client, account, **query) -> dict:
    return assert_success(client.get(SUBSCRIBERS, query_string=query, headers=account.headers), 200)


# --- Reading ----------------------------------------------------------------------------------


@pytest.fixture
def people(make_subscriber) -> dict:
    return {
        "ann": make_subscriber(name="Ann Lee", phone="+15550101", email="ann@example.test"),
        "bob": make_subscriber(name="Bob Stone", phone="+15550202", email="bob@mail.test"),
        "cid": make_subscriber(name="100% Fiber Cafe", phone=None, email=None),
        "branch 2": make_subscriber(branch_id=2, name="Ann Far"),
        "isp 2": make_subscriber(isp_id=2, name="Ann Other"),
    }


def test_staff_list_their_branch_by_name(client, staff, people):
    body = listed(client, staff)

    assert ids(body) == [people["cid"], people["ann"], people["bob"]]
    assert [list(item) for item in body["data"]] == [SUBSCRIBER_KEYS] * 3
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 3, "pages": 1}


@pytest.mark.parametrize(("branch", "expected"), [(None, ["cid", "ann", "bob"]), (2, ["branch 2"])])
def test_admin_lists_any_branch_of_the_isp(client, admin, people, branch, expected):
    query = {} if branch is None else {"branch_id": branch}

    assert ids(listed(client, admin, **query)) == [people[name] for name in expected]


SEARCHES = [
    ("ann", ["ann"]),
    ("ANN LEE", ["ann"]),
    ("0202", ["bob"]),
    ("+1555", ["ann", "bob"]),
    ("MAIL.TEST", ["bob"]),
    ("example", ["ann"]),
    ("%", ["cid"]),
    ("_", []),
    ("far", []),
    ("other", []),
]


@pytest.mark.parametrize(("q", "expected"), SEARCHES)
def test_q_searches_name_phone_and_email_of_the_branch(client, staff, people, q, expected):
    found = ids(listed(client, staff, q=q))

    assert sorted(found) == sorted(people[name] for name in expected)


def test_subscriber_list_pages(client, staff, people):
    pages = [ids(listed(client, staff, per_page=2, page=page)) for page in (1, 2)]

    assert pages == [[people["cid"], people["ann"]], [people["bob"]]]


def test_get_one_subscriber(client, staff, people, fetch):
    body = assert_success(client.get(subscriber_url(people["ann"]), headers=staff.headers), 200)

    row = fetch(Subscriber, people["ann"])
    assert list(body["data"]) == SUBSCRIBER_KEYS
    assert body["data"]["name"] == row["name"] == "Ann Lee"
    assert body["data"]["created_at"] == stamp(row["created_at"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": "a\x00b"}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"per_page": "500"}, "per_page"),
        ({"branch_id": "b"}, "branch_id"),
        ({"name": "Ann"}, "name"),
    ],
)
def test_bad_subscriber_list_query_is_422(client, staff, query, field):
    assert_error(client.get(SUBSCRIBERS, query_string=query, headers=staff.headers), 422, field)


# --- Creating and updating (admins) ------------------------------------------------------------


def test_admin_creates_a_subscriber_in_their_branch(client, admin, fetch):
    body = {"name": " Jane Roe ", "phone": "+15550303", "email": "jane@example.test"}

    created = assert_success(
        call(client, admin, "POST", SUBSCRIBERS, body), 201, "Subscriber created successfully"
    )

    row = fetch(Subscriber, created["data"]["id"])
    assert set(created["data"]) == {"id"}
    assert (row["isp_id"], row["branch_id"], row["name"]) == (1, 1, "Jane Roe")
    assert (row["phone"], row["email"], row["external_id"]) == (
        "+15550303",
        "jane@example.test",
        None,
    )


def test_admin_creates_a_subscriber_in_another_branch(client, admin, fetch):
    created = call(client, admin, "POST", SUBSCRIBERS, {"name": "Far", "branch_id": 2})

    assert fetch(Subscriber, assert_success(created, 201)["data"]["id"])["branch_id"] == 2


def test_subscribers_without_external_id_never_collide(client, admin, rows):
    for _ in range(2):
        assert_success(call(client, admin, "POST", SUBSCRIBERS, {"name": "No Id"}), 201)

    assert [row["external_id"] for row in rows(Subscriber)] == [None, None]


BAD_SUBSCRIBER = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "Two\nLines"}, "name"),
    ({"name": "Bell\x07"}, "name"),
    ({"name": 7}, "name"),
    ({"name": "A", "phone": "1" * 33}, "phone"),
    ({"name": "A", "email": "not-an-email"}, "email"),
    ({"name": "A", "external_id": ""}, "external_id"),
    ({"name": "A", "external_id": "crm\x1b42"}, "external_id"),
    ({"name": "A", "external_id": "x" * 256}, "external_id"),
    ({"name": "A", "external_id": 42}, "external_id"),
    ({"name": "A", "notes": "x"}, "notes"),
    ({"name": "A", "branch_id": "2"}, "branch_id"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SUBSCRIBER)
def test_bad_subscriber_body_is_422_and_writes_nothing(
    client, admin, make_subscriber, rows, body, field
):
    subscriber_id = make_subscriber()
    before = desk_state(rows)

    assert_error(call(client, admin, "POST", SUBSCRIBERS, body), 422, field)
    if body:  # an update needs no name, so {} is a different case there
        response = call(client, admin, "PUT", subscriber_url(subscriber_id), body)
        assert_error(response, 422, field)

    assert desk_state(rows) == before


def test_admin_updates_a_subscriber(client, admin, make_subscriber, fetch):
    subscriber_id = make_subscriber(name="Old", phone="+1")
    body = {"name": "New", "phone": None, "email": "new@example.test", "external_id": "crm-9"}

    response = call(client, admin, "PUT", subscriber_url(subscriber_id), body)

    assert_success(response, 200, "Subscriber updated successfully")
    row = fetch(Subscriber, subscriber_id)
    assert {k: row[k] for k in body} == body


def test_moving_a_subscriber_keeps_its_tickets_linked(
    client, admin, make_subscriber, make_ticket, fetch
):
    subscriber_id = make_subscriber(name="Mover")
    ticket_id = make_ticket(admin, subscriber_id=subscriber_id)

    response = call(client, admin, "PUT", subscriber_url(subscriber_id), {"branch_id": 2})

    assert_success(response, 200)
    assert fetch(Subscriber, subscriber_id)["branch_id"] == 2
    assert fetch(Ticket, ticket_id)["subscriber_id"] == subscriber_id
    shown = assert_success(client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers), 200)
    assert shown["data"]["subscriber_name"] == "Mover"


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_external_id_taken_in_the_isp_is_409(client, admin, rows, method):
    for name, external_id in (("Holder", "crm-1"), ("Other", "crm-2")):
        body = {"name": name, "external_id": external_id}
        assert_success(call(client, admin, "POST", SUBSCRIBERS, body), 201)
    before = desk_state(rows)
    url = SUBSCRIBERS if method == "POST" else subscriber_url(rows(Subscriber)[1]["id"])

    response = call(client, admin, method, url, {"name": "Clash", "external_id": "crm-1"})

    assert_error(response, 409)
    assert desk_state(rows) == before


def test_same_external_id_in_another_isp_is_a_different_subscriber(
    client, admin, other_admin, rows
):
    for account in (admin, other_admin):
        body = {"name": "Same Id", "external_id": "crm-1"}
        assert_success(call(client, account, "POST", SUBSCRIBERS, body), 201)

    assert [(r["isp_id"], r["external_id"]) for r in rows(Subscriber)] == [
        (1, "crm-1"),
        (2, "crm-1"),
    ]


def test_updating_a_subscriber_with_its_own_external_id_is_fine(client, admin, rows):
    made = call(client, admin, "POST", SUBSCRIBERS, {"name": "Keep", "external_id": "crm-5"})
    subscriber_id = assert_success(made, 201)["data"]["id"]

    body = {"name": "Kept", "external_id": "crm-5"}
    assert_success(call(client, admin, "PUT", subscriber_url(subscriber_id), body), 200)

    assert [(r["name"], r["external_id"]) for r in rows(Subscriber)] == [("Kept", "crm-5")]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", SUBSCRIBERS, {"name": "Nope"}),
        ("PUT", "own", {"name": "Nope"}),
        ("PUT", sync_url("crm-1"), {"name": "Nope"}),
    ],
)
def test_staff_writing_subscribers_is_403(client, staff, make_subscriber, rows, method, url, body):
    url = subscriber_url(make_subscriber()) if url == "own" else url
    before = desk_state(rows)

    assert_error(call(client, staff, method, url, body), 403)

    assert desk_state(rows) == before


@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
def test_deleting_a_subscriber_is_not_offered(client, admin, make_subscriber, rows, method):
    subscriber_id = make_subscriber()
    before = desk_state(rows)

    assert_error(call(client, admin, method, subscriber_url(subscriber_id)), 405)

    assert desk_state(rows) == before


# --- Sync by external id ----------------------------------------------------------------------

SYNCED = {"name": "Synced Person", "phone": "+15550909", "email": "sync@example.test"}


def sync(client, account, external_id="crm-77", body=None):
    return call(client, account, "PUT", sync_url(external_id), body or SYNCED)


def test_sync_creates_an_unknown_subscriber(client, admin, fetch):
    created = assert_success(sync(client, admin), 201)

    row = fetch(Subscriber, created["data"]["id"])
    assert set(created["data"]) == {"id"}
    assert {k: row[k] for k in SYNCED} == SYNCED
    assert (row["isp_id"], row["branch_id"], row["external_id"]) == (1, 1, "crm-77")


def test_sync_updates_a_known_subscriber(client, admin, fetch, rows):
    first = assert_success(sync(client, admin), 201)["data"]["id"]

    again = sync(client, admin, body={"name": "Renamed", "branch_id": 2})

    assert assert_success(again, 200)["data"] == {"id": first}
    row = fetch(Subscriber, first)
    assert (row["name"], row["phone"], row["branch_id"]) == ("Renamed", SYNCED["phone"], 2)
    assert len(rows(Subscriber)) == 1


def test_repeating_a_sync_changes_nothing(client, admin, rows):
    first = assert_success(sync(client, admin), 201)["data"]["id"]
    before = desk_state(rows)

    again = sync(client, admin)

    assert assert_success(again, 200)["data"] == {"id": first}
    assert desk_state(rows) == before


def test_sync_is_per_isp(client, admin, other_admin, rows):
    mine = assert_success(sync(client, admin), 201)["data"]["id"]
    before = rows(Subscriber)

    theirs = assert_success(sync(client, other_admin, body={"name": "Theirs"}), 201)["data"]["id"]

    assert theirs != mine
    assert rows(Subscriber)[0] == before[0]
    assert rows(Subscriber)[1]["isp_id"] == 2


@pytest.mark.parametrize(
    ("external_id", "body", "field"),
    [
        ("crm%01x", SYNCED, "external_id"),
        ("crm%7F", SYNCED, "external_id"),
        ("x" * 256, SYNCED, "external_id"),
        ("%20%20", SYNCED, "external_id"),
        ("crm-1", {"phone": "+1"}, "name"),
        ("crm-1", {**SYNCED, "external_id": "other"}, "external_id"),
        ("crm-1", {**SYNCED, "email": "nope"}, "email"),
        ("crm-1", {**SYNCED, "name": "a\tb\nc"}, "name"),
    ],
)
def test_bad_sync_is_422_and_writes_nothing(client, admin, rows, external_id, body, field):
    before = desk_state(rows)

    assert_error(sync(client, admin, external_id, body), 422, field)

    assert desk_state(rows) == before


def test_sync_times_are_in_the_api_format(client, admin):
    subscriber_id = assert_success(sync(client, admin), 201)["data"]["id"]

    shown = assert_success(client.get(subscriber_url(subscriber_id), headers=admin.headers), 200)

    assert TIMESTAMP.match(shown["data"]["created_at"])
    assert TIMESTAMP.match(shown["data"]["updated_at"])

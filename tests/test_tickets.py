"""The seven endpoints of the spec, as a client written against it sees them: paths, methods,
status codes, messages, field names, JSON types and order, and what each call leaves in the
database."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tickets_service.extensions import db
from tickets_service.models import Ticket, TicketReply

from conftest import assert_error, assert_success, scope_of

TICKETS = "/api/v1/tickets"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")

# The spec's keys, in the spec's order; extra fields may follow them.
LIST_ITEM_FIELDS = [
    "id",
    "title",
    "subscriber_id",
    "subscriber_name",
    "priority",
    "status",
    "created_at",
]
TICKET_FIELDS = [
    "id",
    "title",
    "description",
    "subscriber_id",
    "subscriber_name",
    "priority",
    "status",
    "replies",
    "created_at",
]
REPLY_FIELDS = ["id", "message", "user_name", "created_at"]


# --- Helpers ----------------------------------------------------------------------------------


def ticket_url(ticket_id: int, suffix: str = "") -> str:
    return f"{TICKETS}/{ticket_id}{suffix}"


def list_tickets(client, account, **params):
    """GET the list with the caller's own scope, plus filters or paging."""
    return client.get(
        TICKETS, query_string={**scope_of(account), **params}, headers=account.headers
    )


def as_utc(value: datetime) -> datetime:
    """A database timestamp as aware UTC (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def without(row: dict, *keys: str) -> dict:
    return {key: value for key, value in row.items() if key not in keys}


@pytest.fixture
def set_created_at(app):
    """Give a ticket an exact created_at, so ties can be arranged."""

    def setter(ticket_id: int, when: datetime) -> None:
        with app.app_context():
            db.session.execute(update(Ticket).where(Ticket.id == ticket_id).values(created_at=when))
            db.session.commit()
            db.session.remove()

    return setter


# --- Fetch All Tickets: GET /api/v1/tickets ---------------------------------------------------


def test_list_item_has_the_spec_fields_in_spec_order(client, staff, make_subscriber, make_ticket):
    make_ticket(staff, subscriber_id=make_subscriber())

    body = assert_success(list_tickets(client, staff), 200)

    [item] = body["data"]
    assert list(item.keys())[: len(LIST_ITEM_FIELDS)] == LIST_ITEM_FIELDS


def test_list_item_carries_the_ticket_with_spec_json_types(
    client, staff, make_subscriber, make_ticket, fetch
):
    subscriber_id = make_subscriber(name="John Doe")
    ticket_id = make_ticket(staff, subscriber_id=subscriber_id, priority=3, status=1)

    body = assert_success(list_tickets(client, staff), 200)

    [item] = body["data"]
    row = fetch(Ticket, ticket_id)
    assert (type(item["id"]), type(item["subscriber_id"])) == (int, int)
    assert (type(item["priority"]), type(item["status"])) == (int, int)
    assert item["id"] == ticket_id
    assert item["title"] == row["title"] == "Connection Issue"
    assert item["subscriber_id"] == row["subscriber_id"] == subscriber_id
    assert item["subscriber_name"] == "John Doe"
    assert (item["priority"], item["status"]) == (row["priority"], row["status"]) == (3, 1)


def test_list_subscriber_name_is_null_without_subscriber(client, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff)

    body = assert_success(list_tickets(client, staff), 200)

    [item] = body["data"]
    assert fetch(Ticket, ticket_id)["subscriber_id"] is None
    assert item["subscriber_id"] is None
    assert item["subscriber_name"] is None


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_list_filters_by_status(client, staff, make_ticket, fetch, status):
    ids = {code: make_ticket(staff, status=code) for code in (0, 1, 2, 3)}

    body = assert_success(list_tickets(client, staff, status=status), 200)

    assert [item["id"] for item in body["data"]] == [ids[status]]
    assert fetch(Ticket, ids[status])["status"] == status
    assert body["meta"]["total"] == 1


@pytest.mark.parametrize("priority", [1, 2, 3])
def test_list_filters_by_priority(client, staff, make_ticket, fetch, priority):
    ids = {code: make_ticket(staff, priority=code) for code in (1, 2, 3)}

    body = assert_success(list_tickets(client, staff, priority=priority), 200)

    assert [item["id"] for item in body["data"]] == [ids[priority]]
    assert fetch(Ticket, ids[priority])["priority"] == priority
    assert body["meta"]["total"] == 1


def test_list_combines_status_and_priority_filters(client, staff, make_ticket):
    wanted = make_ticket(staff, status=2, priority=3)
    make_ticket(staff, status=2, priority=1)
    make_ticket(staff, status=0, priority=3)

    body = assert_success(list_tickets(client, staff, status=2, priority=3), 200)

    assert [item["id"] for item in body["data"]] == [wanted]


def test_list_is_newest_first_by_created_at(client, staff, make_ticket, rows):
    """Inserted out of order, so an id order would not pass."""
    ages_in_hours = [2, 0, 24, 1]
    ids = [make_ticket(staff, age=timedelta(hours=h)) for h in ages_in_hours]

    body = assert_success(list_tickets(client, staff), 200)

    newest_first = [ticket_id for _, ticket_id in sorted(zip(ages_in_hours, ids, strict=True))]
    assert [item["id"] for item in body["data"]] == newest_first
    assert len(rows(Ticket)) == len(ids)


def test_list_breaks_created_at_ties_by_id_descending(
    client, staff, make_ticket, set_created_at, fetch
):
    same_moment = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ids = [make_ticket(staff) for _ in range(3)]
    for ticket_id in ids:
        set_created_at(ticket_id, same_moment)

    body = assert_success(list_tickets(client, staff), 200)

    assert len({as_utc(fetch(Ticket, ticket_id)["created_at"]) for ticket_id in ids}) == 1
    assert [item["id"] for item in body["data"]] == sorted(ids, reverse=True)


def test_list_defaults_to_page_1_of_50(client, staff, make_ticket, rows):
    oldest = make_ticket(staff, age=timedelta(days=1))
    for _ in range(50):
        make_ticket(staff)

    body = assert_success(list_tickets(client, staff), 200)

    assert len(rows(Ticket)) == 51
    assert len(body["data"]) == 50
    assert oldest not in [item["id"] for item in body["data"]]
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 51, "pages": 2}


def test_list_page_and_per_page_select_a_slice(client, staff, make_ticket):
    newest_first = [make_ticket(staff, age=timedelta(hours=h)) for h in range(5)]

    body = assert_success(list_tickets(client, staff, page=2, per_page=2), 200)

    assert [item["id"] for item in body["data"]] == newest_first[2:4]
    assert body["meta"] == {"page": 2, "per_page": 2, "total": 5, "pages": 3}


def test_list_accepts_per_page_of_200(client, staff, make_ticket):
    make_ticket(staff)

    body = assert_success(list_tickets(client, staff, per_page=200), 200)

    assert body["meta"] == {"page": 1, "per_page": 200, "total": 1, "pages": 1}


@pytest.mark.parametrize(
    ("field", "value"),
    [("per_page", 201), ("per_page", 0), ("page", 0)],
)
def test_list_rejects_paging_out_of_range(client, staff, make_ticket, snapshot, field, value):
    make_ticket(staff)
    before = snapshot()

    body = assert_error(list_tickets(client, staff, **{field: value}), 422)

    assert field in body["errors"]
    assert snapshot() == before


@pytest.mark.parametrize("missing", ["isp_id", "branch_id", "user_id"])
def test_list_requires_isp_branch_and_user(client, staff, make_ticket, snapshot, missing):
    make_ticket(staff)
    before = snapshot()
    query = {key: value for key, value in scope_of(staff).items() if key != missing}

    body = assert_error(client.get(TICKETS, query_string=query, headers=staff.headers), 422)

    assert missing in body["errors"]
    assert snapshot() == before


@pytest.mark.parametrize("branch_id", [1, 2])
def test_list_shows_only_the_requested_branch(client, admin, make_ticket, fetch, branch_id):
    ids = {branch: make_ticket(admin, branch_id=branch) for branch in (1, 2)}

    body = assert_success(list_tickets(client, admin, branch_id=branch_id), 200)

    assert [item["id"] for item in body["data"]] == [ids[branch_id]]
    assert fetch(Ticket, ids[branch_id])["branch_id"] == branch_id


# --- Fetch Ticket: GET /api/v1/tickets/{id} ---------------------------------------------------


def test_fetch_ticket_has_the_spec_fields_in_spec_order(
    client, staff, make_subscriber, make_ticket, make_reply
):
    ticket_id = make_ticket(staff, subscriber_id=make_subscriber())
    make_reply(ticket_id, staff)

    body = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)

    assert list(body["data"].keys())[: len(TICKET_FIELDS)] == TICKET_FIELDS
    [reply] = body["data"]["replies"]
    assert list(reply.keys())[: len(REPLY_FIELDS)] == REPLY_FIELDS


def test_fetch_ticket_carries_the_ticket_with_spec_json_types(
    client, staff, make_subscriber, make_ticket, fetch
):
    subscriber_id = make_subscriber(name="John Doe")
    ticket_id = make_ticket(staff, subscriber_id=subscriber_id, priority=3, status=2)

    body = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)

    data, row = body["data"], fetch(Ticket, ticket_id)
    assert (type(data["id"]), type(data["subscriber_id"])) == (int, int)
    assert (type(data["priority"]), type(data["status"])) == (int, int)
    assert data["id"] == ticket_id
    assert data["title"] == row["title"]
    assert data["description"] == row["description"] == "Cannot connect to internet"
    assert data["subscriber_id"] == subscriber_id
    assert data["subscriber_name"] == "John Doe"
    assert (data["priority"], data["status"]) == (row["priority"], row["status"]) == (3, 2)
    assert data["replies"] == []


def test_fetch_ticket_subscriber_name_is_null_without_subscriber(client, staff, make_ticket):
    ticket_id = make_ticket(staff)

    body = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)

    assert body["data"]["subscriber_id"] is None
    assert body["data"]["subscriber_name"] is None


def test_fetch_ticket_reply_names_its_author(client, admin, staff, make_ticket, make_reply, fetch):
    ticket_id = make_ticket(staff)
    reply_id = make_reply(ticket_id, admin, message="We are looking into this.")

    body = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)

    [reply] = body["data"]["replies"]
    assert type(reply["id"]) is int
    assert reply["id"] == reply_id
    assert reply["message"] == fetch(TicketReply, reply_id)["message"]
    assert reply["user_name"] == admin.name == "Admin"


def test_fetch_ticket_lists_replies_oldest_first(client, staff, make_ticket, make_reply):
    """Inserted out of order, so an id order would not pass."""
    ticket_id = make_ticket(staff, age=timedelta(days=1))
    ages_in_minutes = [30, 90, 60, 10]
    ids = [make_reply(ticket_id, staff, age=timedelta(minutes=m)) for m in ages_in_minutes]

    body = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)

    oldest_first = [
        reply_id for _, reply_id in sorted(zip(ages_in_minutes, ids, strict=True), reverse=True)
    ]
    assert [reply["id"] for reply in body["data"]["replies"]] == oldest_first


def test_fetch_unknown_ticket_is_404(client, staff, make_ticket, snapshot):
    unknown_id = make_ticket(staff) + 1000
    before = snapshot()

    assert_error(client.get(ticket_url(unknown_id), headers=staff.headers), 404)

    assert snapshot() == before


# --- Timestamps -------------------------------------------------------------------------------


def _list_created_at(body):
    return body["data"][0]["created_at"]


def _ticket_created_at(body):
    return body["data"]["created_at"]


def _reply_created_at(body):
    return body["data"]["replies"][0]["created_at"]


@pytest.mark.parametrize(
    ("endpoint", "read_timestamp", "model"),
    [
        ("list", _list_created_at, Ticket),
        ("ticket", _ticket_created_at, Ticket),
        ("ticket", _reply_created_at, TicketReply),
    ],
    ids=["list item", "ticket", "reply"],
)
def test_timestamps_are_utc_in_spec_format(
    client, staff, make_ticket, make_reply, fetch, endpoint, read_timestamp, model
):
    ticket_id = make_ticket(staff, age=timedelta(hours=5))
    reply_id = make_reply(ticket_id, staff, age=timedelta(hours=3))
    url = TICKETS if endpoint == "list" else ticket_url(ticket_id)
    query = scope_of(staff) if endpoint == "list" else None

    body = assert_success(client.get(url, query_string=query, headers=staff.headers), 200)

    value = read_timestamp(body)
    assert TIMESTAMP.fullmatch(value)
    stored = fetch(model, ticket_id if model is Ticket else reply_id)["created_at"]
    assert value == as_utc(stored).strftime("%Y-%m-%d %H:%M:%S")


def test_timestamps_are_utc_not_local_time(client, staff):
    """A ticket created now reads back as the current UTC time."""
    response = client.post(
        TICKETS,
        json={"title": "Connection Issue", "description": "Down", "priority": 2},
        headers=staff.headers,
    )
    ticket_id = assert_success(response, 201)["data"]["id"]

    body = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)

    shown = datetime.strptime(body["data"]["created_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - shown) < timedelta(minutes=1)


# --- Create Ticket: POST /api/v1/tickets ------------------------------------------------------


def spec_create_body(account, subscriber_id=None) -> dict:
    """The spec's example request body, scoped to `account`."""
    body = {
        **scope_of(account),
        "title": "Connection Issue",
        "description": "Cannot connect to internet",
        "priority": 2,
    }
    if subscriber_id is not None:
        body["subscriber_id"] = subscriber_id
    return body


def test_create_returns_201_and_the_new_id(client, staff, make_subscriber, fetch):
    body_sent = spec_create_body(staff, subscriber_id=make_subscriber())

    body = assert_success(
        client.post(TICKETS, json=body_sent, headers=staff.headers),
        201,
        "Ticket created successfully",
    )

    assert list(body["data"].keys())[:1] == ["id"]
    assert type(body["data"]["id"]) is int
    assert fetch(Ticket, body["data"]["id"]) is not None


def test_create_stores_the_ticket_as_sent(client, staff, make_subscriber, fetch, rows):
    subscriber_id = make_subscriber()

    body = assert_success(
        client.post(
            TICKETS,
            json=spec_create_body(staff, subscriber_id=subscriber_id),
            headers=staff.headers,
        ),
        201,
        "Ticket created successfully",
    )

    [row] = rows(Ticket)
    assert row["id"] == body["data"]["id"]
    assert row["title"] == "Connection Issue"
    assert row["description"] == "Cannot connect to internet"
    assert row["priority"] == 2
    assert row["subscriber_id"] == subscriber_id
    assert row["status"] == 0
    assert (row["isp_id"], row["branch_id"]) == (1, 1)
    assert row["deleted_at"] is None


def test_create_stores_the_title_trimmed(client, staff, fetch):
    sent = {"title": "  Connection Issue \t", "description": "Down", "priority": 1}

    body = assert_success(
        client.post(TICKETS, json=sent, headers=staff.headers), 201, "Ticket created successfully"
    )

    assert fetch(Ticket, body["data"]["id"])["title"] == "Connection Issue"


def test_create_without_subscriber_stores_none(client, staff, fetch):
    sent = {"title": "Connection Issue", "description": "Down", "priority": 1}

    body = assert_success(
        client.post(TICKETS, json=sent, headers=staff.headers), 201, "Ticket created successfully"
    )

    assert fetch(Ticket, body["data"]["id"])["subscriber_id"] is None


@pytest.mark.parametrize(("caller", "other"), [("admin", "staff"), ("staff", "admin")])
def test_create_records_the_caller_as_creator(request, client, make_ticket, fetch, caller, other):
    """Another user's ticket already exists, so copying any creator would not pass."""
    account = request.getfixturevalue(caller)
    make_ticket(request.getfixturevalue(other))

    body = assert_success(
        client.post(TICKETS, json=spec_create_body(account), headers=account.headers),
        201,
        "Ticket created successfully",
    )

    assert fetch(Ticket, body["data"]["id"])["created_by_id"] == account.id


@pytest.mark.parametrize("caller", ["staff_branch2", "other_admin", "other_staff"])
def test_create_takes_isp_and_branch_from_the_token_when_absent(request, client, fetch, caller):
    account = request.getfixturevalue(caller)
    sent = {"title": "Connection Issue", "description": "Down", "priority": 3}

    body = assert_success(
        client.post(TICKETS, json=sent, headers=account.headers),
        201,
        "Ticket created successfully",
    )

    row = fetch(Ticket, body["data"]["id"])
    assert (row["isp_id"], row["branch_id"]) == (account.isp_id, account.branch_id)


def test_admin_creates_in_the_branch_named_in_the_body(client, admin, fetch):
    sent = {**spec_create_body(admin), "branch_id": 2}

    body = assert_success(
        client.post(TICKETS, json=sent, headers=admin.headers), 201, "Ticket created successfully"
    )

    row = fetch(Ticket, body["data"]["id"])
    assert (row["isp_id"], row["branch_id"]) == (admin.isp_id, 2)
    assert row["created_by_id"] == admin.id


# --- Update Ticket: PUT /api/v1/tickets/{id} --------------------------------------------------

NEW_SUBSCRIBER = object()  # stands for a second subscriber created by the test


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"title": "Updated Title"}, {"title": "Updated Title"}),
        ({"title": "  Updated Title  "}, {"title": "Updated Title"}),
        ({"description": "Still down"}, {"description": "Still down"}),
        ({"priority": 3}, {"priority": 3}),
        ({"priority": 1}, {"priority": 1}),
        ({"subscriber_id": NEW_SUBSCRIBER}, {"subscriber_id": NEW_SUBSCRIBER}),
        ({"title": "Updated Title", "priority": 3}, {"title": "Updated Title", "priority": 3}),
    ],
    ids=["title", "title trimmed", "description", "priority 3", "priority 1", "subscriber", "spec"],
)
def test_update_changes_only_the_fields_sent(
    client, staff, make_subscriber, make_ticket, fetch, sent, stored
):
    ticket_id = make_ticket(staff, subscriber_id=make_subscriber(name="First"))
    new_subscriber = make_subscriber(name="Second")
    sent = {k: new_subscriber if v is NEW_SUBSCRIBER else v for k, v in sent.items()}
    stored = {k: new_subscriber if v is NEW_SUBSCRIBER else v for k, v in stored.items()}
    before = fetch(Ticket, ticket_id)

    assert_success(
        client.put(ticket_url(ticket_id), json=sent, headers=staff.headers),
        200,
        "Ticket updated successfully",
    )

    after = fetch(Ticket, ticket_id)
    changed = ("updated_at", "version")
    assert without(after, *changed) == {**without(before, *changed), **stored}
    assert after["version"] == before["version"] + 1


def test_update_with_null_subscriber_unlinks_it(client, staff, make_subscriber, make_ticket, fetch):
    ticket_id = make_ticket(staff, subscriber_id=make_subscriber())

    assert_success(
        client.put(ticket_url(ticket_id), json={"subscriber_id": None}, headers=staff.headers),
        200,
        "Ticket updated successfully",
    )

    assert fetch(Ticket, ticket_id)["subscriber_id"] is None


def test_update_advances_updated_at(client, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff, age=timedelta(days=1))
    before = fetch(Ticket, ticket_id)

    assert_success(
        client.put(ticket_url(ticket_id), json={"priority": 3}, headers=staff.headers),
        200,
        "Ticket updated successfully",
    )

    after = fetch(Ticket, ticket_id)
    assert as_utc(after["updated_at"]) > as_utc(before["updated_at"])
    assert as_utc(after["created_at"]) == as_utc(before["created_at"])


# --- Delete Ticket: DELETE /api/v1/tickets/{id} -----------------------------------------------


def delete_ticket(client, account, ticket_id: int) -> None:
    assert_success(
        client.delete(ticket_url(ticket_id), headers=account.headers),
        200,
        "Ticket deleted successfully",
    )


def test_delete_keeps_the_row_and_sets_deleted_at(client, admin, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff)
    before = fetch(Ticket, ticket_id)

    delete_ticket(client, admin, ticket_id)

    after = fetch(Ticket, ticket_id)
    assert before["deleted_at"] is None
    assert after["deleted_at"] is not None
    changed = ("deleted_at", "updated_at", "version")
    assert without(after, *changed) == without(before, *changed)


def test_delete_keeps_the_replies(client, admin, staff, make_ticket, make_reply, rows):
    ticket_id = make_ticket(staff)
    make_reply(ticket_id, staff)
    make_reply(ticket_id, admin)
    before = rows(TicketReply)

    delete_ticket(client, admin, ticket_id)

    assert rows(TicketReply) == before
    assert len(before) == 2


# After a delete, each per-ticket endpoint must answer as if the ticket did not exist.
PER_TICKET_CALLS = [
    ("GET", "", None),
    ("PUT", "", {"title": "Updated Title"}),
    ("DELETE", "", None),
    ("POST", "/reply", {"message": "Anyone there?"}),
    ("PUT", "/status", {"status": 2}),
]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    PER_TICKET_CALLS,
    ids=[f"{method} {suffix or '/'}" for method, suffix, _ in PER_TICKET_CALLS],
)
def test_deleted_ticket_is_404(client, admin, make_ticket, snapshot, method, suffix, body):
    ticket_id = make_ticket(admin)
    delete_ticket(client, admin, ticket_id)
    before = snapshot()

    response = client.open(
        ticket_url(ticket_id, suffix), method=method, json=body, headers=admin.headers
    )

    assert_error(response, 404)
    assert snapshot() == before


def test_deleted_ticket_is_absent_from_the_list(client, admin, make_ticket, fetch):
    kept = make_ticket(admin)
    deleted = make_ticket(admin)
    delete_ticket(client, admin, deleted)

    body = assert_success(list_tickets(client, admin), 200)

    assert [item["id"] for item in body["data"]] == [kept]
    assert body["meta"]["total"] == 1
    assert fetch(Ticket, deleted) is not None


# --- Reply to Ticket: POST /api/v1/tickets/{id}/reply -----------------------------------------


def spec_reply_body(account) -> dict:
    return {**scope_of(account), "message": "We are looking into this issue."}


def test_reply_returns_201_and_stores_the_reply(client, staff, make_ticket, rows):
    ticket_id = make_ticket(staff)

    assert_success(
        client.post(
            ticket_url(ticket_id, "/reply"), json=spec_reply_body(staff), headers=staff.headers
        ),
        201,
        "Reply added successfully",
    )

    [reply] = rows(TicketReply)
    assert reply["ticket_id"] == ticket_id
    assert reply["message"] == "We are looking into this issue."


@pytest.mark.parametrize("caller", ["admin", "staff"])
def test_reply_author_is_the_caller(request, client, staff, make_ticket, rows, caller):
    account = request.getfixturevalue(caller)
    ticket_id = make_ticket(staff)

    assert_success(
        client.post(
            ticket_url(ticket_id, "/reply"), json=spec_reply_body(account), headers=account.headers
        ),
        201,
        "Reply added successfully",
    )

    [reply] = rows(TicketReply)
    assert reply["user_id"] == account.id


def test_reply_appears_in_fetch_ticket_with_the_callers_name(
    client, admin, staff, make_ticket, make_reply, rows
):
    ticket_id = make_ticket(staff, age=timedelta(days=1))
    make_reply(ticket_id, admin, age=timedelta(hours=1))

    assert_success(
        client.post(
            ticket_url(ticket_id, "/reply"), json=spec_reply_body(staff), headers=staff.headers
        ),
        201,
        "Reply added successfully",
    )

    body = assert_success(client.get(ticket_url(ticket_id), headers=admin.headers), 200)
    newest = body["data"]["replies"][-1]
    assert newest["user_name"] == staff.name == "Staff One"
    assert newest["message"] == "We are looking into this issue."
    assert newest["id"] == rows(TicketReply)[-1]["id"]


# --- Change Ticket Status: PUT /api/v1/tickets/{id}/status ------------------------------------


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_change_status_stores_each_code(client, staff, make_ticket, fetch, status):
    ticket_id = make_ticket(staff, status=(status + 1) % 4)
    before = fetch(Ticket, ticket_id)

    assert_success(
        client.put(
            ticket_url(ticket_id, "/status"),
            json={**scope_of(staff), "status": status},
            headers=staff.headers,
        ),
        200,
        "Ticket status updated successfully",
    )

    after = fetch(Ticket, ticket_id)
    changed = ("updated_at", "version", "resolved_at", "closed_at")
    assert without(after, *changed) == {**without(before, *changed), "status": status}


def test_change_status_advances_updated_at(client, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff, age=timedelta(days=1))
    before = fetch(Ticket, ticket_id)

    assert_success(
        client.put(ticket_url(ticket_id, "/status"), json={"status": 1}, headers=staff.headers),
        200,
        "Ticket status updated successfully",
    )

    assert as_utc(fetch(Ticket, ticket_id)["updated_at"]) > as_utc(before["updated_at"])

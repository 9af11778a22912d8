"""Fetch All Tickets, GET /api/v1/tickets: one branch, filtered, newest first, a page at a time,
with the spec's fields and JSON types."""

from datetime import UTC, datetime, timedelta

import pytest
from support.catalogue import LIST
from support.client import assert_success, ids, list_tickets, scope_of
from support.database import as_utc, set_columns

from tickets_service.models import Ticket

# The spec's keys, in the spec's order; extra fields may follow them.
ITEM_FIELDS = ["id", "title", "subscriber_id", "subscriber_name", "priority", "status"]
ITEM_FIELDS += ["created_at"]


def listed_ids(response) -> list[int]:
    return ids(assert_success(response, 200))


@pytest.mark.parametrize("linked", [True, False], ids=["with-subscriber", "without-subscriber"])
def test_an_item_carries_the_ticket_in_spec_order_and_json_types(
    client, staff, make_subscriber, make_ticket, fetch, linked
):
    subscriber_id = make_subscriber(name="John Doe") if linked else None
    ticket_id = make_ticket(staff, subscriber_id=subscriber_id, priority=3, status=1)

    [item] = assert_success(list_tickets(client, staff), 200)["data"]

    row = fetch(Ticket, ticket_id)
    assert list(item)[: len(ITEM_FIELDS)] == ITEM_FIELDS
    assert (type(item["id"]), type(item["priority"]), type(item["status"])) == (int, int, int)
    assert item["id"] == ticket_id
    assert item["title"] == row["title"] == "Connection Issue"
    assert item["subscriber_id"] == row["subscriber_id"] == subscriber_id
    assert item["subscriber_name"] == ("John Doe" if linked else None)
    assert (item["priority"], item["status"]) == (row["priority"], row["status"]) == (3, 1)


@pytest.mark.parametrize(
    "filters",
    [{"status": code} for code in (0, 1, 2, 3)]
    + [{"priority": code} for code in (1, 2, 3)]
    + [{"status": 2, "priority": 3}],
    ids=str,
)
def test_filters_keep_only_the_matching_tickets(client, staff, make_ticket, fetch, filters):
    made = {
        (status, priority): make_ticket(staff, status=status, priority=priority)
        for status in (0, 1, 2, 3)
        for priority in (1, 2, 3)
    }
    wanted = [
        ticket_id
        for (status, priority), ticket_id in made.items()
        if filters.get("status", status) == status and filters.get("priority", priority) == priority
    ]

    body = assert_success(list_tickets(client, staff, **filters, per_page=200), 200)

    assert sorted(ids(body)) == wanted
    assert body["meta"]["total"] == len(wanted)
    assert all(fetch(Ticket, ticket_id).items() >= filters.items() for ticket_id in wanted)


def test_the_list_is_newest_first_by_created_at(client, staff, make_ticket, rows):
    """Inserted out of order, so an id order would not pass."""
    ages_in_hours = [2, 0, 24, 1]
    made = [make_ticket(staff, age=timedelta(hours=h)) for h in ages_in_hours]

    newest_first = [ticket_id for _, ticket_id in sorted(zip(ages_in_hours, made, strict=True))]
    assert listed_ids(list_tickets(client, staff)) == newest_first
    assert len(rows(Ticket)) == len(made)


def test_created_at_ties_are_broken_by_id_descending(app, client, staff, make_ticket, fetch):
    same_moment = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    made = [make_ticket(staff) for _ in range(3)]
    set_columns(app, Ticket, Ticket.id.in_(made), created_at=same_moment)

    assert len({as_utc(fetch(Ticket, ticket_id)["created_at"]) for ticket_id in made}) == 1
    assert listed_ids(list_tickets(client, staff)) == sorted(made, reverse=True)


def test_the_list_defaults_to_page_1_of_50(client, staff, make_ticket, rows):
    oldest = make_ticket(staff, age=timedelta(days=1))
    for _ in range(50):
        make_ticket(staff)

    body = assert_success(list_tickets(client, staff), 200)

    assert len(rows(Ticket)) == 51
    assert len(body["data"]) == 50
    assert oldest not in ids(body)
    meta = dict(body["meta"])
    assert isinstance(meta.pop("next_cursor"), str)  # a second page exists
    assert meta == {"page": 1, "per_page": 50, "total": 51, "pages": 2, "total_exact": True}


@pytest.mark.parametrize(
    ("page", "per_page", "sliced", "pages"),
    [
        (2, 2, slice(2, 4), 3),
        (3, 2, slice(4, 5), 3),
        (4, 2, slice(5, 5), 3),
        (1, 1, slice(0, 1), 5),
        (1, 200, slice(0, 5), 1),
    ],
)
def test_page_and_per_page_select_a_slice(
    client, staff, make_ticket, page, per_page, sliced, pages
):
    newest_first = [make_ticket(staff, age=timedelta(hours=h)) for h in range(5)]

    body = assert_success(list_tickets(client, staff, page=page, per_page=per_page), 200)

    assert ids(body) == newest_first[sliced]
    meta = dict(body["meta"])
    assert (meta.pop("next_cursor") is None) == (page >= pages)
    expected = {"page": page, "per_page": per_page, "total": 5, "pages": pages}
    assert meta == {**expected, "total_exact": True}


def test_per_page_above_200_is_422(client, staff, make_ticket, assert_refused):
    make_ticket(staff)
    assert_refused(lambda: list_tickets(client, staff, per_page=201), 422, "per_page")


@pytest.mark.parametrize("missing", ["isp_id", "branch_id", "user_id"])
def test_isp_branch_and_user_are_required(client, staff, make_ticket, assert_refused, missing):
    make_ticket(staff)
    query = {key: value for key, value in scope_of(staff).items() if key != missing}
    request = lambda: client.get(LIST.path, query_string=query, headers=staff.headers)  # noqa: E731
    assert_refused(request, 422, missing)


@pytest.mark.parametrize("branch_id", [1, 2])
def test_the_list_shows_the_requested_branch_only(client, admin, make_ticket, fetch, branch_id):
    made = {branch: make_ticket(admin, branch_id=branch) for branch in (1, 2)}

    assert listed_ids(list_tickets(client, admin, branch_id=branch_id)) == [made[branch_id]]
    assert fetch(Ticket, made[branch_id])["branch_id"] == branch_id

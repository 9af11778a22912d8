"""Keyset paging of the ticket list (cursor, meta.next_cursor) and totals that never count a
whole branch (meta.total_exact)."""

from datetime import timedelta

import pytest

from tickets_service import queries
from tickets_service.models import utcnow

from conftest import assert_error, assert_success, scope_of

TICKETS = "/api/v1/tickets"
SORTS = ["created_at", "updated_at", "priority", "status", "due_at"]


def listing(client, account, **params):
    return client.get(
        TICKETS, query_string={**scope_of(account), **params}, headers=account.headers
    )


@pytest.fixture
def desk(staff, make_ticket):
    """Eleven tickets with ties on every sort key, and due times on some only."""
    now = utcnow()
    ids = []
    for n in range(11):
        due = now + timedelta(hours=n % 3) if n % 2 else None
        ids.append(
            make_ticket(
                staff,
                age=timedelta(minutes=n // 2),  # pairs created at the same moment
                priority=1 + n % 3,
                status=n % 4,
                due_at=due,
            )
        )
    return ids


def walk(client, account, per_page, **params) -> list[int]:
    """Every id of the list, following next_cursor from the first page."""
    body = assert_success(listing(client, account, per_page=per_page, **params), 200)
    seen = [item["id"] for item in body["data"]]
    while body["meta"]["next_cursor"] is not None:
        cursor = body["meta"]["next_cursor"]
        body = assert_success(
            listing(client, account, per_page=per_page, cursor=cursor, **params), 200
        )
        assert body["meta"]["page"] is None
        seen += [item["id"] for item in body["data"]]
    return seen


@pytest.mark.parametrize("sort", [*SORTS, *(f"-{name}" for name in SORTS)])
def test_following_the_cursor_visits_the_list_in_its_order_once(client, staff, desk, sort):
    whole = [item["id"] for item in assert_success(listing(client, staff, sort=sort), 200)["data"]]

    assert sorted(whole) == sorted(desk)
    assert walk(client, staff, 3, sort=sort) == whole


def test_the_last_page_has_no_next_cursor(client, staff, desk):
    body = assert_success(listing(client, staff, per_page=11), 200)
    assert body["meta"]["next_cursor"] is None


def test_a_cursor_is_a_position_that_new_tickets_do_not_shift(client, staff, desk, make_ticket):
    whole = [item["id"] for item in assert_success(listing(client, staff), 200)["data"]]
    first = assert_success(listing(client, staff, per_page=4), 200)
    make_ticket(staff)  # the newest: an offset would now shift every page by one

    after = listing(client, staff, per_page=4, cursor=first["meta"]["next_cursor"])

    assert [item["id"] for item in assert_success(after, 200)["data"]] == whole[4:8]


@pytest.mark.parametrize(
    "cursor",
    ["", "x", "not-base64!", "A" * 600, "eyJ9"],
    ids=["empty", "short", "not-base64", "huge", "not-signed"],
)
def test_a_malformed_cursor_is_422(client, staff, desk, cursor):
    assert_error(listing(client, staff, cursor=cursor), 422, "cursor")


def test_a_tampered_cursor_is_422(client, staff, desk):
    cursor = assert_success(listing(client, staff, per_page=2), 200)["meta"]["next_cursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert_error(listing(client, staff, cursor=tampered), 422, "cursor")


def test_a_cursor_of_another_list_is_422(client, staff, desk):
    cursor = assert_success(listing(client, staff, per_page=2), 200)["meta"]["next_cursor"]
    assert_error(listing(client, staff, per_page=2, cursor=cursor, status="0"), 422, "cursor")
    assert_error(listing(client, staff, per_page=2, cursor=cursor, sort="priority"), 422, "cursor")


def test_page_and_cursor_together_are_422(client, staff, desk):
    cursor = assert_success(listing(client, staff, per_page=2), 200)["meta"]["next_cursor"]
    assert_error(listing(client, staff, cursor=cursor, page=2), 422, "cursor")


# --- Totals --------------------------------------------------------------------------------


def test_totals_of_the_spec_filters_are_exact_from_the_kept_counts(
    client, staff, desk, monkeypatch
):
    monkeypatch.setattr(queries, "COUNT_CAP", 2)  # counts are not involved: no cap applies
    body = assert_success(listing(client, staff, status="0,1"), 200)
    assert (body["meta"]["total"], body["meta"]["total_exact"]) == (len(body["data"]), True)
    assert body["meta"]["total"] > 2


def test_other_filters_count_up_to_a_cap_then_give_a_lower_bound(client, staff, desk, monkeypatch):
    monkeypatch.setattr(queries, "COUNT_CAP", 4)
    body = assert_success(listing(client, staff, q="connection"), 200)
    assert len(body["data"]) == 11
    assert (body["meta"]["total"], body["meta"]["total_exact"], body["meta"]["pages"]) == (
        4,
        False,
        1,
    )
    monkeypatch.setattr(queries, "COUNT_CAP", 11)
    body = assert_success(listing(client, staff, q="connection"), 200)
    assert (body["meta"]["total"], body["meta"]["total_exact"]) == (11, True)

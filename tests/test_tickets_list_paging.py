"""Keyset paging of the ticket list (cursor, meta.next_cursor) and totals that never count a
whole branch (meta.total_exact)."""

import base64
import json
from datetime import timedelta

import pytest
from support.client import assert_error, assert_success, ids, list_tickets, scope_of

from tickets_service import cursors, queries
from tickets_service.models import utcnow

SORTS = ["created_at", "updated_at", "priority", "status", "due_at"]


@pytest.fixture
def desk(staff, make_ticket):
    """Eleven tickets with ties on every sort key, and due times on some only."""
    now, made = utcnow(), []
    for n in range(11):
        due = now + timedelta(hours=n % 3) if n % 2 else None
        age = timedelta(minutes=n // 2)  # pairs created at the same moment
        made.append(make_ticket(staff, age=age, priority=1 + n % 3, status=n % 4, due_at=due))
    return made


def walk(client, account, per_page, **params) -> list[int]:
    """Every id of the list, following next_cursor from the first page."""
    body = assert_success(list_tickets(client, account, per_page=per_page, **params), 200)
    seen = ids(body)
    while (cursor := body["meta"]["next_cursor"]) is not None:
        response = list_tickets(client, account, per_page=per_page, cursor=cursor, **params)
        body = assert_success(response, 200)
        assert body["meta"]["page"] is None
        seen += ids(body)
    return seen


@pytest.mark.parametrize("sort", [*SORTS, *(f"-{name}" for name in SORTS)])
def test_following_the_cursor_visits_the_list_in_its_order_once(client, staff, desk, sort):
    whole = ids(assert_success(list_tickets(client, staff, sort=sort), 200))

    assert sorted(whole) == sorted(desk)
    assert walk(client, staff, 3, sort=sort) == whole


def test_the_last_page_has_no_next_cursor(client, staff, desk):
    body = assert_success(list_tickets(client, staff, per_page=11), 200)
    assert body["meta"]["next_cursor"] is None


def test_a_cursor_is_a_position_that_new_tickets_do_not_shift(client, staff, desk, make_ticket):
    whole = ids(assert_success(list_tickets(client, staff), 200))
    first = assert_success(list_tickets(client, staff, per_page=4), 200)
    make_ticket(staff)  # the newest: an offset would now shift every page by one

    after = list_tickets(client, staff, per_page=4, cursor=first["meta"]["next_cursor"])

    assert ids(assert_success(after, 200)) == whole[4:8]


@pytest.mark.parametrize(
    "cursor",
    ["", "x", "not-base64!", "A" * 600, "eyJ9"],
    ids=["empty", "short", "not-base64", "huge", "not-signed"],
)
def test_a_malformed_cursor_is_422(client, staff, desk, cursor):
    assert_error(list_tickets(client, staff, cursor=cursor), 422, "cursor")


def test_a_tampered_cursor_is_422(client, staff, desk):
    cursor = assert_success(list_tickets(client, staff, per_page=2), 200)["meta"]["next_cursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert_error(list_tickets(client, staff, cursor=tampered), 422, "cursor")


def test_a_cursor_of_another_list_is_422(client, staff, desk):
    cursor = assert_success(list_tickets(client, staff, per_page=2), 200)["meta"]["next_cursor"]
    assert_error(list_tickets(client, staff, per_page=2, cursor=cursor, status="0"), 422, "cursor")
    assert_error(
        list_tickets(client, staff, per_page=2, cursor=cursor, sort="priority"), 422, "cursor"
    )


def signed(app, payload) -> str:
    """A cursor whose signature is genuine (as one holding the JWT secret could make) around
    any JSON payload at all."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    with app.test_request_context():
        return base64.urlsafe_b64encode(cursors._sign(raw) + raw).decode().rstrip("=")


def own_list(staff, **params) -> str:
    """The fingerprint a cursor of this list carries."""
    return cursors.fingerprint({**scope_of(staff), "sort": "-created_at", **params})


SIGNED_BUT_MALFORMED = {
    "a-number": lambda fp: 3,
    "a-string": lambda fp: "x",
    "an-object": lambda fp: {"a": 1, "b": 2, "c": 3},
    "two-items": lambda fp: [fp, 1],
    "four-items": lambda fp: [fp, "2024-01-01T00:00:00+00:00", 1, 1],
    "list-id-not-a-string": lambda fp: [1, "2024-01-01T00:00:00+00:00", 1],
    "row-id-a-string": lambda fp: [fp, "2024-01-01T00:00:00+00:00", "1"],
    "row-id-a-boolean": lambda fp: [fp, "2024-01-01T00:00:00+00:00", True],
    "row-id-out-of-range": lambda fp: [fp, "2024-01-01T00:00:00+00:00", 2**40],
    "row-id-zero": lambda fp: [fp, "2024-01-01T00:00:00+00:00", 0],
    "value-not-a-date": lambda fp: [fp, "yesterday", 1],
    "value-a-number": lambda fp: [fp, 5, 1],
    "value-a-boolean": lambda fp: [fp, True, 1],
    "value-a-list": lambda fp: [fp, [1], 1],
    "value-null-where-none-is": lambda fp: [fp, None, 1],
    "value-a-float": lambda fp: [fp, 1.5, 1],
}


@pytest.mark.parametrize("payload", SIGNED_BUT_MALFORMED.values(), ids=SIGNED_BUT_MALFORMED)
def test_a_signed_cursor_with_a_malformed_payload_is_422(app, client, staff, desk, payload):
    """Were a 500 (reachable with the JWT secret only, but a 500 is a bug)."""
    cursor = signed(app, payload(own_list(staff)))
    assert_error(list_tickets(client, staff, cursor=cursor), 422, "cursor")


@pytest.mark.parametrize(
    ("sort", "value"),
    [("priority", "2024-01-01T00:00:00+00:00"), ("priority", 2**20), ("status", None)],
    ids=["a-date-for-a-code", "a-code-out-of-range", "null-for-a-code"],
)
def test_a_signed_cursor_whose_value_is_not_the_sorts_is_422(app, client, staff, desk, sort, value):
    cursor = signed(app, [own_list(staff, sort=sort), value, 1])
    assert_error(list_tickets(client, staff, cursor=cursor, sort=sort), 422, "cursor")


def test_a_genuine_cursor_signed_here_still_pages(app, client, staff, desk):
    """The helper above makes cursors the list takes: the refusals are the payloads'."""
    first = assert_success(list_tickets(client, staff, per_page=2), 200)
    last = first["data"][-1]
    moment = last["created_at"].replace(" ", "T") + "+00:00"
    cursor = signed(app, [own_list(staff, per_page=2), moment, last["id"]])
    again = assert_success(list_tickets(client, staff, per_page=2, cursor=cursor), 200)
    walked = list_tickets(client, staff, per_page=2, cursor=first["meta"]["next_cursor"])
    assert again["data"] == assert_success(walked, 200)["data"]


def test_page_and_cursor_together_are_422(client, staff, desk):
    cursor = assert_success(list_tickets(client, staff, per_page=2), 200)["meta"]["next_cursor"]
    assert_error(list_tickets(client, staff, cursor=cursor, page=2), 422, "cursor")


# --- Totals --------------------------------------------------------------------------------


def test_totals_of_the_spec_filters_are_exact_from_the_kept_counts(
    client, staff, desk, monkeypatch
):
    monkeypatch.setattr(queries, "COUNT_CAP", 2)  # counts are not involved: no cap applies
    body = assert_success(list_tickets(client, staff, status="0,1"), 200)
    assert (body["meta"]["total"], body["meta"]["total_exact"]) == (len(body["data"]), True)
    assert body["meta"]["total"] > 2


def test_other_filters_count_up_to_a_cap_then_give_a_lower_bound(client, staff, desk, monkeypatch):
    monkeypatch.setattr(queries, "COUNT_CAP", 4)
    body = assert_success(list_tickets(client, staff, q="connection"), 200)
    assert len(body["data"]) == 11
    meta = body["meta"]
    assert (meta["total"], meta["total_exact"], meta["pages"]) == (4, False, 1)
    monkeypatch.setattr(queries, "COUNT_CAP", 11)
    body = assert_success(list_tickets(client, staff, q="connection"), 200)
    assert (body["meta"]["total"], body["meta"]["total_exact"]) == (11, True)

"""Issue 9, points 5 and 7 (list half): the ticket list's filters, text search and sorts, and
deleted=only for admins. A bad value in any of them is 422 on that parameter; no filter reaches
past the caller's ISP and branch."""

from datetime import UTC, datetime, timedelta

import pytest
from desk_helpers import ON_SQLITE, desk_state, ids, list_tickets, now, set_columns

from tickets_service.models import Ticket

from conftest import assert_error, assert_success


def listed(client, account, **params) -> list[int]:
    body = assert_success(list_tickets(client, account, **params), 200)
    assert body["meta"]["total"] == len(body["data"])  # every test here fits on one page
    return ids(body)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- status, priority, subscriber, assignee ----------------------------------------------------


@pytest.fixture
def mixed(staff, admin, make_ticket, make_subscriber) -> dict:
    """Tickets by name: every status, every priority, assigned or not, with a subscriber."""
    subscriber = make_subscriber(name="Jane Roe")
    return {
        "open low": make_ticket(staff, status=0, priority=1),
        "in progress medium mine": make_ticket(staff, status=1, priority=2, assignee_id=staff.id),
        "resolved high admin's": make_ticket(staff, status=2, priority=3, assignee_id=admin.id),
        "closed high subscriber": make_ticket(
            staff, status=3, priority=3, subscriber_id=subscriber
        ),
        "subscriber": subscriber,
    }


FILTERS = [
    ({"status": "0"}, ["open low"]),
    ({"status": "0,1"}, ["open low", "in progress medium mine"]),
    ({"status": "3,2,3"}, ["resolved high admin's", "closed high subscriber"]),
    ({"priority": "3"}, ["resolved high admin's", "closed high subscriber"]),
    ({"priority": "1,2"}, ["open low", "in progress medium mine"]),
    ({"status": "0,1,2", "priority": "2,3"}, ["in progress medium mine", "resolved high admin's"]),
    ({"assignee_id": "none"}, ["open low", "closed high subscriber"]),
    ({"assignee_id": "me"}, ["in progress medium mine"]),
    ({"assignee_id": "none", "status": "0,1"}, ["open low"]),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS)
def test_list_filters_by_code_lists_and_assignee(client, staff, mixed, params, expected):
    assert sorted(listed(client, staff, **params)) == sorted(mixed[name] for name in expected)


def test_list_filters_by_assignee_id(client, staff, admin, mixed):
    assert listed(client, staff, assignee_id=str(admin.id)) == [mixed["resolved high admin's"]]


def test_list_filters_by_subscriber_id(client, staff, mixed):
    found = listed(client, staff, subscriber_id=str(mixed["subscriber"]))

    assert found == [mixed["closed high subscriber"]]


# --- Creation and update times ----------------------------------------------------------------

TIMES = {
    "9th, last second": "2024-03-09 23:59:59",
    "10th, midnight": "2024-03-10 00:00:00",
    "10th, noon": "2024-03-10 12:00:00",
    "10th, last instant": "2024-03-10 23:59:59.999999",
    "11th, midnight": "2024-03-11 00:00:00",
}
TIME_FILTERS = [
    (
        {"from": "2024-03-10"},
        ["10th, midnight", "10th, noon", "10th, last instant", "11th, midnight"],
    ),
    (
        {"to": "2024-03-10"},
        ["9th, last second", "10th, midnight", "10th, noon", "10th, last instant"],
    ),
    (
        {"from": "2024-03-10", "to": "2024-03-10"},
        ["10th, midnight", "10th, noon", "10th, last instant"],
    ),
    ({"from": "2024-03-10 12:00:00"}, ["10th, noon", "10th, last instant", "11th, midnight"]),
    ({"to": "2024-03-10 12:00:00"}, ["9th, last second", "10th, midnight", "10th, noon"]),
    ({"from": "2024-03-10 12:00:00", "to": "2024-03-10 12:00:00"}, ["10th, noon"]),
    ({"from": "2024-03-12"}, []),
]


@pytest.fixture
def timed(app, staff, make_ticket) -> dict:
    """A ticket created (and last updated) at each of TIMES."""
    made = {}
    for name, when in TIMES.items():
        made[name] = make_ticket(staff)
        set_columns(app, Ticket, made[name], created_at=at(when), updated_at=at(when))
    return made


@pytest.mark.parametrize(("bounds", "expected"), TIME_FILTERS)
def test_created_from_and_to_are_inclusive_and_a_date_to_covers_its_day(
    client, staff, timed, bounds, expected
):
    params = {f"created_{end}": value for end, value in bounds.items()}

    assert sorted(listed(client, staff, **params)) == sorted(timed[name] for name in expected)


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2024-03-10", ["10th, midnight", "10th, noon", "10th, last instant", "11th, midnight"]),
        ("2024-03-10 12:00:00", ["10th, noon", "10th, last instant", "11th, midnight"]),
    ],
)
def test_updated_since_is_inclusive(client, staff, timed, since, expected):
    found = listed(client, staff, updated_since=since)

    assert sorted(found) == sorted(timed[name] for name in expected)


@pytest.mark.xfail(
    strict=True,
    reason="BUG: created_to with a full timestamp misses tickets created within that second "
    "(compares to HH:MM:SS.000000 although times are shown, and inclusive, to the second)",
)
def test_created_to_a_shown_timestamp_includes_the_ticket_shown_with_it(client, staff, timed):
    shown = "2024-03-10 23:59:59"  # how the API shows "10th, last instant"

    assert timed["10th, last instant"] in listed(client, staff, created_to=shown)


def test_updates_move_a_ticket_into_updated_since(client, staff, timed):
    ticket_id = timed["9th, last second"]
    response = client.put(
        f"/api/v1/tickets/{ticket_id}", json={"priority": 3}, headers=staff.headers
    )
    assert_success(response, 200)

    assert ticket_id in listed(client, staff, updated_since="2024-03-11 00:00:01")


# --- Text search ------------------------------------------------------------------------------


@pytest.fixture
def texts(staff, make_ticket) -> dict:
    return {
        "router": make_ticket(staff, title="Router reboots", description="Every night at two"),
        "fiber": make_ticket(staff, title="Fiber cut", description="The router is fine"),
        "billing": make_ticket(staff, title="Billing question", description="Invoice twice"),
    }


SEARCHES = [
    ("router", ["router", "fiber"]),
    ("ROUTER", ["router", "fiber"]),
    ("rout", ["router", "fiber"]),
    ("router reboot", ["router"]),
    ("fiber router", ["fiber"]),
    ("night two", ["router"]),
    ("invoice", ["billing"]),
    ("  billing   question  ", ["billing"]),
    ("Router, reboots!", ["router"]),
    ("modem", []),
]


@pytest.mark.parametrize(("q", "expected"), SEARCHES)
def test_q_finds_every_word_in_title_or_description_last_as_a_prefix(
    client, staff, texts, q, expected
):
    assert sorted(listed(client, staff, q=q)) == sorted(texts[name] for name in expected)


@pytest.mark.xfail(
    ON_SQLITE, strict=True, reason="BUG: on SQLite, q is case-insensitive for ASCII letters only"
)
def test_q_is_case_insensitive_beyond_ascii(client, staff, make_ticket):
    ticket_id = make_ticket(staff, title="École fermée", description="Ligne coupée")

    assert listed(client, staff, q="ÉCOLE FERMÉE") == [ticket_id]


def test_q_combines_with_other_filters(client, staff, texts):
    assert listed(client, staff, q="router", priority="2", sort="created_at") == [
        texts["router"],
        texts["fiber"],
    ]


# --- Sorting ----------------------------------------------------------------------------------

# (priority, status, created_at, updated_at, due_at) of four tickets; ties arranged on purpose.
SORTABLE = [
    (2, 1, "2024-01-03", "2024-01-05", "2031-01-02"),
    (3, 0, "2024-01-01", "2024-01-06", None),
    (2, 3, "2024-01-02", "2024-01-04", "2031-01-01"),
    (1, 1, "2024-01-02", "2024-01-04", None),
]
SORTS = {
    "created_at": [1, 2, 3, 0],
    "-created_at": [0, 3, 2, 1],
    "updated_at": [2, 3, 0, 1],
    "-updated_at": [1, 0, 3, 2],
    "priority": [3, 0, 2, 1],
    "-priority": [1, 2, 0, 3],
    "status": [1, 0, 3, 2],
    "-status": [2, 3, 0, 1],
    "due_at": [2, 0, 1, 3],
    "-due_at": [0, 2, 3, 1],
}


@pytest.fixture
def sortable(app, staff, make_ticket) -> list[int]:
    made = []
    for priority, status, created, updated, due in SORTABLE:
        ticket_id = make_ticket(staff, priority=priority, status=status, due_at=due and at(due))
        set_columns(app, Ticket, ticket_id, created_at=at(created), updated_at=at(updated))
        made.append(ticket_id)
    return made


@pytest.mark.parametrize("sort", list(SORTS))
def test_sort_orders_ties_by_id_the_same_way_and_due_at_nulls_last(client, staff, sortable, sort):
    assert listed(client, staff, sort=sort) == [sortable[n] for n in SORTS[sort]]


def test_default_sort_is_newest_first(client, staff, sortable):
    assert listed(client, staff) == [sortable[n] for n in SORTS["-created_at"]]


def test_sorted_pages_do_not_overlap(client, staff, sortable):
    pages = [
        ids(assert_success(list_tickets(client, staff, sort="priority", per_page=1, page=p), 200))
        for p in (1, 2, 3, 4)
    ]

    assert [page[0] for page in pages] == [sortable[n] for n in SORTS["priority"]]


# --- Deleted tickets --------------------------------------------------------------------------


@pytest.fixture
def some_deleted(admin, make_ticket) -> dict:
    gone = now() - timedelta(hours=1)
    return {
        "live": make_ticket(admin),
        "deleted": make_ticket(admin, deleted_at=gone),
        "deleted high": make_ticket(admin, deleted_at=gone, priority=3),
        "deleted in branch 2": make_ticket(admin, branch_id=2, deleted_at=gone),
    }


def test_admin_lists_only_the_deleted_tickets_of_the_branch(client, admin, some_deleted):
    body = assert_success(list_tickets(client, admin, deleted="only"), 200)

    assert sorted(ids(body)) == [some_deleted["deleted"], some_deleted["deleted high"]]
    assert all(item["deleted_at"] is not None for item in body["data"])
    assert body["meta"]["total"] == 2


def test_deleted_only_combines_with_filters(client, admin, some_deleted):
    found = listed(client, admin, deleted="only", priority="3")

    assert found == [some_deleted["deleted high"]]


def test_live_list_never_shows_deleted_tickets(client, admin, some_deleted):
    body = assert_success(list_tickets(client, admin), 200)

    assert ids(body) == [some_deleted["live"]]
    assert body["data"][0]["deleted_at"] is None


def test_staff_asking_for_deleted_tickets_is_403(client, staff, admin, make_ticket, rows):
    make_ticket(admin, deleted_at=now())
    before = desk_state(rows)

    assert_error(list_tickets(client, staff, deleted="only"), 403)

    assert desk_state(rows) == before


# --- Bad values: 422 on the parameter ---------------------------------------------------------

BAD = {
    "status": ["9", "0,,1", "", ",", "a", "0;1", " 1", "-1", "1.0", "01"],
    "priority": ["0", "4", "1,4", "high"],
    "subscriber_id": ["abc", "0", "-1", "1.5", "99999999999", ""],
    "assignee_id": ["abc", "0", "-3", "ME", "None", "null", "1,2", "99999999999", "\u0663"],
    "created_from": ["2024-13-01", "2024-02-30", "2024-01-01T10:00:00", "yesterday", "2024/01/01"],
    "created_to": ["2024-00-10", "10-03-2024", "2024-01-01 25:00:00", ""],
    "updated_since": ["2024-01-32", "1704103200", "2024-01-01 10:00"],
    "overdue": ["yes", "1", "True", ""],
    "q": ["!!!", "", "   ", "a\x01b", "two\nlines", "x" * 201],
    "sort": ["foo", "--created_at", "id", "+priority", "created_at,id", ""],
    "deleted": ["all", "true", ""],
    "page": ["0", "x"],
    "per_page": ["201", "0"],
    "assignee": ["1"],
}


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in BAD.items() for value in values]
)
def test_bad_list_parameter_is_422_on_that_parameter(client, admin, make_ticket, rows, name, value):
    make_ticket(admin)
    before = desk_state(rows)

    assert_error(list_tickets(client, admin, **{name: value}), 422, name)

    assert desk_state(rows) == before


def test_list_parameter_given_twice_is_422(client, admin):
    response = client.get(
        f"/api/v1/tickets?isp_id=1&branch_id=1&user_id={admin.id}&status=0&status=1",
        headers=admin.headers,
    )

    assert_error(response, 422, "status")


# --- No filter reaches past the caller's scope -------------------------------------------------

FOREIGN_FILTERS = {
    "status": lambda f: {"status": "0"},
    "priority": lambda f: {"priority": "3"},
    "assignee none": lambda f: {"assignee_id": "none"},
    "overdue": lambda f: {"overdue": "true"},
    "q": lambda f: {"q": "outage"},
    "created_from": lambda f: {"created_from": "2000-01-01"},
    "updated_since": lambda f: {"updated_since": "2000-01-01"},
    "sort": lambda f: {"sort": "due_at"},
    "foreign subscriber_id": lambda f: {"subscriber_id": str(f["subscriber"])},
    "foreign assignee_id": lambda f: {"assignee_id": str(f["assignee"])},
}


@pytest.mark.parametrize("name", list(FOREIGN_FILTERS))
def test_no_filter_finds_another_isps_or_branchs_tickets(
    client, staff, other_staff, staff_branch2, make_ticket, make_subscriber, name
):
    """Every foreign ticket matches every filter; the caller's only ticket matches all but
    the foreign ids."""
    late, matching = now() - timedelta(days=1), {"title": "Outage", "priority": 3}
    foreign = {"subscriber": make_subscriber(isp_id=2), "assignee": other_staff.id}
    make_ticket(other_staff, subscriber_id=foreign["subscriber"], due_at=late, **matching)
    make_ticket(other_staff, assignee_id=other_staff.id, due_at=late, **matching)
    make_ticket(staff_branch2, due_at=late, **matching)
    mine = make_ticket(staff, due_at=late, **matching)

    found = listed(client, staff, **FOREIGN_FILTERS[name](foreign))

    assert found == ([] if name.startswith("foreign") else [mine])

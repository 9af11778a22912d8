"""Filters, text search, sorts, and deleted=only for admins. A bad value in any of them is 422 on
that parameter (one given twice too: test_input_hygiene); no filter reaches past the caller's ISP
and branch."""

from datetime import timedelta

import pytest
from support.client import assert_success, call, ids, list_tickets
from support.database import at, now, set_columns

from tickets_service.models import Ticket


def listed(client, account, **params) -> list[int]:
    body = assert_success(list_tickets(client, account, **params), 200)
    assert body["meta"]["total"] == len(body["data"])  # every list here fits on one page
    return ids(body)


# --- status, priority, subscriber, assignee ----------------------------------------------------


@pytest.fixture
def mixed(staff, admin, make_ticket, make_subscriber) -> dict:
    """Tickets by name: every status, every priority, assigned or not, one with a subscriber."""
    subscriber = make_subscriber()
    return {
        "open low": make_ticket(staff, status=0, priority=1),
        "progress medium mine": make_ticket(staff, status=1, priority=2, assignee_id=staff.id),
        "resolved high admin's": make_ticket(staff, status=2, priority=3, assignee_id=admin.id),
        "closed high": make_ticket(staff, status=3, priority=3, subscriber_id=subscriber),
        "subscriber": subscriber,
        "admin": admin.id,
    }


FILTERS = [
    ({"status": "0"}, ["open low"]),
    ({"status": "0,1"}, ["open low", "progress medium mine"]),
    ({"status": "3,2,3"}, ["resolved high admin's", "closed high"]),
    ({"priority": "3"}, ["resolved high admin's", "closed high"]),
    ({"priority": "1,2"}, ["open low", "progress medium mine"]),
    ({"status": "0,1,2", "priority": "2,3"}, ["progress medium mine", "resolved high admin's"]),
    ({"assignee_id": "none"}, ["open low", "closed high"]),
    ({"assignee_id": "me"}, ["progress medium mine"]),
    ({"assignee_id": "admin"}, ["resolved high admin's"]),
    ({"assignee_id": "none", "status": "0,1"}, ["open low"]),
    ({"subscriber_id": "subscriber"}, ["closed high"]),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS)
def test_list_filters_by_codes_assignee_and_subscriber(client, staff, mixed, params, expected):
    params = {k: str(mixed.get(v, v)) for k, v in params.items()}

    assert sorted(listed(client, staff, **params)) == sorted(mixed[name] for name in expected)


# --- Creation and update times ----------------------------------------------------------------

TIMES = {
    "9th 23:59:59": "2024-03-09 23:59:59",
    "10th 00:00": "2024-03-10 00:00:00",
    "10th noon": "2024-03-10 12:00:00",
    "10th 23:59:59.999999": "2024-03-10 23:59:59.999999",
    "11th 00:00": "2024-03-11 00:00:00",
}
DAY_10 = ["10th 00:00", "10th noon", "10th 23:59:59.999999"]
TIME_FILTERS = [
    ({"created_from": "2024-03-10"}, [*DAY_10, "11th 00:00"]),
    ({"created_to": "2024-03-10"}, ["9th 23:59:59", *DAY_10]),
    ({"created_from": "2024-03-10", "created_to": "2024-03-10"}, DAY_10),
    ({"created_from": "2024-03-10 12:00:00"}, [*DAY_10[1:], "11th 00:00"]),
    ({"created_to": "2024-03-10 12:00:00"}, ["9th 23:59:59", *DAY_10[:2]]),
    ({"created_from": "2024-03-10 12:00:00", "created_to": "2024-03-10 12:00:00"}, ["10th noon"]),
    ({"created_from": "2024-03-12"}, []),
    ({"updated_since": "2024-03-10"}, [*DAY_10, "11th 00:00"]),
    ({"updated_since": "2024-03-10 12:00:00"}, [*DAY_10[1:], "11th 00:00"]),
    # A full timestamp bound takes its whole second (times are shown to the second).
    ({"created_to": "2024-03-10 23:59:59"}, ["9th 23:59:59", *DAY_10]),
    # The first and last days a timestamp holds are bounds like any other.
    ({"created_to": "9999-12-31"}, list(TIMES)),
    ({"created_to": "9999-12-31 23:59:59"}, list(TIMES)),
    ({"created_from": "9999-12-31 23:59:59"}, []),
    ({"updated_since": "9999-12-31"}, []),
    ({"created_from": "0001-01-01", "created_to": "0001-01-01 00:00:00"}, []),
    ({"created_from": "0001-01-01"}, list(TIMES)),
]


@pytest.fixture
def timed(app, staff, make_ticket) -> dict:
    """A ticket created (and last updated) at each of TIMES."""
    made = {name: make_ticket(staff) for name in TIMES}
    for name, ticket_id in made.items():
        set_columns(app, Ticket, ticket_id, created_at=at(TIMES[name]), updated_at=at(TIMES[name]))
    return made


@pytest.mark.parametrize(("params", "expected"), TIME_FILTERS)
def test_time_filters_are_inclusive_and_a_date_as_created_to_covers_its_day(
    client, staff, timed, params, expected
):
    assert sorted(listed(client, staff, **params)) == sorted(timed[name] for name in expected)


def test_an_update_brings_a_ticket_into_updated_since(client, staff, timed):
    ticket_id = timed["9th 23:59:59"]
    assert_success(call(client, staff, "PUT", f"/api/v1/tickets/{ticket_id}", {"priority": 3}), 200)

    assert listed(client, staff, updated_since="2024-03-12") == [ticket_id]


# --- Text search ------------------------------------------------------------------------------


@pytest.fixture
def texts(staff, make_ticket) -> dict:
    return {
        "router": make_ticket(staff, title="Router reboots", description="Every night at two"),
        "fiber": make_ticket(staff, title="Fiber cut", description="The router is fine"),
        "billing": make_ticket(staff, title="Billing question", description="Invoice twice"),
        "address": make_ticket(staff, title="Customer 10.0.7.20", description="ann@mail.test"),
        "connection": make_ticket(staff, title="Connection lost", description="Since the storm"),
        "disconnect": make_ticket(staff, title="Disconnects often", description="Lights blink"),
        "spanish": make_ticket(staff, title="Conexión perdida", description="Desde ayer"),
        "hyphen": make_ticket(staff, title="Router-x firmware", description="Needs an update"),
    }


SEARCHES = [
    ("router", ["router", "fiber", "hyphen"]),
    ("ROUTER", ["router", "fiber", "hyphen"]),
    ("rout", ["router", "fiber", "hyphen"]),
    ("router reboot", ["router"]),
    ("fiber router", ["fiber"]),
    ("night two", ["router"]),
    ("  billing   question  ", ["billing"]),
    ("Router, reboots!", ["router"]),
    ("modem", []),
    ("10.0.7.20", ["address"]),
    ("ann@mail.test", ["address"]),
    # Words, not substrings: a term starts a word, and every term but the last is a whole one.
    ("onnect", []),
    ("connect", ["connection"]),
    ("connection lost", ["connection"]),
    ("connect lost", []),
    ("x", ["hyphen"]),
    ("conexión", ["spanish"]),
    ("10.0.7.2", ["address"]),
    ("fiber _", ["fiber"]),
]


@pytest.mark.parametrize(("q", "expected"), SEARCHES)
def test_q_finds_every_word_in_title_or_description_the_last_as_a_prefix(
    client, staff, texts, q, expected
):
    assert sorted(listed(client, staff, q=q)) == sorted(texts[name] for name in expected)


def test_q_ignores_case_beyond_ascii(client, staff, make_ticket):
    ticket_id = make_ticket(staff, title="École fermée", description="Ligne coupée")

    assert listed(client, staff, q="ÉCOLE FERMÉE") == [ticket_id]


# --- Sorting ----------------------------------------------------------------------------------

# (priority, status, created_at, updated_at, due_at) of four tickets, ties arranged on purpose,
# and the order of each sort.
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
    None: [0, 3, 2, 1],  # the default: newest first
}


@pytest.fixture
def sortable(app, staff, make_ticket) -> list[int]:
    made = []
    for priority, status, created, updated, due in SORTABLE:
        made.append(make_ticket(staff, priority=priority, status=status, due_at=due and at(due)))
        set_columns(app, Ticket, made[-1], created_at=at(created), updated_at=at(updated))
    return made


@pytest.mark.parametrize("sort", list(SORTS))
def test_sort_breaks_ties_on_id_the_same_way_and_puts_no_due_time_last(
    client, staff, sortable, sort
):
    params = {} if sort is None else {"sort": sort}

    assert listed(client, staff, **params) == [sortable[n] for n in SORTS[sort]]


def test_sorted_pages_neither_overlap_nor_skip(client, staff, sortable):
    pages = [
        ids(assert_success(list_tickets(client, staff, sort="priority", per_page=1, page=p), 200))
        for p in (1, 2, 3, 4)
    ]

    assert pages == [[sortable[n]] for n in SORTS["priority"]]


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


DELETED = [
    ({"deleted": "only"}, ["deleted", "deleted high"]),
    ({"deleted": "only", "priority": "3"}, ["deleted high"]),
    ({"deleted": "only", "branch_id": "2"}, ["deleted in branch 2"]),
    ({}, ["live"]),
]


@pytest.mark.parametrize(("params", "expected"), DELETED)
def test_admins_list_deleted_tickets_apart_from_live_ones(
    client, admin, some_deleted, params, expected
):
    body = assert_success(list_tickets(client, admin, **params), 200)

    assert sorted(ids(body)) == sorted(some_deleted[name] for name in expected)
    assert {item["deleted_at"] is not None for item in body["data"]} == {"deleted" in params}


def test_staff_asking_for_deleted_tickets_is_403(client, staff, admin, make_ticket, assert_refused):
    make_ticket(admin, deleted_at=now())
    response = assert_refused(lambda: list_tickets(client, staff, deleted="only"), 403)
    assert "data" not in response.get_json()


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
    "q": ["!!!", "", "   ", "a\x01b", "two\nlines", "x" * 201, "_", "__ -_-"],
    "sort": ["foo", "--created_at", "id", "+priority", "created_at,id", ""],
    "deleted": ["all", "true", ""],
    "per_page": ["201", "0"],
    "assignee": ["1"],
}


BAD_PAIRS = [(k, v) for k, values in BAD.items() for v in values]
BAD_PAIRS += [("created_from", "2024-1-1 10:00:00")]


@pytest.mark.parametrize(("name", "value"), BAD_PAIRS)
def test_a_bad_list_parameter_is_422_on_that_parameter(
    client, admin, make_ticket, assert_refused, name, value
):
    make_ticket(admin)
    assert_refused(lambda: list_tickets(client, admin, **{name: value}), 422, name)


# --- No filter reaches past the caller's scope -------------------------------------------------

FOREIGN = {
    "status": {"status": "0"},
    "priority": {"priority": "3"},
    "assignee none": {"assignee_id": "none"},
    "overdue": {"overdue": "true"},
    "q": {"q": "outage"},
    "created_from": {"created_from": "2000-01-01"},
    "updated_since": {"updated_since": "2000-01-01"},
    "sort": {"sort": "due_at"},
    "foreign subscriber_id": {"subscriber_id": "foreign subscriber"},
    "foreign assignee_id": {"assignee_id": "foreign assignee"},
}


@pytest.mark.parametrize("name", list(FOREIGN))
def test_no_filter_finds_another_isps_or_branchs_tickets(
    client, staff, other_staff, staff_branch2, make_ticket, make_subscriber, name
):
    """Every foreign ticket matches every filter; the caller's own one all but the foreign ids."""
    late, matching = now() - timedelta(days=1), {"title": "Outage", "priority": 3, "status": 0}
    foreign = {"foreign subscriber": make_subscriber(isp_id=2), "foreign assignee": other_staff.id}
    make_ticket(other_staff, subscriber_id=foreign["foreign subscriber"], due_at=late, **matching)
    make_ticket(other_staff, assignee_id=other_staff.id, due_at=late, **matching)
    make_ticket(staff_branch2, due_at=late, **matching)
    mine = make_ticket(staff, due_at=late, **matching)

    found = listed(client, staff, **{k: str(foreign.get(v, v)) for k, v in FOREIGN[name].items()})

    assert found == ([] if name.startswith("foreign") else [mine])

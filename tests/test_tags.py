"""Tags: a ticket takes `tags` on create and update (at most 20, each once, each a lowercase slug
of at most 40 characters; anything else is 422 and changes nothing), shows them in List and
Fetch in the order given, and records every change in its history; the list filters on them
(tag: every one, tag_any: any one); GET /api/v1/tags counts the tags of the live tickets within
the caller's reach."""

import pytest
from support.client import (
    assert_error,
    assert_success,
    call,
    create_ticket,
    get,
    ids,
    list_tickets,
    scope_of,
    set_status,
)
from support.database import desk_state, history_in_db
from support.urls import TICKETS, ticket_url

from tickets_service.models import Ticket, TicketTag

TAGS = "/api/v1/tags"
LONGEST = "a" * 20 + "-" + "b" * 19  # 40 characters


def tags_in_db(rows, ticket_id: int) -> list[str]:
    """The ticket_tags rows of a ticket (the filters and counts read these), sorted."""
    return sorted(row["tag"] for row in rows(TicketTag) if row["ticket_id"] == ticket_id)


def shown(client, account, ticket_id: int) -> dict:
    """Fetch Ticket's data."""
    return assert_success(get(client, account, ticket_url(ticket_id)), 200)["data"]


def listed(client, account, **params) -> list[int]:
    body = assert_success(list_tickets(client, account, **params), 200)
    assert body["meta"]["total"] == len(body["data"])  # every list here fits on one page
    return sorted(ids(body))


def tag_counts(client, account, **query) -> list[dict]:
    return assert_success(get(client, account, TAGS, **query), 200)["data"]


def retag(client, account, ticket_id: int, tags: list):
    return call(client, account, "PUT", ticket_url(ticket_id), {"tags": tags})


# --- Create and update --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags",
    [["zeta", "alpha", "mid-way"], [LONGEST], [f"t{n}" for n in range(20, 0, -1)], []],
    ids=["three-unsorted", "forty-characters", "twenty", "none"],
)
def test_a_ticket_is_created_with_its_tags_shown_in_the_order_given(
    client, staff, fetch, rows, tags
):
    ticket_id = create_ticket(client, staff, tags=tags)

    assert fetch(Ticket, ticket_id)["tags"] == tags
    assert tags_in_db(rows, ticket_id) == sorted(tags)
    assert shown(client, staff, ticket_id)["tags"] == tags
    [item] = assert_success(list_tickets(client, staff), 200)["data"]
    assert (item["id"], item["tags"]) == (ticket_id, tags)


def test_a_ticket_created_without_tags_has_none(client, staff, fetch, rows):
    ticket_id = create_ticket(client, staff)

    assert fetch(Ticket, ticket_id)["tags"] == []
    assert rows(TicketTag) == []
    assert shown(client, staff, ticket_id)["tags"] == []


def test_an_update_replaces_the_tags_and_records_old_and_new(client, staff, fetch, rows):
    ticket_id = create_ticket(client, staff, tags=["router", "evening"])
    before = history_in_db(rows, ticket_id)

    response = retag(client, staff, ticket_id, ["wifi", "router"])

    assert_success(response, 200, "Ticket updated successfully")
    assert fetch(Ticket, ticket_id)["tags"] == ["wifi", "router"]
    assert tags_in_db(rows, ticket_id) == ["router", "wifi"]
    assert shown(client, staff, ticket_id)["tags"] == ["wifi", "router"]
    added = history_in_db(rows, ticket_id)[len(before) :]
    assert added == [("updated", "tags", ["router", "evening"], ["wifi", "router"], staff.id)]


def test_every_tag_change_is_its_own_history_entry(client, staff, rows):
    ticket_id = create_ticket(client, staff)
    steps = [["a"], ["a", "b"], ["b"], []]

    for tags in steps:
        assert_success(retag(client, staff, ticket_id, tags), 200, "Ticket updated successfully")

    changes = [entry for entry in history_in_db(rows, ticket_id) if entry[1] == "tags"]
    olds = [[], *steps[:-1]]
    assert changes == [
        ("updated", "tags", old, new, staff.id) for old, new in zip(olds, steps, strict=True)
    ]
    assert tags_in_db(rows, ticket_id) == []


def test_an_update_sending_the_same_tags_records_nothing(client, staff, fetch, rows):
    ticket_id = create_ticket(client, staff, tags=["router", "evening"])
    before = history_in_db(rows, ticket_id)

    response = retag(client, staff, ticket_id, ["router", "evening"])

    assert_success(response, 200, "Ticket updated successfully")
    assert history_in_db(rows, ticket_id) == before
    assert fetch(Ticket, ticket_id)["tags"] == ["router", "evening"]


def test_an_update_of_other_fields_keeps_the_tags(client, staff, fetch, rows):
    ticket_id = create_ticket(client, staff, tags=["router"])

    response = call(client, staff, "PUT", ticket_url(ticket_id), {"title": "Still slow"})

    assert_success(response, 200, "Ticket updated successfully")
    assert fetch(Ticket, ticket_id)["tags"] == ["router"]
    assert tags_in_db(rows, ticket_id) == ["router"]


BAD_TAGS = {
    "space": ["fibre cut"],
    "upper-case": ["Router"],
    "41-characters": [LONGEST + "c"],
    "21-tags": [f"t{n}" for n in range(21)],
    "a-duplicate": ["router", "wifi", "router"],
    "empty": [""],
    "underscore": ["fibre_cut"],
    "double-hyphen": ["fibre--cut"],
    "leading-hyphen": ["-fibre"],
    "accented": ["câble"],
    "number": [5],
    "null-in-list": ["router", None],
    "nested-list": [["router"]],
    "object": [{"tag": "router"}],
    "a-string-not-a-list": "router,wifi",
    "null": None,
}


def assert_refused_on_tags(response) -> None:
    """422, its errors on the tags field (or one of its items) alone."""
    body = assert_error(response, 422)
    assert body["errors"]
    assert all(name == "tags" or name.startswith("tags.") for name in body["errors"])


@pytest.mark.parametrize("tags", BAD_TAGS.values(), ids=BAD_TAGS)
def test_bad_tags_on_create_are_422_and_store_nothing(client, staff, snapshot, tags):
    create_ticket(client, staff, tags=["router"])  # a ticket and its tag that stay as they are
    before = snapshot()
    body = {**scope_of(staff), "title": "Slow", "description": "Evenings", "priority": 1}

    response = call(client, staff, "POST", TICKETS, {**body, "tags": tags})

    assert_refused_on_tags(response)
    assert snapshot() == before


@pytest.mark.parametrize("tags", BAD_TAGS.values(), ids=BAD_TAGS)
def test_bad_tags_on_update_are_422_and_change_nothing(client, staff, snapshot, rows, tags):
    ticket_id = create_ticket(client, staff, tags=["router"])
    before = snapshot()

    response = retag(client, staff, ticket_id, tags)

    assert_refused_on_tags(response)
    assert snapshot() == before
    assert tags_in_db(rows, ticket_id) == ["router"]


def test_a_bad_tag_beside_good_changes_refuses_the_whole_update(client, staff, rows):
    ticket_id = create_ticket(client, staff, tags=["router"])
    before = desk_state(rows)

    body = {"title": "Renamed", "priority": 3, "tags": ["wifi", "Bad Tag"]}
    response = call(client, staff, "PUT", ticket_url(ticket_id), body)

    assert_refused_on_tags(response)
    assert desk_state(rows) == before


# --- The list's tag filters ---------------------------------------------------------------------


@pytest.fixture
def tagged(client, staff, staff_branch2, other_admin) -> dict:
    """Tickets by name, with their tags; a resolved one, another branch's and another ISP's."""
    made = {
        "router wifi": create_ticket(client, staff, tags=["router", "wifi"]),
        "router": create_ticket(client, staff, tags=["router"], priority=3),
        "wifi evening": create_ticket(client, staff, tags=["wifi", "evening"], type="fault"),
        "untagged": create_ticket(client, staff),
        "router wifi evening resolved": create_ticket(
            client, staff, tags=["evening", "wifi", "router"]
        ),
        "branch 2 router wifi": create_ticket(client, staff_branch2, tags=["router", "wifi"]),
        "isp 2 router wifi": create_ticket(client, other_admin, tags=["router", "wifi"]),
    }
    assert_success(set_status(client, staff, made["router wifi evening resolved"], 2), 200)
    return made


BRANCH_1 = ["router wifi", "router", "wifi evening", "untagged", "router wifi evening resolved"]
TAG_FILTERS = {
    "all-of-one": ({"tag": "router"}, ["router wifi", "router", "router wifi evening resolved"]),
    "all-of-two": ({"tag": "router,wifi"}, ["router wifi", "router wifi evening resolved"]),
    "all-of-two-reversed": (
        {"tag": "wifi,router"},
        ["router wifi", "router wifi evening resolved"],
    ),
    "all-of-three": ({"tag": "router,wifi,evening"}, ["router wifi evening resolved"]),
    "all-with-an-unused-one": ({"tag": "router,fibre"}, []),
    "unused": ({"tag": "fibre"}, []),
    "any-of-one": ({"tag_any": "evening"}, ["wifi evening", "router wifi evening resolved"]),
    "any-of-two": (
        {"tag_any": "router,evening"},
        ["router wifi", "router", "wifi evening", "router wifi evening resolved"],
    ),
    "any-with-an-unused-one": (
        {"tag_any": "fibre,evening"},
        ["wifi evening", "router wifi evening resolved"],
    ),
    "any-unused": ({"tag_any": "fibre"}, []),
    "all-and-any": (
        {"tag": "wifi", "tag_any": "router,fibre"},
        ["router wifi", "router wifi evening resolved"],
    ),
    "all-and-status": ({"tag": "router,wifi", "status": "0,1"}, ["router wifi"]),
    "any-and-priority": ({"tag_any": "router,evening", "priority": "3"}, ["router"]),
    "any-and-type": ({"tag_any": "wifi", "type": "fault"}, ["wifi evening"]),
    "all-and-text": (
        {"tag": "router", "q": "slow"},
        ["router wifi", "router", "router wifi evening resolved"],
    ),
    "all-and-status-none-left": ({"tag": "evening", "status": "1"}, []),
}


@pytest.mark.parametrize(("params", "expected"), TAG_FILTERS.values(), ids=TAG_FILTERS)
def test_the_list_filters_by_tags_every_one_or_any_one(client, staff, tagged, params, expected):
    assert listed(client, staff, **params) == sorted(tagged[name] for name in expected)


def test_without_a_tag_filter_the_branch_lists_every_ticket(client, staff, tagged):
    assert listed(client, staff) == sorted(tagged[name] for name in BRANCH_1)


@pytest.mark.parametrize("param", ["tag", "tag_any"])
def test_tag_filters_stay_within_the_callers_branch_and_isp(
    client, admin, staff_branch2, other_admin, tagged, param
):
    assert listed(client, staff_branch2, **{param: "router"}) == [tagged["branch 2 router wifi"]]
    assert listed(client, other_admin, **{param: "router"}) == [tagged["isp 2 router wifi"]]
    assert listed(client, admin, branch_id=2, **{param: "wifi"}) == [tagged["branch 2 router wifi"]]


def test_a_tag_filter_follows_tag_changes(client, staff, tagged):
    ticket_id = tagged["untagged"]
    assert_success(retag(client, staff, ticket_id, ["fibre"]), 200)
    assert listed(client, staff, tag="fibre") == [ticket_id]

    assert_success(retag(client, staff, ticket_id, ["router"]), 200)

    assert listed(client, staff, tag="fibre") == []
    assert ticket_id in listed(client, staff, tag="router")


@pytest.mark.parametrize("param", ["tag", "tag_any"])
@pytest.mark.parametrize("value", ["Router", "fibre cut", "router,", "a" * 41, ""])
def test_a_bad_tag_filter_is_422_on_it(client, staff, tagged, param, value):
    assert_error(list_tickets(client, staff, **{param: value}), 422, param)


# --- GET /api/v1/tags ---------------------------------------------------------------------------


def test_tags_are_counted_most_used_first_then_by_tag(client, staff, tagged):
    expected = [
        {"tag": "router", "count": 3},
        {"tag": "wifi", "count": 3},
        {"tag": "evening", "count": 2},
    ]

    body = assert_success(get(client, staff, TAGS), 200)

    assert body["data"] == expected
    assert all(list(item) == ["tag", "count"] for item in body["data"])


def test_an_admin_counts_the_whole_isp_or_one_branch(client, admin, tagged):
    assert tag_counts(client, admin) == [
        {"tag": "router", "count": 4},
        {"tag": "wifi", "count": 4},
        {"tag": "evening", "count": 2},
    ]
    assert tag_counts(client, admin, branch_id=2) == [
        {"tag": "router", "count": 1},
        {"tag": "wifi", "count": 1},
    ]


def test_staff_never_count_another_branchs_tags_nor_another_isps(
    client, staff, staff_branch2, other_admin, other_staff
):
    create_ticket(client, staff, tags=["mine"])
    create_ticket(client, staff_branch2, tags=["branch-two", "shared"])
    create_ticket(client, other_admin, tags=["isp-two", "shared"])
    create_ticket(client, other_staff, tags=["isp-two"])

    assert tag_counts(client, staff) == [{"tag": "mine", "count": 1}]
    assert tag_counts(client, staff_branch2) == [
        {"tag": "branch-two", "count": 1},
        {"tag": "shared", "count": 1},
    ]
    assert tag_counts(client, other_staff) == [
        {"tag": "isp-two", "count": 2},
        {"tag": "shared", "count": 1},
    ]


def test_staff_naming_another_branch_are_refused(client, staff, staff_branch2, assert_refused):
    create_ticket(client, staff_branch2, tags=["branch-two"])

    assert_refused(lambda: get(client, staff, TAGS, branch_id=2), 403)


def test_deleted_tickets_do_not_count_and_restored_ones_count_again(client, admin, staff):
    kept = create_ticket(client, staff, tags=["router"])
    gone = create_ticket(client, staff, tags=["router", "wifi"])

    assert_success(call(client, admin, "DELETE", ticket_url(gone)), 200)

    assert tag_counts(client, staff) == [{"tag": "router", "count": 1}]
    assert listed(client, staff, tag_any="router,wifi") == [kept]
    assert_success(call(client, admin, "POST", ticket_url(gone, "/restore")), 200)
    assert tag_counts(client, staff) == [
        {"tag": "router", "count": 2},
        {"tag": "wifi", "count": 1},
    ]


def test_counts_follow_tag_changes(client, staff):
    ticket_id = create_ticket(client, staff, tags=["router", "wifi"])
    create_ticket(client, staff, tags=["wifi"])

    assert_success(retag(client, staff, ticket_id, ["fibre", "router"]), 200)

    assert tag_counts(client, staff) == [
        {"tag": "fibre", "count": 1},
        {"tag": "router", "count": 1},
        {"tag": "wifi", "count": 1},
    ]


def test_an_isp_with_no_tags_has_an_empty_list(client, admin, staff):
    create_ticket(client, staff)

    body = assert_success(get(client, admin, TAGS), 200)

    assert body["data"] == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("r", ["router", "relocation"]),
        ("ro", ["router"]),
        ("router", ["router"]),
        ("re", ["relocation"]),
        ("w", ["wifi", "wifi-5g"]),
        # A prefix as someone types it may end with the hyphen before the next word.
        ("wifi-", ["wifi-5g"]),
        ("x", []),
    ],
)
def test_q_counts_the_tags_starting_with_it(client, staff, q, expected):
    create_ticket(client, staff, tags=["router", "wifi", "relocation"])
    create_ticket(client, staff, tags=["router", "wifi-5g"])
    create_ticket(client, staff, tags=["outer-router"])

    assert [item["tag"] for item in tag_counts(client, staff, q=q)] == expected


@pytest.mark.parametrize("q", ["R", "a b", "router_", "a" * 41, ""])
def test_a_bad_q_is_422(client, staff, q):
    create_ticket(client, staff, tags=["router"])

    assert_error(get(client, staff, TAGS, q=q), 422, "q")


def test_a_read_key_counts_its_isps_tags(client, admin, staff, other_admin, make_key):
    create_ticket(client, staff, tags=["router"])
    create_ticket(client, other_admin, tags=["isp-two"])
    key = make_key(admin, ("tickets:read",))

    assert tag_counts(client, key) == [{"tag": "router", "count": 1}]

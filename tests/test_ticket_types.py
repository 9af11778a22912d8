"""Ticket types: each ISP's catalogue (GET, POST and PUT /api/v1/ticket-types, admins write),
made of the five defaults at the ISP's first use; the `type` a ticket takes on create and update
(default other; an unknown or inactive one is 422), recorded in its history, filtered on in the
list and counted in the stats; a type's default assignee, given to a create that names none; and
the fault type of the incident an accepted storm suggestion opens."""

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
from support.database import history_in_db, set_columns, without
from support.urls import STATS, SUBSCRIBERS, TICKETS, ticket_url

from tickets_service.models import IncidentSuggestion, Ticket, TicketType, User

TYPES = "/api/v1/ticket-types"
SUGGESTIONS = "/api/v1/incidents/suggestions"
TYPE_KEYS = ["id", "key", "name", "default_priority", "default_assignee_id", "active"]
# A new ISP's catalogue, as the API shows it (by key): key, name, default priority.
DEFAULTS = [
    ("billing", "Billing", 1),
    ("fault", "Fault", 3),
    ("installation", "Installation", 2),
    ("other", "Other", 2),
    ("relocation", "Relocation", 2),
]
DEFAULT_KEYS = [key for key, _, _ in DEFAULTS]


def type_url(type_id: int) -> str:
    return f"{TYPES}/{type_id}"


def catalogue(client, account) -> list[dict]:
    """The caller's ISP's types, as GET shows them (making the catalogue at first use)."""
    return assert_success(get(client, account, TYPES), 200)["data"]


def type_id(client, admin, key: str) -> int:
    [found] = [kind["id"] for kind in catalogue(client, admin) if kind["key"] == key]
    return found


def add_type(client, admin, key: str, **fields) -> dict:
    body = {"key": key, "name": key.title(), **fields}
    response = call(client, admin, "POST", TYPES, body)
    return assert_success(response, 201, "Ticket type created successfully")["data"]


def edit_type(client, admin, key: str, **changes) -> dict:
    response = call(client, admin, "PUT", type_url(type_id(client, admin, key)), changes)
    return assert_success(response, 200, "Ticket type updated successfully")["data"]


def stored_types(rows, isp_id: int = 1) -> dict[str, dict]:
    """The ISP's ticket_types rows by key."""
    return {row["key"]: row for row in rows(TicketType) if row["isp_id"] == isp_id}


def new_ticket(account, **fields) -> dict:
    body = {**scope_of(account), "title": "Slow", "description": "Evenings", "priority": 2}
    return {**body, **fields}


def shown(client, account, ticket_id: int) -> dict:
    """Fetch Ticket's data."""
    return assert_success(get(client, account, ticket_url(ticket_id)), 200)["data"]


# --- The catalogue ------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["admin", "staff", "key"])
def test_an_isps_first_use_makes_its_catalogue_of_the_five_defaults(
    request, client, admin, make_key, rows, caller
):
    who = make_key(admin, ("tickets:read",)) if caller == "key" else request.getfixturevalue(caller)
    assert rows(TicketType) == []

    data = catalogue(client, who)

    assert [list(kind) for kind in data] == [TYPE_KEYS] * len(DEFAULTS)
    stored = stored_types(rows)
    assert data == [
        {
            "id": stored[key]["id"],
            "key": key,
            "name": name,
            "default_priority": priority,
            "default_assignee_id": None,
            "active": True,
        }
        for key, name, priority in DEFAULTS
    ]
    assert len(rows(TicketType)) == len(DEFAULTS)


def test_the_catalogue_is_made_once_and_each_isp_has_its_own(client, admin, other_admin, rows):
    first = catalogue(client, admin)
    add_type(client, admin, "aaa-first")
    add_type(client, admin, "zzz-last")

    again = catalogue(client, admin)
    others = catalogue(client, other_admin)

    assert [kind["key"] for kind in again] == ["aaa-first", *DEFAULT_KEYS, "zzz-last"]
    assert [kind for kind in again if kind["key"] in DEFAULT_KEYS] == first
    assert [kind["key"] for kind in others] == DEFAULT_KEYS
    assert {kind["id"] for kind in others}.isdisjoint(kind["id"] for kind in again)
    assert sorted(stored_types(rows, isp_id=1)) == sorted([*DEFAULT_KEYS, "aaa-first", "zzz-last"])
    assert sorted(stored_types(rows, isp_id=2)) == DEFAULT_KEYS


# --- POST ---------------------------------------------------------------------------------------


def test_an_admin_adds_a_type_with_every_field(client, admin, staff, fetch, rows):
    body = {
        "key": "fibre-install",
        "name": "Fibre installation",
        "default_priority": 3,
        "default_assignee_id": staff.id,
        "active": False,
    }

    response = call(client, admin, "POST", TYPES, body)

    data = assert_success(response, 201, "Ticket type created successfully")["data"]
    assert list(data) == TYPE_KEYS
    assert data == {"id": data["id"], **body}
    row = fetch(TicketType, data["id"])
    assert {key: row[key] for key in TYPE_KEYS} == data
    assert row["isp_id"] == 1
    # The ISP's first use: its catalogue was made with it.
    assert sorted(stored_types(rows)) == sorted([*DEFAULT_KEYS, "fibre-install"])


def test_a_new_type_defaults_to_medium_priority_no_assignee_and_active(client, admin, fetch):
    data = add_type(client, admin, "voip", name="VoIP")

    assert without(data, "id") == {
        "key": "voip",
        "name": "VoIP",
        "default_priority": 2,
        "default_assignee_id": None,
        "active": True,
    }
    row = fetch(TicketType, data["id"])
    assert (row["default_priority"], row["default_assignee_id"], row["active"]) == (2, None, True)


def test_a_key_of_forty_characters_is_taken(client, admin, fetch):
    key = "a" * 19 + "-" + "b" * 20

    data = add_type(client, admin, key)

    assert fetch(TicketType, data["id"])["key"] == key


@pytest.fixture
def inactive_user(make_user) -> int:
    return make_user(active=False).id


@pytest.fixture
def other_isps_user(other_admin) -> int:
    return other_admin.id


BAD_NEW_TYPES = {
    "no-key": ({"name": "X"}, "key"),
    "null-key": ({"key": None, "name": "X"}, "key"),
    "empty-key": ({"key": "", "name": "X"}, "key"),
    "upper-case-key": ({"key": "Fibre", "name": "X"}, "key"),
    "key-with-space": ({"key": "fibre cut", "name": "X"}, "key"),
    "key-with-underscore": ({"key": "fibre_cut", "name": "X"}, "key"),
    "key-double-hyphen": ({"key": "fibre--cut", "name": "X"}, "key"),
    "key-leading-hyphen": ({"key": "-fibre", "name": "X"}, "key"),
    "key-trailing-hyphen": ({"key": "fibre-", "name": "X"}, "key"),
    "key-41-characters": ({"key": "a" * 41, "name": "X"}, "key"),
    "key-not-a-string": ({"key": 5, "name": "X"}, "key"),
    "no-name": ({"key": "fibre"}, "name"),
    "empty-name": ({"key": "fibre", "name": ""}, "name"),
    "priority-0": ({"key": "fibre", "name": "X", "default_priority": 0}, "default_priority"),
    "priority-4": ({"key": "fibre", "name": "X", "default_priority": 4}, "default_priority"),
    "priority-text": ({"key": "fibre", "name": "X", "default_priority": "2"}, "default_priority"),
    "active-text": ({"key": "fibre", "name": "X", "active": "yes"}, "active"),
    "unknown-field": ({"key": "fibre", "name": "X", "sla": 3}, "sla"),
    "unknown-assignee": (
        {"key": "fibre", "name": "X", "default_assignee_id": 999_999},
        "default_assignee_id",
    ),
    "inactive-assignee": (
        {"key": "fibre", "name": "X", "default_assignee_id": "inactive_user"},
        "default_assignee_id",
    ),
    "other-isps-assignee": (
        {"key": "fibre", "name": "X", "default_assignee_id": "other_isps_user"},
        "default_assignee_id",
    ),
}


def with_users(request, body: dict) -> dict:
    """The body with a fixture's name as default_assignee_id replaced by its user id."""
    named = body.get("default_assignee_id")
    if isinstance(named, str):
        return {**body, "default_assignee_id": request.getfixturevalue(named)}
    return body


@pytest.mark.parametrize(("body", "field"), BAD_NEW_TYPES.values(), ids=BAD_NEW_TYPES)
def test_a_bad_new_type_is_422_and_stores_nothing(
    request, client, admin, assert_refused, body, field
):
    body = with_users(request, body)
    catalogue(client, admin)  # an ISP whose catalogue is made

    assert_refused(lambda: call(client, admin, "POST", TYPES, body), 422, field)


@pytest.mark.parametrize("key", ["fault", "other", "fibre-install"])
def test_a_key_the_isp_already_has_is_409(client, admin, assert_refused, key):
    add_type(client, admin, "fibre-install")

    body = {"key": key, "name": "Again", "default_priority": 1}
    assert_refused(lambda: call(client, admin, "POST", TYPES, body), 409)


def test_another_isps_key_is_free_to_take(client, admin, other_admin, rows):
    add_type(client, other_admin, "fibre-install")

    data = add_type(client, admin, "fibre-install")

    assert stored_types(rows, isp_id=1)["fibre-install"]["id"] == data["id"]
    assert stored_types(rows, isp_id=2)["fibre-install"]["id"] != data["id"]


# --- PUT ----------------------------------------------------------------------------------------


@pytest.fixture
def colleague(make_user) -> int:
    """An active staff user of ISP 1, branch 1."""
    return make_user().id


EDITS = {
    "name": {"name": "Broken line"},
    "default-priority": {"default_priority": 1},
    "default-assignee": {"default_assignee_id": "colleague"},
    "deactivate": {"active": False},
    "several": {"name": "Broken line", "default_priority": 2, "active": False},
}


@pytest.mark.parametrize("changes", EDITS.values(), ids=EDITS)
def test_an_admin_edits_a_type_and_only_what_was_sent_changes(
    request, client, admin, fetch, changes
):
    changes = with_users(request, changes)
    fault = type_id(client, admin, "fault")
    before = fetch(TicketType, fault)

    response = call(client, admin, "PUT", type_url(fault), changes)

    data = assert_success(response, 200, "Ticket type updated successfully")["data"]
    expected = {**{key: before[key] for key in TYPE_KEYS}, **changes}
    assert data == expected
    after = fetch(TicketType, fault)
    assert {key: after[key] for key in TYPE_KEYS} == expected
    assert (after["isp_id"], after["key"]) == (1, "fault")


def test_a_default_assignee_is_taken_away_with_null_and_a_type_reactivated(
    client, admin, staff, fetch
):
    edit_type(client, admin, "billing", default_assignee_id=staff.id, active=False)

    data = edit_type(client, admin, "billing", default_assignee_id=None, active=True)

    assert (data["default_assignee_id"], data["active"]) == (None, True)
    row = fetch(TicketType, data["id"])
    assert (row["default_assignee_id"], row["active"]) == (None, True)


BAD_EDITS = {
    "nothing": ({}, None),
    "scope-only": ({"isp_id": 1}, None),
    "key": ({"key": "broken-line"}, "key"),
    "key-and-name": ({"key": "broken-line", "name": "Broken line"}, "key"),
    "empty-name": ({"name": ""}, "name"),
    "priority-4": ({"default_priority": 4}, "default_priority"),
    "priority-null": ({"default_priority": None}, "default_priority"),
    "active-null": ({"active": None}, "active"),
    "unknown-assignee": ({"default_assignee_id": 999_999}, "default_assignee_id"),
    "inactive-assignee": ({"default_assignee_id": "inactive_user"}, "default_assignee_id"),
    "other-isps-assignee": ({"default_assignee_id": "other_isps_user"}, "default_assignee_id"),
}


@pytest.mark.parametrize(("body", "field"), BAD_EDITS.values(), ids=BAD_EDITS)
def test_a_bad_edit_is_422_and_changes_nothing(request, client, admin, assert_refused, body, field):
    body = with_users(request, body)
    url = type_url(type_id(client, admin, "fault"))

    assert_refused(lambda: call(client, admin, "PUT", url, body), 422, field)


@pytest.mark.parametrize(
    "changes",
    [{"active": False}, {"active": False, "name": "Misc"}],
    ids=["deactivate", "deactivate-and-rename"],
)
def test_other_cannot_be_deactivated(client, admin, assert_refused, changes):
    url = type_url(type_id(client, admin, "other"))

    assert_refused(lambda: call(client, admin, "PUT", url, changes), 422, "active")


def test_other_can_be_renamed_and_stays_active(client, admin, fetch):
    data = edit_type(client, admin, "other", name="Miscellaneous", active=True)

    row = fetch(TicketType, data["id"])
    assert (row["key"], row["name"], row["active"]) == ("other", "Miscellaneous", True)


@pytest.mark.parametrize("whose", ["another-isps", "unknown"])
def test_put_of_a_type_not_of_the_callers_isp_is_404(
    client, admin, other_admin, assert_refused, whose
):
    theirs = type_id(client, other_admin, "fault")
    catalogue(client, admin)
    target = theirs if whose == "another-isps" else theirs + 1000

    url = type_url(target)
    assert_refused(lambda: call(client, admin, "PUT", url, {"name": "Mine now"}), 404)


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("caller", ["staff", "key"])
def test_staff_and_read_keys_may_not_write_types(
    request, client, admin, make_key, assert_refused, method, caller
):
    who = make_key(admin, ("tickets:read",)) if caller == "key" else request.getfixturevalue(caller)
    url = TYPES if method == "POST" else type_url(type_id(client, admin, "fault"))
    body = {"key": "fibre", "name": "Fibre"} if method == "POST" else {"name": "Fibre"}

    assert_refused(lambda: call(client, who, method, url, body), 403)


# --- A ticket's type ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    ["fault", "billing", "fibre-install", None],
    ids=["fault", "billing", "the-isps-own", "none-sent"],
)
def test_a_ticket_takes_the_type_it_is_created_with_other_by_default(
    client, admin, staff, fetch, sent
):
    add_type(client, admin, "fibre-install")
    fields = {} if sent is None else {"type": sent}

    ticket_id = create_ticket(client, staff, **fields)

    expected = sent or "other"
    assert fetch(Ticket, ticket_id)["type"] == expected
    assert shown(client, staff, ticket_id)["type"] == expected
    [listed] = assert_success(list_tickets(client, staff), 200)["data"]
    assert (listed["id"], listed["type"]) == (ticket_id, expected)


def test_an_isps_first_ticket_makes_its_catalogue(client, staff, fetch, rows):
    ticket_id = create_ticket(client, staff, type="relocation")

    assert fetch(Ticket, ticket_id)["type"] == "relocation"
    assert sorted(stored_types(rows)) == DEFAULT_KEYS


BAD_TYPES = {
    "unknown": "teleport",
    "inactive": "installation",
    "another-isps-own": "their-type",
    "upper-case": "Fault",
    "null": None,
    "number": 3,
    "list": ["fault"],
}


@pytest.fixture
def desk_of_two_isps(client, admin, other_admin):
    """ISP 1's catalogue with installation deactivated; ISP 2 has a type of its own."""
    edit_type(client, admin, "installation", active=False)
    add_type(client, other_admin, "their-type")


@pytest.mark.parametrize("sent", BAD_TYPES.values(), ids=BAD_TYPES)
def test_a_create_with_an_unknown_or_inactive_type_is_422_and_stores_nothing(
    client, staff, desk_of_two_isps, assert_refused, sent
):
    body = new_ticket(staff, type=sent)

    assert_refused(lambda: call(client, staff, "POST", TICKETS, body), 422, "type")


@pytest.mark.parametrize("sent", BAD_TYPES.values(), ids=BAD_TYPES)
def test_an_update_to_an_unknown_or_inactive_type_is_422_and_changes_nothing(
    client, staff, desk_of_two_isps, assert_refused, sent
):
    ticket_id = create_ticket(client, staff, type="fault")
    url = ticket_url(ticket_id)

    assert_refused(lambda: call(client, staff, "PUT", url, {"type": sent}), 422, "type")


def test_a_type_change_is_recorded_in_the_history(client, admin, staff, fetch, rows):
    ticket_id = create_ticket(client, staff)

    response = call(client, staff, "PUT", ticket_url(ticket_id), {"type": "fault"})

    assert_success(response, 200, "Ticket updated successfully")
    assert fetch(Ticket, ticket_id)["type"] == "fault"
    assert shown(client, staff, ticket_id)["type"] == "fault"
    changes = [entry for entry in history_in_db(rows, ticket_id) if entry[1] == "type"]
    assert changes == [("updated", "type", "other", "fault", staff.id)]


def test_an_update_sending_the_current_type_records_no_change(client, staff, rows):
    ticket_id = create_ticket(client, staff, type="billing")
    before = history_in_db(rows, ticket_id)

    response = call(client, staff, "PUT", ticket_url(ticket_id), {"type": "billing"})

    assert_success(response, 200, "Ticket updated successfully")
    assert history_in_db(rows, ticket_id) == before


def test_an_update_may_send_the_tickets_type_again_after_it_was_deactivated(
    client, admin, staff, fetch, rows
):
    ticket_id = create_ticket(client, staff, type="installation")
    edit_type(client, admin, "installation", active=False)
    before = history_in_db(rows, ticket_id)

    body = {"type": "installation", "title": "Install moved to Friday"}
    response = call(client, staff, "PUT", ticket_url(ticket_id), body)

    assert_success(response, 200, "Ticket updated successfully")
    row = fetch(Ticket, ticket_id)
    assert (row["type"], row["title"]) == ("installation", "Install moved to Friday")
    added = history_in_db(rows, ticket_id)[len(before) :]
    assert added == [("updated", "title", "Slow", "Install moved to Friday", staff.id)]


def test_a_ticket_keeps_a_type_deactivated_after_it_was_made(client, admin, staff, fetch):
    ticket_id = create_ticket(client, staff, type="relocation")

    edit_type(client, admin, "relocation", active=False)

    assert fetch(Ticket, ticket_id)["type"] == "relocation"
    assert shown(client, staff, ticket_id)["type"] == "relocation"


# --- The list's type filter ---------------------------------------------------------------------


@pytest.fixture
def typed(client, admin, staff) -> dict:
    """Tickets of branch 1 by name: one per type, and a resolved fault."""
    add_type(client, admin, "fibre-install")
    made = {
        key: create_ticket(client, staff, type=key)
        for key in ["fault", "billing", "other", "fibre-install"]
    }
    made["resolved fault"] = create_ticket(client, staff, type="fault")
    assert_success(set_status(client, staff, made["resolved fault"], 2), 200)
    return made


TYPE_FILTERS = {
    "one": ({"type": "fault"}, ["fault", "resolved fault"]),
    "two": ({"type": "fault,billing"}, ["fault", "resolved fault", "billing"]),
    "one-twice": ({"type": "billing,fault,billing"}, ["fault", "resolved fault", "billing"]),
    "other": ({"type": "other"}, ["other"]),
    "the-isps-own": ({"type": "fibre-install"}, ["fibre-install"]),
    "none-of-it": ({"type": "relocation"}, []),
    "and-status": ({"type": "fault", "status": "0"}, ["fault"]),
    "two-and-status": ({"type": "fault,other", "status": "2"}, ["resolved fault"]),
}


@pytest.mark.parametrize(("params", "expected"), TYPE_FILTERS.values(), ids=TYPE_FILTERS)
def test_the_list_filters_by_a_comma_list_of_types(client, staff, typed, params, expected):
    body = assert_success(list_tickets(client, staff, **params), 200)

    assert sorted(ids(body)) == sorted(typed[name] for name in expected)
    assert body["meta"]["total"] == len(expected)
    assert {item["type"] for item in body["data"]} <= set(params["type"].split(","))


def test_the_type_filter_stays_within_the_callers_branch(client, staff, staff_branch2, typed):
    theirs = create_ticket(client, staff_branch2, type="fault")

    mine = ids(assert_success(list_tickets(client, staff, type="fault"), 200))
    seen = ids(assert_success(list_tickets(client, staff_branch2, type="fault"), 200))

    assert sorted(mine) == sorted([typed["fault"], typed["resolved fault"]])
    assert seen == [theirs]


@pytest.mark.parametrize(
    "value",
    ["Fault", "fault,", "fault billing", "a" * 41, "", "teleport", "fault,teleport", "their-type"],
)
def test_a_bad_type_filter_is_422_on_type(client, staff, typed, value):
    """Not a key, or a key the caller's catalogue never had (another ISP's is unknown here)."""
    assert_error(list_tickets(client, staff, type=value), 422, "type")


# --- Stats by type ------------------------------------------------------------------------------


def by_type(client, account, **query) -> dict:
    return assert_success(get(client, account, STATS, **query), 200)["data"]["by_type"]


def recount(rows, isp_id: int = 1, branch_id: int = 1) -> dict:
    """Live tickets of the branch per type, counted from the tickets table."""
    counted: dict[str, int] = {}
    for t in rows(Ticket):
        if (t["isp_id"], t["branch_id"], t["deleted_at"]) == (isp_id, branch_id, None):
            counted[t["type"]] = counted.get(t["type"], 0) + 1
    return counted


def test_stats_name_every_type_of_a_new_isps_catalogue_at_zero(client, staff):
    assert by_type(client, staff) == dict.fromkeys(DEFAULT_KEYS, 0)


def test_stats_count_each_type_of_the_catalogue_in_the_branch(
    client, admin, staff, staff_branch2, other_admin, rows
):
    add_type(client, admin, "fibre-install")
    edit_type(client, admin, "relocation", active=False)
    for key in ["fault", "fault", "billing", "other"]:
        create_ticket(client, staff, type=key)
    create_ticket(client, staff)
    create_ticket(client, staff_branch2, type="billing")  # another branch's
    create_ticket(client, other_admin, type="fault")  # another ISP's

    counts = by_type(client, staff)

    zero = dict.fromkeys([*DEFAULT_KEYS, "fibre-install"], 0)
    assert counts == {**zero, "fault": 2, "billing": 1, "other": 2}
    assert {key: n for key, n in counts.items() if n} == recount(rows)
    assert by_type(client, admin, branch_id=2) == {**zero, "billing": 1}
    assert by_type(client, other_admin) == {**dict.fromkeys(DEFAULT_KEYS, 0), "fault": 1}


def test_stats_by_type_follow_creates_type_changes_deletes_and_restores(client, admin, staff, rows):
    zero = dict.fromkeys(DEFAULT_KEYS, 0)
    fault = create_ticket(client, staff, type="fault")
    billing = create_ticket(client, staff, type="billing")
    assert by_type(client, staff) == {**zero, "fault": 1, "billing": 1}

    assert_success(call(client, staff, "PUT", ticket_url(billing), {"type": "fault"}), 200)
    assert by_type(client, staff) == {**zero, "fault": 2}

    assert_success(call(client, admin, "DELETE", ticket_url(fault)), 200)
    assert by_type(client, staff) == {**zero, "fault": 1}
    assert recount(rows) == {"fault": 1}

    assert_success(call(client, admin, "POST", ticket_url(fault, "/restore")), 200)
    assert by_type(client, staff) == {**zero, "fault": 2}
    assert recount(rows) == {"fault": 2}


# --- A type's default assignee -----------------------------------------------------------------


@pytest.fixture
def assigned_fault(client, admin, staff):
    """The fault type's default assignee is Staff One (branch 1)."""
    edit_type(client, admin, "fault", default_assignee_id=staff.id)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [({}, "staff"), ({"assignee_id": None}, None), ({"assignee_id": "admin"}, "admin")],
    ids=["absent-default", "null-unassigned", "named-wins"],
)
def test_the_default_assignee_applies_only_when_assignee_id_is_absent(
    client, admin, staff, assigned_fault, fetch, sent, expected
):
    people = {"staff": staff.id, "admin": admin.id, None: None}
    sent = {key: people[value] for key, value in sent.items()}

    ticket_id = create_ticket(client, admin, type="fault", **sent)

    assert fetch(Ticket, ticket_id)["assignee_id"] == people[expected]
    assert shown(client, admin, ticket_id)["assignee_id"] == people[expected]


def test_another_types_default_assignee_is_not_applied(client, admin, assigned_fault, fetch):
    ticket_id = create_ticket(client, admin, type="billing")

    assert fetch(Ticket, ticket_id)["assignee_id"] is None


def test_a_default_assignee_who_was_deactivated_leaves_the_ticket_unassigned(
    app, client, admin, staff, assigned_fault, fetch
):
    set_columns(app, User, staff.id, is_active=False)

    ticket_id = create_ticket(client, admin, type="fault")

    assert fetch(Ticket, ticket_id)["assignee_id"] is None


def test_a_default_assignee_who_does_not_reach_the_branch_leaves_it_unassigned(
    client, admin, staff, assigned_fault, fetch
):
    ticket_id = create_ticket(client, admin, type="fault", branch_id=2)

    row = fetch(Ticket, ticket_id)
    assert (row["branch_id"], row["assignee_id"]) == (2, None)


def test_an_admin_as_default_assignee_reaches_every_branch(client, admin, staff_branch2, fetch):
    edit_type(client, admin, "billing", default_assignee_id=admin.id)

    ticket_id = create_ticket(client, staff_branch2, type="billing")

    row = fetch(Ticket, ticket_id)
    assert (row["branch_id"], row["assignee_id"]) == (2, admin.id)


@pytest.mark.parametrize("type_sent", ["fault", None], ids=["fault", "no-type"])
def test_a_create_without_priority_is_422_whatever_the_types_default(
    client, staff, assigned_fault, assert_refused, type_sent
):
    body = without(new_ticket(staff), "priority")
    if type_sent is not None:
        body["type"] = type_sent

    assert_refused(lambda: call(client, staff, "POST", TICKETS, body), 422, "priority")


@pytest.mark.parametrize("priority", [1, 2])
def test_an_api_create_keeps_the_priority_sent_not_the_types_default(
    client, staff, fetch, priority
):
    ticket_id = create_ticket(client, staff, type="fault", priority=priority)  # fault's is 3

    assert fetch(Ticket, ticket_id)["priority"] == priority


# --- A storm's incident -------------------------------------------------------------------------


@pytest.fixture
def suggestion(client, admin, make_subscriber) -> tuple[int, list[int]]:
    """An open storm suggestion at service svc1 (five tickets of subscribers it serves, the
    default storm size; see test_storms.py), and its tickets."""
    for target, parent in [
        ("site/s1", None),
        ("service/svc1", {"kind": "site", "external_id": "s1"}),
    ]:
        body = {"name": f"The {target}", **({"parent": parent} if parent else {})}
        assert_success(call(client, admin, "PUT", f"/api/v1/network/{target}", body), 201)
    tickets = []
    for _ in range(5):
        subscriber_id = make_subscriber()
        served = {"network": [{"kind": "service", "external_id": "svc1"}]}
        response = call(client, admin, "PUT", f"{SUBSCRIBERS}/{subscriber_id}", served)
        assert_success(response, 200)
        tickets.append(create_ticket(client, admin, subscriber_id=subscriber_id, type="other"))
    [open_one] = assert_success(get(client, admin, SUGGESTIONS), 200)["data"]
    return open_one["id"], tickets


@pytest.mark.parametrize("fault_priority", [None, 1, 2], ids=["default", "low", "medium"])
def test_an_accepted_suggestion_opens_a_fault_at_faults_default_priority(
    client, admin, suggestion, fetch, fault_priority
):
    if fault_priority is not None:
        edit_type(client, admin, "fault", default_priority=fault_priority)
    suggestion_id, tickets = suggestion

    response = call(client, admin, "POST", f"{SUGGESTIONS}/{suggestion_id}/accept", {})

    incident_id = assert_success(response, 201, "Incident opened successfully")["data"]["id"]
    row = fetch(Ticket, incident_id)
    assert (row["kind"], row["type"], row["priority"]) == ("incident", "fault", fault_priority or 3)
    assert shown(client, admin, incident_id)["type"] == "fault"
    assert fetch(IncidentSuggestion, suggestion_id)["incident_id"] == incident_id
    assert {fetch(Ticket, t)["type"] for t in tickets} == {"other"}

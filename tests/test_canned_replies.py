"""Canned replies, /api/v1/canned-replies: saved answers of an ISP (its admins write them), of a
branch (its staff and the admins), or of one person; each caller sees only those and gets 404
for the rest. A body is a template in a narrow sandbox, checked when it is saved; a reply to a
ticket may name one (canned_reply_id, with its variables) instead of a message, and stores it
rendered with the ticket's, the subscriber's and the agent's fields. People only: API keys are
refused on these routes."""

from datetime import UTC, datetime

import pytest
from support.client import assert_error, assert_success, call, get, scope_of
from support.database import stamp
from support.urls import ticket_url

from tickets_service.models import KEY_SCOPES, CannedReply, Ticket, TicketHistory, TicketReply

CANNED = "/api/v1/canned-replies"
ANSWER_KEYS = ["id", "title", "body", "scope", "branch_id", "owner_id", "tags", "created_by"]
ANSWER_KEYS += ["created_at", "updated_at"]
GREETING = "Hello {{ subscriber.name }}, we are on it."


def canned_url(reply_id) -> str:
    return f"{CANNED}/{reply_id}"


def post(client, account, query=None, **body):
    """POST a canned reply: a branch one with a greeting, unless the body says otherwise."""
    sent = {"title": "Greeting", "body": GREETING, "scope": "branch", **body}
    return call(client, account, "POST", CANNED, sent, query)


def made(client, account, **body) -> dict:
    """A canned reply created through the API; its answer."""
    response = post(client, account, **body)
    return assert_success(response, 201, "Canned reply created successfully")["data"]


def titles(client, account, **query) -> list[str]:
    body = assert_success(get(client, account, CANNED, **query), 200)
    return [item["title"] for item in body["data"]]


def stored(rows, reply_id: int) -> dict:
    [row] = [row for row in rows(CannedReply) if row["id"] == reply_id]
    return row


# --- Create, read, update, delete ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "scope"),
    [("admin", "isp"), ("staff", "branch"), ("staff", "personal"), ("admin", "personal")],
)
def test_create_answers_201_with_the_reply_and_stores_it(request, client, rows, caller, scope):
    account = request.getfixturevalue(caller)
    body = {
        "title": "Outage apology",
        "body": GREETING,
        "scope": scope,
        "tags": ["outage", "sorry"],
    }

    data = made(client, account, **body)

    assert list(data) == ANSWER_KEYS
    [row] = rows(CannedReply)
    expected = {
        "id": row["id"],
        **body,
        "branch_id": account.branch_id if scope == "branch" else None,
        "owner_id": account.id if scope == "personal" else None,
        "created_by": account.id,
        "created_at": stamp(row["created_at"]),
        "updated_at": stamp(row["updated_at"]),
    }
    assert data == expected
    assert (row["isp_id"], row["scope"], row["title"], row["body"]) == (
        account.isp_id,
        scope,
        "Outage apology",
        GREETING,
    )
    assert (row["branch_id"], row["owner_id"], row["created_by_id"], row["tags"]) == (
        expected["branch_id"],
        expected["owner_id"],
        account.id,
        ["outage", "sorry"],
    )


@pytest.mark.parametrize("where", ["body", "query"])
def test_an_admin_makes_a_branch_reply_for_the_branch_it_names(client, admin, rows, where):
    named = {"branch_id": 2}
    response = post(client, admin, **named) if where == "body" else post(client, admin, named)

    data = assert_success(response, 201, "Canned reply created successfully")["data"]

    assert data["branch_id"] == 2
    assert [(row["scope"], row["branch_id"]) for row in rows(CannedReply)] == [("branch", 2)]


def test_get_answers_one_reply_as_it_was_created(client, staff):
    created = made(client, staff, tags=["greeting"])

    body = assert_success(get(client, staff, canned_url(created["id"])), 200)

    assert body["data"] == created


def test_the_list_is_in_title_order_a_page_at_a_time(client, admin, rows):
    for title in ("Refund", "Apology", "Visit", "Billing"):
        made(client, admin, title=title, scope="isp")

    first = assert_success(get(client, admin, CANNED, per_page=3), 200)
    second = assert_success(get(client, admin, CANNED, per_page=3, page=2), 200)

    shown = [item["title"] for item in first["data"] + second["data"]]
    assert shown == ["Apology", "Billing", "Refund", "Visit"]
    assert sorted(row["title"] for row in rows(CannedReply)) == shown
    assert first["meta"] == {"page": 1, "per_page": 3, "total": 4, "pages": 2}
    assert second["meta"] == {"page": 2, "per_page": 3, "total": 4, "pages": 2}


@pytest.mark.parametrize(
    "changes",
    [
        {"title": "Renamed"},
        {"body": "Dear {{ subscriber.name }}, fixed."},
        {"tags": ["fixed"]},
        {"tags": []},
        {"title": "All", "body": "Done.", "tags": ["a", "b"]},
    ],
    ids=["title", "body", "tags", "no tags", "everything"],
)
def test_update_changes_what_it_names_and_nothing_else(client, staff, rows, changes):
    created = made(client, staff, tags=["greeting"])
    before = stored(rows, created["id"])

    response = call(client, staff, "PUT", canned_url(created["id"]), changes)

    data = assert_success(response, 200, "Canned reply updated successfully")["data"]
    after = stored(rows, created["id"])
    assert {name: after[name] for name in changes} == changes
    unchanged = set(before) - set(changes) - {"updated_at"}
    assert {name: after[name] for name in unchanged} == {name: before[name] for name in unchanged}
    assert data == {**created, **changes, "updated_at": stamp(after["updated_at"])}


def test_delete_removes_it_and_replies_made_from_it_keep_their_text(
    client, staff, make_ticket, rows
):
    created = made(client, staff, body="We fixed it, {{ agent.name }}.")
    ticket_id = make_ticket(staff)
    sent = {**scope_of(staff), "canned_reply_id": created["id"]}
    assert_success(call(client, staff, "POST", ticket_url(ticket_id, "/reply"), sent), 201)

    response = call(client, staff, "DELETE", canned_url(created["id"]))

    assert_success(response, 200, "Canned reply deleted successfully")
    assert rows(CannedReply) == []
    assert [row["message"] for row in rows(TicketReply)] == ["We fixed it, Staff One."]
    assert_error(get(client, staff, canned_url(created["id"])), 404)


BAD_CREATES = {
    "no title": ({"title": None}, "title"),
    "empty title": ({"title": ""}, "title"),
    "title of two lines": ({"title": "One\nTwo"}, "title"),
    "no body": ({"body": None}, "body"),
    "empty body": ({"body": ""}, "body"),
    "body too long": ({"body": "a" * 10_001}, "body"),
    "no scope": ({"scope": None}, "scope"),
    "unknown scope": ({"scope": "world"}, "scope"),
    "tag not a slug": ({"tags": ["Not A Slug"]}, "tags.0"),
    "tag twice": ({"tags": ["a", "a"]}, "tags"),
    "tags not a list": ({"tags": "a"}, "tags"),
    "unknown field": ({"owner_id": 5}, "owner_id"),
}


@pytest.mark.parametrize("case", list(BAD_CREATES))
def test_a_bad_create_is_422_on_its_field_and_stores_nothing(client, admin, assert_refused, case):
    changes, field = BAD_CREATES[case]
    body = {"title": "Greeting", "body": GREETING, "scope": "isp", **changes}
    body = {name: value for name, value in body.items() if value is not None}

    assert_refused(lambda: call(client, admin, "POST", CANNED, body), 422, field)


BAD_UPDATES = {
    "nothing to change": ({}, None),
    "empty title": ({"title": ""}, "title"),
    "empty body": ({"body": ""}, "body"),
    "tag not a slug": ({"tags": ["UPPER"]}, "tags.0"),
    "scope is not changed": ({"scope": "isp"}, "scope"),
}


@pytest.mark.parametrize("case", list(BAD_UPDATES))
def test_a_bad_update_is_422_and_changes_nothing(client, staff, assert_refused, case):
    created = made(client, staff)
    changes, field = BAD_UPDATES[case]

    url = canned_url(created["id"])
    assert_refused(lambda: call(client, staff, "PUT", url, changes), 422, field)


def test_an_unknown_id_is_404(client, admin, assert_refused):
    made(client, admin)

    for method, body in (("GET", None), ("PUT", {"title": "X"}), ("DELETE", None)):
        assert_refused(lambda m=method, b=body: call(client, admin, m, canned_url(999999), b), 404)


# --- Who sees and changes which -----------------------------------------------------------------

# Each route a canned reply's id names, with a body that would change it.
BY_ID = [("GET", None), ("PUT", {"title": "Taken over"}), ("DELETE", None)]


def assert_out_of_sight(client, assert_refused, account, reply_id: int) -> None:
    """404 on each route that names it, nothing changed; absent from every list."""
    for method, body in BY_ID:
        url = canned_url(reply_id)
        assert_refused(lambda m=method, b=body, u=url: call(client, account, m, u, b), 404)
    listed = assert_success(get(client, account, CANNED), 200)
    assert reply_id not in [item["id"] for item in listed["data"]]
    assert listed["meta"]["total"] == len(listed["data"])


def test_staff_of_another_branch_never_see_a_branchs_reply(
    client, staff, staff_branch2, assert_refused, rows
):
    theirs = made(client, staff, title="Branch 1 only")["id"]
    made(client, staff_branch2, title="Branch 2's")

    assert_out_of_sight(client, assert_refused, staff_branch2, theirs)
    assert titles(client, staff_branch2) == ["Branch 2's"]
    assert titles(client, staff) == ["Branch 1 only"]
    assert len(rows(CannedReply)) == 2


def test_admins_and_the_branchs_staff_see_and_change_a_branch_reply(
    client, admin, staff, staff_branch2, make_user, rows
):
    first = made(client, staff, title="Branch 1's")["id"]
    second = made(client, staff_branch2, title="Branch 2's")["id"]
    colleague = make_user(branch_id=1)

    assert titles(client, admin) == ["Branch 1's", "Branch 2's"]
    assert titles(client, colleague) == ["Branch 1's"]
    for account, reply_id in ((colleague, first), (admin, second)):
        response = call(client, account, "PUT", canned_url(reply_id), {"title": "Edited"})
        assert_success(response, 200, "Canned reply updated successfully")
    assert [row["title"] for row in rows(CannedReply)] == ["Edited", "Edited"]


@pytest.mark.parametrize("viewer", ["colleague", "admin"])
def test_nobody_sees_another_users_personal_reply(
    request, client, staff, make_user, assert_refused, viewer
):
    mine = made(client, staff, title="My own", scope="personal")["id"]
    account = make_user(branch_id=1) if viewer == "colleague" else request.getfixturevalue(viewer)

    assert_out_of_sight(client, assert_refused, account, mine)
    assert titles(client, account) == []
    assert titles(client, staff) == ["My own"]


@pytest.mark.parametrize("viewer", ["other_admin", "other_staff"])
def test_another_isp_sees_none_of_an_isps_replies(
    request, client, admin, staff, assert_refused, viewer
):
    account = request.getfixturevalue(viewer)
    ids = [
        made(client, admin, title="The ISP's", scope="isp")["id"],
        made(client, staff, title="Branch 1's", scope="branch")["id"],
        made(client, admin, title="The admin's", scope="personal")["id"],
    ]

    for reply_id in ids:
        assert_out_of_sight(client, assert_refused, account, reply_id)
    assert titles(client, account) == []


def test_staff_use_the_isps_replies_but_cannot_create_or_change_them(
    client, admin, staff, assert_refused, rows
):
    isp_wide = made(client, admin, title="The ISP's", scope="isp")

    shown = assert_success(get(client, staff, canned_url(isp_wide["id"])), 200)["data"]
    assert shown == isp_wide
    assert_refused(lambda: post(client, staff, scope="isp"), 403)
    url = canned_url(isp_wide["id"])
    assert_refused(lambda: call(client, staff, "PUT", url, {"title": "Mine now"}), 403)
    assert_refused(lambda: call(client, staff, "DELETE", url), 403)
    assert [row["id"] for row in rows(CannedReply)] == [isp_wide["id"]]


@pytest.mark.parametrize("where", ["body", "query"])
def test_staff_naming_another_branch_is_403_and_stores_nothing(
    client, staff, assert_refused, where
):
    named = {"branch_id": 2}

    def request():
        return post(client, staff, **named) if where == "body" else post(client, staff, named)

    assert_refused(request, 403)


# --- Search -------------------------------------------------------------------------------------

LIBRARY = [
    ("Outage apology", "We are sorry: the fibre is cut.", "isp", ["outage"]),
    ("Visit booked", "A technician comes on {{ day }}.", "branch", ["visit", "fibre"]),
    ("Refund", "100% of the month is refunded.", "isp", ["billing"]),
    ("Router restart", "Please restart your router_box.", "personal", []),
]
SEARCHES = {
    "q in a title": ({"q": "apology"}, ["Outage apology"]),
    "q in a body": ({"q": "technician"}, ["Visit booked"]),
    "q in any case": ({"q": "FIBRE"}, ["Outage apology"]),
    "q with %, literally": ({"q": "100%"}, ["Refund"]),
    "q with % that is not there": ({"q": "o%y"}, []),
    "q with _ that is not there": ({"q": "st_rt"}, []),
    "q with _ that is there": ({"q": "router_box"}, ["Router restart"]),
    "q that finds nothing": ({"q": "modem"}, []),
    "tag": ({"tag": "fibre"}, ["Visit booked"]),
    "another tag": ({"tag": "billing"}, ["Refund"]),
    "a tag nobody has": ({"tag": "fib"}, []),
    "q and tag": ({"q": "comes", "tag": "visit"}, ["Visit booked"]),
    "q and another tag": ({"q": "comes", "tag": "outage"}, []),
    "scope": ({"scope": "isp"}, ["Outage apology", "Refund"]),
    "personal scope": ({"scope": "personal"}, ["Router restart"]),
}


@pytest.mark.parametrize("case", list(SEARCHES))
def test_q_tag_and_scope_find_the_replies_that_match(client, admin, case):
    for title, body, scope, tags in LIBRARY:
        made(client, admin, title=title, body=body, scope=scope, tags=tags)
    query, expected = SEARCHES[case]

    assert titles(client, admin, **query) == expected


@pytest.mark.parametrize("query", [{"tag": "Not a slug"}, {"scope": "world"}, {"q": ""}])
def test_a_bad_search_is_422(client, admin, query):
    made(client, admin)

    assert_error(get(client, admin, CANNED, **query), 422, next(iter(query)))


# --- The sandbox --------------------------------------------------------------------------------

# A body a canned reply may not hold, and what the refusal names.
HOSTILE = {
    "dunder attribute": ("{{ ticket.__class__ }}", ["line 1", "__class__"]),
    "class walk": ("{{ ''.__class__.__mro__ }}", ["line 1", "__"]),
    "for loop": ("{% for x in ticket.title %}{% endfor %}", ["line 1", "for"]),
    "call": ("{{ range(10) }}", ["line 1", "call"]),
    "power": ("{{ 9**9 }}", ["line 1", "pow"]),
    "text times n": ("{{ 'a' * 100 }}", ["line 1", "mul"]),
    "set": ("{% set x = 1 %}", ["line 1", "assign"]),
    "include": ("{% include 'x' %}", ["line 1", "include"]),
    "macro": ("{% macro m() %}{% endmacro %}", ["line 1", "macro"]),
    "format operator": ('{{ "%s" % 1 }}', ["line 1", "mod"]),
    "unclosed": ("Hello {{ subscriber.name", ["line 1"]),
    "global call": ("{{ lipsum() }}", ["line 1", "call"]),
    "global": ("{{ cycler }}", ["cycler"]),
    "on a later line": ("Dear {{ subscriber.name }},\n\n{{ range(3) }}", ["line 3", "call"]),
    "import": ("{% import 'x' as y %}", ["line 1", "import"]),
    "extends": ("{% extends 'x' %}", ["line 1", "extends"]),
    # Filters and tests the sandbox does not offer (attr is the classic way out of it).
    "attr filter": ("{{ ticket | attr('__class__') }}", ["line 1", "attr"]),
    "format filter": ("{{ '%s' | format(ticket) }}", ["line 1", "format"]),
    "unknown test": ("{{ ticket is sameas ticket }}", ["line 1", "sameas"]),
    "division by zero": ("{{ ticket.id // 0 }}", []),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_body_is_422_at_create_naming_the_problem(client, admin, assert_refused, case):
    body, named = HOSTILE[case]

    response = assert_refused(lambda: post(client, admin, body=body), 422, "body")

    [message] = response.get_json()["errors"]["body"]
    assert all(part in message for part in named), message


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_body_is_422_at_update_and_the_reply_stays(
    client, admin, assert_refused, rows, case
):
    created = made(client, admin)
    body, named = HOSTILE[case]

    url = canned_url(created["id"])
    response = assert_refused(lambda: call(client, admin, "PUT", url, {"body": body}), 422, "body")

    [message] = response.get_json()["errors"]["body"]
    assert all(part in message for part in named), message
    assert stored(rows, created["id"])["body"] == GREETING


ALLOWED = {
    "plain text": "Thank you for your patience.",
    "fields and filters": "{{ subscriber.name | upper }}, ticket {{ ticket.id }}: {{ agent.name }}",
    "a condition": "{% if ticket.due_at %}Due {{ ticket.due_at }}.{% else %}Soon.{% endif %}",
    "a default": "Visit on {{ day | default('Monday') }}.",
    "the reply's own variable": "A technician comes on {{ day }}.",
    "a comment": "{# for staff #}Hello.",
    "an initial": "Dear {{ subscriber.name[0] }}.",
    "a variable as a number": "{{ count | int }} visits booked.",
}


@pytest.mark.parametrize("case", list(ALLOWED))
def test_a_body_within_the_sandbox_is_saved(client, staff, rows, case):
    data = made(client, staff, body=ALLOWED[case])

    assert data["body"] == stored(rows, data["id"])["body"] == ALLOWED[case]


# --- Replying with a canned reply ---------------------------------------------------------------


def reply_with(client, account, ticket_id: int, **body):
    sent = {**scope_of(account), **body}
    return call(client, account, "POST", ticket_url(ticket_id, "/reply"), sent)


@pytest.fixture
def subscribers_ticket(make_subscriber, make_ticket, staff) -> int:
    """A ticket of branch 1 from a subscriber with a name, a phone and an email, due by a set
    time; its id."""
    subscriber_id = make_subscriber(
        name="Jane Roe", phone="+254700000001", email="jane@example.test"
    )
    due = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    return make_ticket(staff, subscriber_id=subscriber_id, priority=3, due_at=due)


FULL = (
    "Dear {{ subscriber.name }} ({{ subscriber.phone }}, {{ subscriber.email }}),\n"
    'ticket #{{ ticket.id }} "{{ ticket.title }}" ({{ ticket.description | lower }}) is '
    "{{ ticket.status_name | lower }} ({{ ticket.status }}), {{ ticket.priority_name }} "
    "priority ({{ ticket.priority }}), type {{ ticket.type }}, opened {{ ticket.created_at }}, "
    "due {{ ticket.due_at }}.\nA technician comes on {{ day }} at {{ hour }}.\n{{ agent.name }}"
)


def test_a_reply_from_a_canned_reply_stores_it_rendered(
    client, staff, subscribers_ticket, fetch, rows
):
    canned = made(client, staff, body=FULL)
    ticket = fetch(Ticket, subscribers_ticket)

    response = reply_with(
        client,
        staff,
        subscribers_ticket,
        canned_reply_id=canned["id"],
        variables={"day": "Tuesday", "hour": "10:00"},
    )

    assert response.status_code == 201
    assert response.get_json() == {"success": True, "message": "Reply added successfully"}
    [reply] = rows(TicketReply)
    assert (reply["ticket_id"], reply["user_id"], reply["internal"]) == (
        subscribers_ticket,
        staff.id,
        False,
    )
    assert reply["message"] == (
        "Dear Jane Roe (+254700000001, jane@example.test),\n"
        f'ticket #{subscribers_ticket} "Connection Issue" (cannot connect to internet) is '
        "open (0), High priority (3), type other, "
        f"opened {stamp(ticket['created_at'])}, due 2031-01-02 03:04:05.\n"
        "A technician comes on Tuesday at 10:00.\nStaff One"
    )
    assert staff.name == "Staff One"
    assert fetch(Ticket, subscribers_ticket)["first_response_at"] is not None
    assert [row["action"] for row in rows(TicketHistory)] == ["created", "replied"]
    assert stored(rows, canned["id"])["body"] == FULL  # the template stays a template


def test_a_canned_reply_as_an_internal_note_is_stored_rendered_as_a_note(
    client, staff, subscribers_ticket, fetch, rows
):
    canned = made(client, staff, body="Called {{ subscriber.phone }}, no answer.")

    response = reply_with(
        client, staff, subscribers_ticket, canned_reply_id=canned["id"], internal=True
    )

    assert_success(response, 201, "Reply added successfully")
    [reply] = rows(TicketReply)
    assert (reply["message"], reply["internal"]) == ("Called +254700000001, no answer.", True)
    assert fetch(Ticket, subscribers_ticket)["first_response_at"] is None


@pytest.mark.parametrize(
    "variables",
    [None, {}, {"hour": "10:00"}, {"Day": "Tuesday"}],
    ids=["none", "empty", "another one", "another case"],
)
def test_a_variable_the_canned_reply_needs_and_is_not_given_is_422_on_variables(
    client, staff, subscribers_ticket, assert_refused, variables
):
    canned = made(client, staff, body="A technician comes on {{ day }}.")
    body = {"canned_reply_id": canned["id"]}
    if variables is not None:
        body["variables"] = variables

    assert_refused(lambda: reply_with(client, staff, subscribers_ticket, **body), 422, "variables")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "Hello", "canned_reply_id": "CANNED"}, None),
        ({"message": "Hello", "variables": {"day": "Tuesday"}}, "variables"),
        ({"variables": {"day": "Tuesday"}}, None),
        ({}, None),
        ({"canned_reply_id": "CANNED", "variables": {"day": 5}}, "variables.day.value"),
        ({"canned_reply_id": "CANNED", "variables": ["Tuesday"]}, "variables"),
        ({"canned_reply_id": "x"}, "canned_reply_id"),
    ],
    ids=[
        "message and canned reply",
        "variables with a message",
        "variables alone",
        "neither",
        "a variable not text",
        "variables not an object",
        "id not a number",
    ],
)
def test_a_reply_body_that_mixes_or_lacks_message_and_canned_reply_is_422(
    client, staff, subscribers_ticket, assert_refused, body, field
):
    canned = made(client, staff, body="A technician comes on {{ day }}.")
    body = {name: canned["id"] if value == "CANNED" else value for name, value in body.items()}

    assert_refused(lambda: reply_with(client, staff, subscribers_ticket, **body), 422, field)


# A body saved as sound that cannot be rendered with what a reply gives: (body, variables).
UNRENDERABLE = {
    "a letter past the end": ("Code {{ code[5] }}.", {"code": "AB"}),
    "too long a message": (
        "".join(f"{{{{ v{n} }}}}" for n in range(11)),
        {f"v{n}": "x" * 1000 for n in range(11)},
    ),
}


@pytest.mark.parametrize("case", list(UNRENDERABLE))
def test_a_canned_reply_that_cannot_be_rendered_is_422_and_no_reply_is_stored(
    client, staff, make_ticket, assert_refused, case
):
    body, variables = UNRENDERABLE[case]
    canned_id = made(client, staff, body=body)["id"]
    ticket_id = make_ticket(staff)

    def request():
        return reply_with(client, staff, ticket_id, canned_reply_id=canned_id, variables=variables)

    response = assert_refused(request, 422)
    assert set(response.get_json()["errors"]) <= {"canned_reply_id", "variables"}


@pytest.mark.parametrize(
    "whose",
    ["another branch's", "a colleague's personal", "another isp's", "none at all"],
)
def test_a_canned_reply_the_caller_cannot_see_is_422_and_no_reply_is_stored(
    client, staff, staff_branch2, make_user, other_admin, make_ticket, assert_refused, whose
):
    if whose == "another branch's":
        canned_id = made(client, staff_branch2, title="Branch 2's")["id"]
    elif whose == "a colleague's personal":
        canned_id = made(client, make_user(branch_id=1), scope="personal")["id"]
    elif whose == "another isp's":
        canned_id = made(client, other_admin, scope="isp")["id"]
    else:
        canned_id = 999999
    ticket_id = make_ticket(staff)

    def request():
        return reply_with(client, staff, ticket_id, canned_reply_id=canned_id)

    assert_refused(request, 422, "canned_reply_id")


# --- API keys -----------------------------------------------------------------------------------

KEY_REQUESTS = {
    "list": ("GET", CANNED, None),
    "get": ("GET", "ID", None),
    "create": ("POST", CANNED, {"title": "Key's", "body": "Hello.", "scope": "isp"}),
    "update": ("PUT", "ID", {"title": "Key's"}),
    "delete": ("DELETE", "ID", None),
}


@pytest.mark.parametrize("case", list(KEY_REQUESTS))
def test_an_api_key_cannot_use_the_canned_replies_routes(client, admin, make_key, snapshot, case):
    reply_id = made(client, admin, scope="isp")["id"]
    key = make_key(admin, KEY_SCOPES)
    method, url, body = KEY_REQUESTS[case]
    before = snapshot()

    response = call(client, key, method, canned_url(reply_id) if url == "ID" else url, body)

    assert response.status_code in (401, 403)
    assert_error(response, response.status_code)
    assert snapshot() == before

"""Issue 2, points 3-5: every bad body, query string, route, id or size is refused with the
error envelope and the right status code, and leaves the database exactly as it was."""

import json

import pytest

from tickets_service.extensions import db
from tickets_service.models import Subscriber, Ticket, TicketReply

from conftest import assert_error, scope_of

MISSING = object()  # in a table of changes: drop this key from the valid body

# The endpoints that take a body; "{id}" is a live ticket of the caller.
ENDPOINTS = {
    "create": ("POST", "/api/v1/tickets"),
    "update": ("PUT", "/api/v1/tickets/{id}"),
    "reply": ("POST", "/api/v1/tickets/{id}/reply"),
    "status": ("PUT", "/api/v1/tickets/{id}/status"),
}
SUCCESS_STATUS = {"create": 201, "update": 200, "reply": 201, "status": 200}
SENDS_SCOPE = {"create", "reply", "status"}  # as in the spec's request examples
VALID_FIELDS = {
    "create": {"title": "Connection Issue", "description": "Cannot connect", "priority": 2},
    "update": {"title": "Updated Title"},
    "reply": {"message": "We are looking into this issue."},
    "status": {"status": 2},
}

# Every endpoint that addresses one ticket, with a body it would accept.
PER_TICKET = [
    ("GET", "/api/v1/tickets/{id}", None),
    ("PUT", "/api/v1/tickets/{id}", {"title": "Updated Title"}),
    ("DELETE", "/api/v1/tickets/{id}", None),
    ("POST", "/api/v1/tickets/{id}/reply", {"message": "We are looking into this issue."}),
    ("PUT", "/api/v1/tickets/{id}/status", {"status": 2}),
]


@pytest.fixture
def ticket_id(admin, make_ticket):
    return make_ticket(admin)


@pytest.fixture
def valid_body(admin):
    """valid_body(endpoint, changes) -> a body the endpoint accepts, with `changes` applied."""

    def build(endpoint: str, changes: dict | None = None) -> dict:
        body = dict(scope_of(admin)) if endpoint in SENDS_SCOPE else {}
        body.update(VALID_FIELDS[endpoint])
        body.update(changes or {})
        return {key: value for key, value in body.items() if value is not MISSING}

    return build


@pytest.fixture
def send(client, admin, ticket_id):
    """send(endpoint, body) as the admin; `data` sends raw bytes instead of JSON."""

    def request(endpoint, body=None, *, data=None, content_type="application/json", to=client):
        method, path = ENDPOINTS[endpoint]
        payload = json.dumps(body) if data is None else data
        return to.open(
            path.format(id=ticket_id),
            method=method,
            data=payload,
            content_type=content_type,
            headers=admin.headers,
        )

    return request


@pytest.fixture
def stored(fetch, rows, ticket_id):
    """stored(endpoint, response) -> the row the accepted request wrote."""

    def read(endpoint, response):
        if endpoint == "create":
            return fetch(Ticket, response.get_json()["data"]["id"])
        if endpoint == "reply":
            (reply,) = rows(TicketReply)
            return reply
        return fetch(Ticket, ticket_id)

    return read


def padded(body: dict, size: int) -> bytes:
    """The body as JSON, grown to `size` bytes with insignificant whitespace."""
    text = json.dumps(body)
    return (text[:-1] + " " * (size - len(text)) + "}").encode()


# --- Point 5: field rules --------------------------------------------------------------------

SCOPE_FIELD_CASES = [
    pytest.param({"isp_id": "1"}, "isp_id", id="isp_id-string"),
    pytest.param({"isp_id": None}, "isp_id", id="isp_id-null"),
    pytest.param({"isp_id": 1.5}, "isp_id", id="isp_id-float"),
    pytest.param({"branch_id": True}, "branch_id", id="branch_id-true"),
    pytest.param({"branch_id": [1]}, "branch_id", id="branch_id-list"),
    pytest.param({"user_id": "me"}, "user_id", id="user_id-word"),
    pytest.param({"user_id": 10**20}, "user_id", id="user_id-beyond-column"),
    pytest.param({"unexpected": 1}, "unexpected", id="unknown-field"),
    pytest.param({"id": 5}, "id", id="unknown-field-id"),
]

BAD_FIELDS = [
    # (endpoint, changes, field named in errors)
    *[
        pytest.param(endpoint, *case.values, id=f"{endpoint}-{case.id}")
        for endpoint in ENDPOINTS
        for case in SCOPE_FIELD_CASES
    ],
    pytest.param("create", {"title": MISSING}, "title", id="create-title-missing"),
    pytest.param("create", {"title": None}, "title", id="create-title-null"),
    pytest.param("create", {"title": ""}, "title", id="create-title-empty"),
    pytest.param("create", {"title": "   "}, "title", id="create-title-blank"),
    pytest.param("create", {"title": "x" * 256}, "title", id="create-title-256"),
    pytest.param("create", {"title": 5}, "title", id="create-title-number"),
    pytest.param("create", {"title": "Conn\x00ection"}, "title", id="create-title-nul"),
    pytest.param("create", {"description": MISSING}, "description", id="create-desc-missing"),
    pytest.param("create", {"description": None}, "description", id="create-desc-null"),
    pytest.param("create", {"description": ""}, "description", id="create-desc-empty"),
    pytest.param("create", {"description": "x" * 10_001}, "description", id="create-desc-10001"),
    pytest.param("create", {"description": ["a"]}, "description", id="create-desc-list"),
    pytest.param("create", {"description": "a\x00b"}, "description", id="create-desc-nul"),
    pytest.param("create", {"priority": MISSING}, "priority", id="create-priority-missing"),
    pytest.param("create", {"priority": None}, "priority", id="create-priority-null"),
    pytest.param("create", {"priority": 0}, "priority", id="create-priority-0"),
    pytest.param("create", {"priority": 4}, "priority", id="create-priority-4"),
    pytest.param("create", {"priority": -1}, "priority", id="create-priority-negative"),
    pytest.param("create", {"priority": "2"}, "priority", id="create-priority-string"),
    pytest.param("create", {"priority": 2.5}, "priority", id="create-priority-float"),
    pytest.param("create", {"priority": True}, "priority", id="create-priority-true"),
    pytest.param("create", {"subscriber_id": "1"}, "subscriber_id", id="create-sub-string"),
    pytest.param("create", {"subscriber_id": 1.5}, "subscriber_id", id="create-sub-float"),
    pytest.param("create", {"subscriber_id": True}, "subscriber_id", id="create-sub-true"),
    pytest.param("create", {"subscriber_id": 0}, "subscriber_id", id="create-sub-zero"),
    pytest.param("create", {"subscriber_id": 2**31}, "subscriber_id", id="create-sub-2e31"),
    pytest.param("update", {"title": None}, "title", id="update-title-null"),
    pytest.param("update", {"title": ""}, "title", id="update-title-empty"),
    pytest.param("update", {"title": "   "}, "title", id="update-title-blank"),
    pytest.param("update", {"title": "x" * 256}, "title", id="update-title-256"),
    pytest.param("update", {"title": 5}, "title", id="update-title-number"),
    pytest.param("update", {"title": "Conn\x00ection"}, "title", id="update-title-nul"),
    pytest.param("update", {"description": None}, "description", id="update-desc-null"),
    pytest.param("update", {"description": ""}, "description", id="update-desc-empty"),
    pytest.param("update", {"description": "x" * 10_001}, "description", id="update-desc-10001"),
    pytest.param("update", {"description": "a\x00b"}, "description", id="update-desc-nul"),
    pytest.param("update", {"priority": None}, "priority", id="update-priority-null"),
    pytest.param("update", {"priority": 0}, "priority", id="update-priority-0"),
    pytest.param("update", {"priority": 4}, "priority", id="update-priority-4"),
    pytest.param("update", {"priority": "3"}, "priority", id="update-priority-string"),
    pytest.param("update", {"priority": 2.5}, "priority", id="update-priority-float"),
    pytest.param("update", {"priority": True}, "priority", id="update-priority-true"),
    pytest.param("update", {"subscriber_id": "1"}, "subscriber_id", id="update-sub-string"),
    pytest.param("update", {"subscriber_id": 2.5}, "subscriber_id", id="update-sub-float"),
    pytest.param("update", {"subscriber_id": False}, "subscriber_id", id="update-sub-false"),
    pytest.param("update", {"subscriber_id": 10**20}, "subscriber_id", id="update-sub-huge"),
    pytest.param("reply", {"message": MISSING}, "message", id="reply-message-missing"),
    pytest.param("reply", {"message": None}, "message", id="reply-message-null"),
    pytest.param("reply", {"message": ""}, "message", id="reply-message-empty"),
    pytest.param("reply", {"message": "   "}, "message", id="reply-message-blank"),
    pytest.param("reply", {"message": "x" * 10_001}, "message", id="reply-message-10001"),
    pytest.param("reply", {"message": 42}, "message", id="reply-message-number"),
    pytest.param("reply", {"message": "on\x00it"}, "message", id="reply-message-nul"),
    pytest.param("status", {"status": MISSING}, "status", id="status-missing"),
    pytest.param("status", {"status": None}, "status", id="status-null"),
    pytest.param("status", {"status": -1}, "status", id="status-negative"),
    pytest.param("status", {"status": 4}, "status", id="status-4"),
    pytest.param("status", {"status": "2"}, "status", id="status-string"),
    pytest.param("status", {"status": "Resolved"}, "status", id="status-name"),
    pytest.param("status", {"status": 2.5}, "status", id="status-float"),
    pytest.param("status", {"status": True}, "status", id="status-true"),
]


@pytest.mark.parametrize(("endpoint", "changes", "field"), BAD_FIELDS)
def test_invalid_field_is_422(send, valid_body, snapshot, endpoint, changes, field):
    before = snapshot()
    response = send(endpoint, valid_body(endpoint, changes))
    assert_error(response, 422, field)
    assert snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty-object"),
        pytest.param({"isp_id": 1, "branch_id": 1}, id="scope-only"),
        pytest.param({"status": 2}, id="status-is-not-an-update-field"),
    ],
)
def test_update_without_any_ticket_field_is_422(send, admin, snapshot, body):
    if "isp_id" in body:
        body = {**body, "user_id": admin.id}
    before = snapshot()
    response = send("update", body)
    assert_error(response, 422)
    assert snapshot() == before


@pytest.fixture
def subscriber_elsewhere(app, make_subscriber):
    """subscriber_elsewhere(where) -> an id the admin's branch-1 ticket may not link to."""

    def make(where: str) -> int:
        if where == "other-isp":
            return make_subscriber(isp_id=2, branch_id=1)
        if where == "other-branch":
            return make_subscriber(isp_id=1, branch_id=2)
        subscriber_id = make_subscriber(isp_id=1, branch_id=1)  # "unknown": made, then gone
        with app.app_context():
            db.session.delete(db.session.get(Subscriber, subscriber_id))
            db.session.commit()
            db.session.remove()
        return subscriber_id

    return make


@pytest.mark.parametrize("where", ["unknown", "other-isp", "other-branch"])
@pytest.mark.parametrize("endpoint", ["create", "update"])
def test_subscriber_outside_the_tickets_isp_and_branch_is_422(
    send, valid_body, snapshot, subscriber_elsewhere, endpoint, where
):
    subscriber_id = subscriber_elsewhere(where)
    before = snapshot()
    response = send(endpoint, valid_body(endpoint, {"subscriber_id": subscriber_id}))
    assert_error(response, 422, "subscriber_id")
    assert snapshot() == before


ACCEPTED = [
    # (endpoint, changes, column, value stored)
    pytest.param("create", {"title": "x" * 255}, "title", "x" * 255, id="create-title-255"),
    pytest.param("create", {"title": "x"}, "title", "x", id="create-title-1"),
    pytest.param(
        "create", {"title": "  " + "x" * 255 + " "}, "title", "x" * 255, id="create-title-trimmed"
    ),
    pytest.param(
        "create", {"description": "d" * 10_000}, "description", "d" * 10_000, id="create-desc-max"
    ),
    pytest.param("create", {"priority": 1}, "priority", 1, id="create-priority-1"),
    pytest.param("create", {"priority": 3}, "priority", 3, id="create-priority-3"),
    pytest.param("create", {"subscriber_id": None}, "subscriber_id", None, id="create-sub-null"),
    pytest.param("update", {"title": "x" * 255}, "title", "x" * 255, id="update-title-255"),
    pytest.param(
        "update", {"title": "\t" + "x" * 255 + " "}, "title", "x" * 255, id="update-title-trimmed"
    ),
    pytest.param(
        "update", {"description": "d" * 10_000}, "description", "d" * 10_000, id="update-desc-max"
    ),
    pytest.param("update", {"priority": 3}, "priority", 3, id="update-priority-3"),
    pytest.param("reply", {"message": "m" * 10_000}, "message", "m" * 10_000, id="reply-max"),
    pytest.param("reply", {"message": "m"}, "message", "m", id="reply-1"),
    pytest.param("status", {"status": 0}, "status", 0, id="status-0"),
    pytest.param("status", {"status": 3}, "status", 3, id="status-3"),
]


@pytest.mark.parametrize(("endpoint", "changes", "column", "value"), ACCEPTED)
def test_value_at_the_edge_of_its_range_is_accepted(
    send, valid_body, stored, endpoint, changes, column, value
):
    response = send(endpoint, valid_body(endpoint, changes))
    assert response.status_code == SUCCESS_STATUS[endpoint]
    assert response.get_json()["success"] is True
    assert stored(endpoint, response)[column] == value


@pytest.mark.parametrize("endpoint", ["create", "update"])
def test_subscriber_of_the_tickets_branch_is_accepted(
    send, valid_body, stored, make_subscriber, endpoint
):
    subscriber_id = make_subscriber(isp_id=1, branch_id=1)
    response = send(endpoint, valid_body(endpoint, {"subscriber_id": subscriber_id}))
    assert response.status_code == SUCCESS_STATUS[endpoint]
    assert stored(endpoint, response)["subscriber_id"] == subscriber_id


def test_update_with_null_subscriber_unlinks_it(client, admin, make_subscriber, make_ticket, fetch):
    subscriber_id = make_subscriber(isp_id=1, branch_id=1)
    ticket_id = make_ticket(admin, subscriber_id=subscriber_id)
    response = client.put(
        f"/api/v1/tickets/{ticket_id}", json={"subscriber_id": None}, headers=admin.headers
    )
    assert response.status_code == 200
    assert fetch(Ticket, ticket_id)["subscriber_id"] is None


# --- Point 5: the list's query string --------------------------------------------------------

BAD_LIST_QUERIES = [
    # (changes to the admin's valid query, field named in errors)
    pytest.param({"isp_id": MISSING}, "isp_id", id="isp_id-missing"),
    pytest.param({"branch_id": MISSING}, "branch_id", id="branch_id-missing"),
    pytest.param({"user_id": MISSING}, "user_id", id="user_id-missing"),
    pytest.param({"isp_id": "abc"}, "isp_id", id="isp_id-word"),
    pytest.param({"isp_id": ""}, "isp_id", id="isp_id-empty"),
    pytest.param({"isp_id": "1.5"}, "isp_id", id="isp_id-decimal"),
    pytest.param({"isp_id": "true"}, "isp_id", id="isp_id-true"),
    pytest.param({"isp_id": str(2**31)}, "isp_id", id="isp_id-2e31"),
    pytest.param({"branch_id": "1e3"}, "branch_id", id="branch_id-exponent"),
    pytest.param({"branch_id": str(10**20)}, "branch_id", id="branch_id-1e20"),
    pytest.param({"user_id": "null"}, "user_id", id="user_id-null-word"),
    pytest.param({"user_id": "0x1"}, "user_id", id="user_id-hex"),
    pytest.param({"status": "4"}, "status", id="status-4"),
    pytest.param({"status": "-1"}, "status", id="status-negative"),
    pytest.param({"status": "open"}, "status", id="status-word"),
    pytest.param({"status": "1.0"}, "status", id="status-decimal"),
    pytest.param({"priority": "0"}, "priority", id="priority-0"),
    pytest.param({"priority": "4"}, "priority", id="priority-4"),
    pytest.param({"priority": "high"}, "priority", id="priority-word"),
    pytest.param({"page": "0"}, "page", id="page-0"),
    pytest.param({"page": "-1"}, "page", id="page-negative"),
    pytest.param({"page": "first"}, "page", id="page-word"),
    pytest.param({"per_page": "0"}, "per_page", id="per_page-0"),
    pytest.param({"per_page": "201"}, "per_page", id="per_page-201"),
    pytest.param({"per_page": "all"}, "per_page", id="per_page-word"),
]


def list_query(admin, changes: dict) -> dict:
    query = {key: str(value) for key, value in scope_of(admin).items()}
    query.update(changes)
    return {key: value for key, value in query.items() if value is not MISSING}


@pytest.mark.parametrize(("changes", "field"), BAD_LIST_QUERIES)
def test_invalid_list_query_is_422(client, admin, ticket_id, snapshot, changes, field):
    before = snapshot()
    response = client.get(
        "/api/v1/tickets", query_string=list_query(admin, changes), headers=admin.headers
    )
    assert_error(response, 422, field)
    assert snapshot() == before


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="scope-only"),
        pytest.param({"status": "0", "priority": "2"}, id="filters"),
        pytest.param({"page": "1", "per_page": "200"}, id="per_page-200"),
        pytest.param({"per_page": "1"}, id="per_page-1"),
    ],
)
def test_valid_list_query_is_accepted(client, admin, ticket_id, changes):
    response = client.get(
        "/api/v1/tickets", query_string=list_query(admin, changes), headers=admin.headers
    )
    assert response.status_code == 200
    assert [ticket["id"] for ticket in response.get_json()["data"]] == [ticket_id]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [pytest.param(*endpoint, id=f"{endpoint[0]} {endpoint[1]}") for endpoint in PER_TICKET],
)
@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"isp_id": "abc"}, id="isp_id-word"),
        pytest.param({"branch_id": "1.5"}, id="branch_id-decimal"),
        pytest.param({"user_id": str(10**20)}, id="user_id-1e20"),
    ],
)
def test_invalid_scope_in_a_per_ticket_query_is_422(
    client, admin, ticket_id, snapshot, method, path, body, query
):
    before = snapshot()
    response = client.open(
        path.format(id=ticket_id),
        method=method,
        json=body,
        query_string=query,
        headers=admin.headers,
    )
    assert_error(response, 422, next(iter(query)))
    assert snapshot() == before


# --- Point 4: bodies that are not a JSON object ----------------------------------------------

NOT_JSON = [
    pytest.param(b"", id="empty"),
    pytest.param(b"{not json}", id="garbage"),
    pytest.param(b'{"title": "Connection Issue"', id="truncated"),
    pytest.param(b"{'title': 'single quotes'}", id="single-quotes"),
    pytest.param(b'{"title": "\xff\xfe"}', id="bad-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="absurd-nesting"),
]
NOT_AN_OBJECT = [
    pytest.param(b"[]", id="empty-list"),
    pytest.param(b'[{"title": "Connection Issue"}]', id="list-of-object"),
    pytest.param(b'"Connection Issue"', id="string"),
    pytest.param(b"42", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="true"),
]


@pytest.mark.parametrize("data", NOT_JSON + NOT_AN_OBJECT)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_that_is_not_a_json_object_is_400(send, snapshot, endpoint, data):
    before = snapshot()
    response = send(endpoint, data=data)
    assert_error(response, 400)
    assert snapshot() == before


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param(None, id="no-content-type"),
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_json_object_is_parsed_whatever_the_content_type(
    send, valid_body, stored, endpoint, content_type
):
    body = valid_body(endpoint)
    response = send(endpoint, data=json.dumps(body).encode(), content_type=content_type)
    assert response.status_code == SUCCESS_STATUS[endpoint]
    assert response.get_json()["success"] is True
    row = stored(endpoint, response)
    assert all(row[name] == value for name, value in VALID_FIELDS[endpoint].items())


# --- Point 4: body size ----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_over_a_configured_limit_is_413(make_app, send, valid_body, snapshot, endpoint):
    small = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    before = snapshot()
    response = send(endpoint, data=padded(valid_body(endpoint), 1025), to=small)
    assert_error(response, 413)
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_at_a_configured_limit_is_accepted(make_app, send, valid_body, endpoint):
    small = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    response = send(endpoint, data=padded(valid_body(endpoint), 1024), to=small)
    assert response.status_code == SUCCESS_STATUS[endpoint]


@pytest.mark.parametrize(
    "size",
    [pytest.param(1024 * 1024 + 1, id="1MiB+1"), pytest.param(2 * 1024 * 1024, id="2MiB")],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_over_the_default_1_mib_is_413(send, valid_body, snapshot, endpoint, size):
    before = snapshot()
    response = send(endpoint, data=padded(valid_body(endpoint), size))
    assert_error(response, 413)
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_just_under_the_default_1_mib_is_accepted(send, valid_body, endpoint):
    response = send(endpoint, data=padded(valid_body(endpoint), 1024 * 1024 - 1))
    assert response.status_code == SUCCESS_STATUS[endpoint]


# --- Points 3 and 4: routes, methods and ticket ids ------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/v1"),
        ("GET", "/api/v1/ticket"),
        ("GET", "/api/v2/tickets"),
        ("POST", "/api/v1/tickets/{id}/comments"),
        ("GET", "/api/v1/tickets/{id}/status/history"),
        ("GET", "/api/v1/auth/profile"),
    ],
)
def test_unknown_route_is_404(client, admin, ticket_id, snapshot, method, path):
    before = snapshot()
    response = client.open(path.format(id=ticket_id), method=method, json={}, headers=admin.headers)
    assert_error(response, 404)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/tickets"),
        ("DELETE", "/api/v1/tickets"),
        ("PATCH", "/api/v1/tickets"),
        ("POST", "/api/v1/tickets/{id}"),
        ("PATCH", "/api/v1/tickets/{id}"),
        ("GET", "/api/v1/tickets/{id}/reply"),
        ("DELETE", "/api/v1/tickets/{id}/reply"),
        ("GET", "/api/v1/tickets/{id}/status"),
        ("POST", "/api/v1/tickets/{id}/status"),
        ("GET", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/me"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client, admin, valid_body, ticket_id, snapshot, method, path
):
    before = snapshot()
    response = client.open(
        path.format(id=ticket_id),
        method=method,
        json=valid_body("create"),
        headers=admin.headers,
    )
    assert_error(response, 405)
    assert method not in response.headers["Allow"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "bad_id",
    ["abc", "1.5", "1e3", "0", "-1", str(2**31 - 1), str(2**31), str(10**20), str(10**40)],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [pytest.param(*endpoint, id=f"{endpoint[0]} {endpoint[1]}") for endpoint in PER_TICKET],
)
def test_ticket_id_that_cannot_exist_is_404(
    client, admin, ticket_id, snapshot, method, path, body, bad_id
):
    before = snapshot()
    response = client.open(path.format(id=bad_id), method=method, json=body, headers=admin.headers)
    assert_error(response, 404)
    assert snapshot() == before

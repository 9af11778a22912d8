"""Every route's query string, the desk's and the auth routes' included: an unknown or repeated
parameter is 422, a scope parameter that disagrees with the token is 403, and neither changes
anything. A create places its object in the branch its query string or its body names."""

import pytest
from support.client import (
    PASSWORD,
    SUBSCRIBERS,
    TICKETS,
    USERS,
    assert_error,
    assert_success,
    call,
    scope_of,
)
from support.database import desk_state
from test_contract import routed_operations

from tickets_service.models import (
    RevokedToken,
    Subscriber,
    Ticket,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)

# Every operation of the API. A parameter is read before the object a path names is looked up,
# so the ids filled in need not exist.
OPERATIONS = [
    ("get", "/api/v1/tickets"),
    ("post", "/api/v1/tickets"),
    ("get", "/api/v1/tickets/stats"),
    ("get", "/api/v1/tickets/{ticket_id}"),
    ("put", "/api/v1/tickets/{ticket_id}"),
    ("delete", "/api/v1/tickets/{ticket_id}"),
    ("post", "/api/v1/tickets/{ticket_id}/reply"),
    ("put", "/api/v1/tickets/{ticket_id}/status"),
    ("get", "/api/v1/tickets/{ticket_id}/history"),
    ("get", "/api/v1/tickets/{ticket_id}/replies"),
    ("post", "/api/v1/tickets/{ticket_id}/restore"),
    ("get", "/api/v1/subscribers"),
    ("post", "/api/v1/subscribers"),
    ("get", "/api/v1/subscribers/{subscriber_id}"),
    ("put", "/api/v1/subscribers/{subscriber_id}"),
    ("put", "/api/v1/subscribers/by-external-id/{external_id}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{user_id}"),
    ("put", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("delete", "/api/v1/webhooks/{webhook_id}"),
    ("get", "/api/v1/webhooks/{webhook_id}/deliveries"),
    ("post", "/api/v1/deliveries/{delivery_id}/redeliver"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/login"),
]
PATH_VALUES = {
    "ticket_id": "1",
    "subscriber_id": "1",
    "user_id": "1",
    "webhook_id": "1",
    "delivery_id": "0b7c4a52-5f0e-4c36-9d55-3f1f8a1e2b6d",
    "external_id": "crm-1",
}
LOGIN = ("post", "/api/v1/auth/login")
# Probes a load balancer calls, which must not fail on a cache-busting parameter.
PROBES = {("get", "/healthz"), ("get", "/readyz")}
MODELS = (RevokedToken, WebhookEndpoint, WebhookDelivery)


def ops(*, login: bool = True) -> list:
    return [
        pytest.param(method, path, id=f"{method.upper()} {path}")
        for method, path in OPERATIONS
        if login or (method, path) != LOGIN
    ]


def test_the_catalogue_holds_every_operation(app):
    """A route added later joins these tests, or this fails."""
    assert set(OPERATIONS) == routed_operations(app) - PROBES


@pytest.fixture
def state(rows):
    """Every table a request could write."""

    def read() -> dict:
        return {**desk_state(rows), **{model.__tablename__: rows(model) for model in MODELS}}

    return read


def send(client, admin, method: str, path: str, query: list[tuple[str, str]]):
    """The operation as the admin, with its own scope in the query string (which the list
    needs) and then `query`; with an empty body where it takes one. Login: as nobody."""
    url = path.format(**PATH_VALUES)
    if (method, path) == LOGIN:
        credentials = {"email": admin.email, "password": PASSWORD}
        return client.post(url, json=credentials, query_string=query)
    named = {name for name, _ in query}
    own = [(name, str(value)) for name, value in scope_of(admin).items() if name not in named]
    body = {} if method in {"post", "put"} else None
    return call(client, admin, method.upper(), url, body, own + query)


@pytest.mark.parametrize(("method", "path"), ops())
def test_an_unknown_query_parameter_is_422_and_changes_nothing(client, admin, state, method, path):
    before = state()

    response = send(client, admin, method, path, [("unknown_probe", "1")])

    assert_error(response, 422, "unknown_probe")
    assert state() == before


@pytest.mark.parametrize(("method", "path"), ops(login=False))
def test_a_repeated_scope_parameter_is_422(client, admin, state, method, path):
    before = state()

    response = send(client, admin, method, path, [("isp_id", "1"), ("isp_id", "1")])

    assert_error(response, 422, "isp_id")
    assert state() == before


@pytest.mark.parametrize(("method", "path"), ops(login=False))
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("isp_id", "2", "isp_id does not match your account."),
        ("user_id", "999", "user_id does not match your account."),
    ],
)
def test_a_scope_parameter_that_disagrees_with_the_token_is_403(
    client, admin, state, method, path, name, value, message
):
    before = state()

    response = send(client, admin, method, path, [(name, value)])

    assert assert_error(response, 403)["message"] == message
    assert state() == before


def test_login_takes_no_scope_from_its_query_string(client, admin):
    response = send(client, admin, *LOGIN, [("isp_id", str(admin.isp_id))])
    assert_error(response, 422, "isp_id")


# --- Creates: the branch named in the query string or the body ---------------------------------

CREATES = {
    "ticket": (TICKETS, Ticket, {"title": "Down", "description": "Since noon", "priority": 1}),
    "subscriber": (SUBSCRIBERS, Subscriber, {"name": "Jo Placed"}),
    "user": (
        USERS,
        User,
        {"name": "Pat Placed", "email": "pat@example.test", "role": "staff", "password": "x" * 8},
    ),
}


@pytest.mark.parametrize("what", CREATES)
@pytest.mark.parametrize(
    ("query", "body"),
    [({"branch_id": "2"}, {}), ({"branch_id": "2"}, {"branch_id": 2}), ({}, {"branch_id": 2})],
    ids=["query", "both", "body"],
)
def test_an_admin_creates_in_the_branch_the_query_or_the_body_names(
    client, admin, fetch, what, query, body
):
    url, model, fields = CREATES[what]

    response = call(client, admin, "POST", url, {**fields, **body}, query)

    row = fetch(model, assert_success(response, 201)["data"]["id"])
    assert (row["isp_id"], row["branch_id"]) == (admin.isp_id, 2)


@pytest.mark.parametrize("what", CREATES)
def test_a_query_and_a_body_naming_different_branches_is_422_and_creates_nothing(
    client, admin, state, what
):
    url, _, fields = CREATES[what]
    before = state()

    response = call(client, admin, "POST", url, {**fields, "branch_id": 1}, {"branch_id": "2"})

    assert_error(response, 422, "branch_id")
    assert state() == before


def test_a_sync_creates_in_the_branch_its_query_names(client, admin, fetch):
    url = f"{SUBSCRIBERS}/by-external-id/crm-placed"

    response = call(client, admin, "PUT", url, {"name": "Synced"}, {"branch_id": "2"})

    row = fetch(Subscriber, assert_success(response, 201)["data"]["id"])
    assert (row["branch_id"], row["external_id"]) == (2, "crm-placed")


def test_staff_naming_another_branch_in_the_query_is_403_and_creates_nothing(client, staff, state):
    url, _, fields = CREATES["ticket"]
    before = state()

    response = call(client, staff, "POST", url, fields, {"branch_id": "2"})

    assert_error(response, 403)
    assert state() == before

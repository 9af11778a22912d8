"""Every route's query string, the desk's and the auth routes' included: an unknown or repeated
parameter is 422, a scope parameter that disagrees with the token is 403, and neither changes
anything. A create places its object in the branch its query string or its body names."""

import pytest
from support.catalogue import ENDPOINTS, LOGIN, OUTSIDE_THE_MATRICES
from support.client import PASSWORD, assert_error, assert_success, call, scope_of
from support.database import desk_state
from support.urls import SUBSCRIBERS, TICKETS, USERS
from test_contract import routed_operations

from tickets_service.models import (
    RevokedToken,
    Subscriber,
    Ticket,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)

# Probes a load balancer calls, which must not fail on a cache-busting parameter.
PROBES = {("get", "/healthz"), ("get", "/readyz")}
MODELS = (RevokedToken, WebhookEndpoint, WebhookDelivery)


def ops(*, login: bool = True) -> list:
    return [
        pytest.param(endpoint, id=f"{endpoint.method} {endpoint.path}")
        for endpoint in ENDPOINTS
        if login or endpoint is not LOGIN
    ]


def test_the_catalogue_holds_every_operation(app):
    """A route added later joins every matrix of the catalogue, or this fails."""
    outside = PROBES | OUTSIDE_THE_MATRICES
    assert {endpoint.route for endpoint in ENDPOINTS} == routed_operations(app) - outside
    assert len({endpoint.route for endpoint in ENDPOINTS}) == len(ENDPOINTS)


@pytest.fixture
def state(rows):
    """Every table a request could write."""

    def read() -> dict:
        return {**desk_state(rows), **{model.__tablename__: rows(model) for model in MODELS}}

    return read


def send(client, world, endpoint, query: list[tuple[str, str]]):
    """The operation as the world's admin, with its own scope in the query string (which the
    list needs) and then `query`; with an empty body where it takes one. Login: as nobody."""
    url = world.path_of(endpoint)
    admin = world.caller
    if endpoint is LOGIN:
        credentials = {"email": admin.email, "password": PASSWORD}
        return client.post(url, json=credentials, query_string=query)
    named = {name for name, _ in query}
    own = [(name, str(value)) for name, value in scope_of(admin).items() if name not in named]
    body = {} if endpoint.method in {"POST", "PUT"} else None
    return call(client, admin, endpoint.method, url, body, own + query)


@pytest.mark.parametrize("endpoint", ops())
def test_an_unknown_query_parameter_is_422_and_changes_nothing(client, world, state, endpoint):
    before = state()

    response = send(client, world, endpoint, [("unknown_probe", "1")])

    assert_error(response, 422, "unknown_probe")
    assert state() == before


@pytest.mark.parametrize("endpoint", ops(login=False))
def test_a_repeated_scope_parameter_is_422(client, world, state, endpoint):
    before = state()

    response = send(client, world, endpoint, [("isp_id", "1"), ("isp_id", "1")])

    assert_error(response, 422, "isp_id")
    assert state() == before


@pytest.mark.parametrize("endpoint", ops(login=False))
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("isp_id", "2", "isp_id does not match your account."),
        ("user_id", "999", "user_id does not match your account."),
    ],
)
def test_a_scope_parameter_that_disagrees_with_the_token_is_403(
    client, world, state, endpoint, name, value, message
):
    before = state()

    response = send(client, world, endpoint, [(name, value)])

    assert assert_error(response, 403)["message"] == message
    assert state() == before


def test_login_takes_no_scope_from_its_query_string(client, world):
    response = send(client, world, LOGIN, [("isp_id", str(world.caller.isp_id))])
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

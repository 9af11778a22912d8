"""Schemathesis against our own OpenAPI document, with a valid admin token: for every
operation, generated requests (valid and invalid) never get a 5xx, and every response has a
documented status code and content type and conforms to its documented schema.

Seeded and bounded: Hypothesis is derandomized, without an example database, and capped in
examples per operation, so a run sends the same requests on every machine and stays short.

The document is loaded at import, so that pytest collects one test per operation (the lazy
`schemathesis.pytest.from_fixture` loader fails under pytest 9.2); every request goes to the
`app` fixture, on the suite's database.
"""

from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tickets_service import create_app
from tickets_service.auth import issue_token
from tickets_service.extensions import db
from tickets_service.models import User
from tickets_service.openapi import OPERATIONS, build_document

from conftest import PASSWORD, Account
from conftest import test_config as app_config

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SCOPE = ("isp_id", "branch_id", "user_id")
LOGOUT = "/api/v1/auth/logout"

# Built by an app that is never called: the document depends on no database.
DOCUMENT = build_document(create_app(app_config("sqlite://")))
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {"generation": {"database": "none"}, "phases": {"stateful": {"enabled": False}}}
    ),
)


@dataclass
class Steering:
    """The seeded data the generation hooks may substitute, set for each test."""

    admin: Account | None = None
    tickets: list[int] = field(default_factory=list)
    subscriber: int | None = None


STEERING = Steering()


@pytest.fixture
def steering(admin, make_user, make_subscriber, make_ticket, make_reply):
    """Tickets with and without subscriber and replies, in two branches of the admin's ISP."""
    subscriber = make_subscriber(isp_id=1, branch_id=1)
    staff = make_user(isp_id=1, branch_id=2, role="staff")
    tickets = [
        make_ticket(admin, subscriber_id=subscriber),
        make_ticket(admin),
        make_ticket(staff, branch_id=2, status=2, priority=3),
    ]
    make_reply(tickets[0], admin)
    make_reply(tickets[0], staff)
    STEERING.admin, STEERING.tickets, STEERING.subscriber = admin, tickets, subscriber
    yield STEERING
    STEERING.admin, STEERING.tickets, STEERING.subscriber = None, [], None


# Random ids and scopes almost always meet 403 or 404. These hooks let Hypothesis also pick the
# admin's own scope, the seeded tickets and subscriber, and the admin's real credentials, so
# that success responses are generated and checked too.


def _in_own_scope(values):
    if not isinstance(values, dict) or STEERING.admin is None:
        return st.just(values)
    admin = STEERING.admin
    own = {"isp_id": admin.isp_id, "branch_id": admin.branch_id, "user_id": admin.id}
    steered = {**values, **{key: own[key] for key in SCOPE if key in values}}
    return st.sampled_from([values, steered])


@schema.hook
def flatmap_query(context, query):
    return _in_own_scope(query)


@schema.hook
def flatmap_body(context, body):
    if STEERING.admin is None:
        return st.just(body)
    if context.operation.path.endswith("/login"):
        real = {"email": STEERING.admin.email, "password": PASSWORD}
        return st.sampled_from([body, real])
    if isinstance(body, dict) and body.get("subscriber_id") is not None:
        body = {**body, "subscriber_id": STEERING.subscriber}
    return _in_own_scope(body)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not isinstance(path_parameters, dict) or "ticket_id" not in path_parameters:
        return st.just(path_parameters)
    seeded = [{**path_parameters, "ticket_id": ticket} for ticket in STEERING.tickets]
    return st.sampled_from([path_parameters, *seeded])


@pytest.fixture
def token_headers(app, admin):
    """The admin's token, except for logout: each logout revokes a token of its own."""

    def headers_for(case) -> dict:
        if case.operation.path != LOGOUT:
            return admin.headers
        with app.app_context():
            token = issue_token(db.session.get(User, admin.id))["access_token"]
            db.session.remove()
        return {"Authorization": f"Bearer {token}"}

    return headers_for


@pytest.fixture
def exercised():
    """Status codes the operation answered to its own method (not to the TRACE or OPTIONS
    Schemathesis also tries): at the end it must have been called, and have succeeded."""
    seen: Counter = Counter()
    yield seen
    assert seen, "no request was sent for this operation"
    assert any(status < 300 for status in seen), f"never answered 2xx, only {dict(seen)}"


def test_every_operation_is_tested(client):
    """One generated test per operation, on the document the app serves."""
    assert client.get("/api/v1/openapi.json").get_json()["paths"] == DOCUMENT["paths"]
    labels = {operation.ok().label for operation in schema.get_all_operations()}
    assert labels == {f"{op.method.upper()} {op.path}" for op in OPERATIONS}


@schema.parametrize()
@hypothesis.settings(
    derandomize=True,
    database=None,
    max_examples=30,
    deadline=None,
    # The seeded data and token are meant to be shared by every example of an operation.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_conforms_to_its_document(case, app, steering, token_headers, exercised):
    headers = token_headers(case)
    response = case.call(app=app, headers=headers)
    if case.method.upper() == case.operation.method.upper():
        exercised[response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers, transport_kwargs={"app": app})

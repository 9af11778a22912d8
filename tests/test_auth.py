"""Issue 2, point 6 (and the JWT half of point 4): login, /me, the token's shape, and every way
a token can be refused, always as a 401 in the envelope."""

import json
import time
import uuid
import warnings
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token, create_refresh_token
from jwt.warnings import InsecureKeyLengthWarning

from tickets_service.extensions import db
from tickets_service.models import User

from conftest import JWT_SECRET, PASSWORD, assert_error, scope_of

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
USER_FIELDS = ("id", "name", "email", "role", "isp_id", "branch_id")


def user_object(account) -> dict:
    return {field: getattr(account, field) for field in USER_FIELDS}


def keys_of(value) -> set:
    """Every key at any depth of a JSON document."""
    if isinstance(value, dict):
        return set(value).union(*(keys_of(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(item) for item in value))
    return set()


def log_in(client, email, password=PASSWORD):
    return client.post(LOGIN, json={"email": email, "password": password})


def set_user(app, user_id: int, **columns) -> None:
    """Change a user's row behind the API's back (an operator, another process)."""
    with app.app_context():
        user = db.session.get(User, user_id)
        for name, value in columns.items():
            setattr(user, name, value)
        db.session.commit()
        db.session.remove()


def delete_user(app, user_id: int) -> None:
    with app.app_context():
        db.session.delete(db.session.get(User, user_id))
        db.session.commit()
        db.session.remove()


# --- Login -----------------------------------------------------------------------------------


def test_login_returns_a_bearer_token_and_the_user(client, app, staff):
    response = log_in(client, staff.email)
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    data = body["data"]
    assert isinstance(data["access_token"], str)
    assert data["access_token"]
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    assert {field: data["user"][field] for field in USER_FIELDS} == user_object(staff)


def test_login_token_opens_the_api(client, staff):
    token = log_in(client, staff.email).get_json()["data"]["access_token"]
    response = client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["data"]["id"] == staff.id


@pytest.mark.parametrize("path", [LOGIN, ME])
def test_no_password_or_hash_in_the_response(client, staff, password_hash, path):
    if path == LOGIN:
        response = log_in(client, staff.email)
    else:
        response = client.get(ME, headers=staff.headers)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert password_hash not in text
    assert password_hash.split("$")[0] not in text  # e.g. "scrypt:32768:8:1"
    assert PASSWORD not in text
    assert not [key for key in keys_of(response.get_json()) if "password" in key.lower()]


@pytest.mark.parametrize(
    ("email", "password"),
    [
        pytest.param("nobody@example.test", PASSWORD, id="unknown-email"),
        pytest.param(None, "not the password", id="wrong-password"),
        pytest.param(None, PASSWORD.upper(), id="password-in-other-case"),
        pytest.param(None, PASSWORD + " ", id="password-with-trailing-space"),
    ],
)
def test_wrong_credentials_are_401(client, staff, snapshot, email, password):
    before = snapshot()
    response = log_in(client, email or staff.email, password)
    assert_error(response, 401)
    assert snapshot() == before


def test_wrong_email_and_wrong_password_get_the_same_answer(client, staff):
    unknown_email = log_in(client, "nobody@example.test")
    wrong_password = log_in(client, staff.email, "not the password")
    assert_error(unknown_email, 401)
    assert_error(wrong_password, 401)
    assert unknown_email.get_json() == wrong_password.get_json()


def test_deactivated_user_cannot_log_in(client, make_user):
    inactive = make_user(active=False)
    assert_error(log_in(client, inactive.email), 401)


BAD_LOGIN_BODIES = [
    # (body, field named in errors)
    pytest.param({"password": PASSWORD}, "email", id="email-missing"),
    pytest.param({"email": "staff@example.test"}, "password", id="password-missing"),
    pytest.param({"email": None, "password": PASSWORD}, "email", id="email-null"),
    pytest.param({"email": 42, "password": PASSWORD}, "email", id="email-number"),
    pytest.param({"email": "staff@example.test", "password": 42}, "password", id="password-num"),
    pytest.param(
        {"email": "st\x00aff@example.test", "password": PASSWORD}, "email", id="email-nul"
    ),
    pytest.param({"email": "staff@example.test", "password": "pw\x00"}, "password", id="pw-nul"),
    pytest.param(
        {"email": "staff@example.test", "password": PASSWORD, "remember": True},
        "remember",
        id="unknown-field",
    ),
]


@pytest.mark.parametrize(("body", "field"), BAD_LOGIN_BODIES)
def test_invalid_login_body_is_422(client, staff, snapshot, body, field):
    before = snapshot()
    response = client.post(LOGIN, json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/json"
    payload = response.get_json()
    assert payload["success"] is False
    assert isinstance(payload["message"], str)
    assert field in payload["errors"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param(b"", "application/json", id="empty"),
        pytest.param(b"email=a&password=b", "application/x-www-form-urlencoded", id="form"),
        pytest.param(b"{not json", "application/json", id="garbage"),
        pytest.param(b"[]", "application/json", id="list"),
        pytest.param(b'"staff@example.test"', "application/json", id="string"),
        pytest.param(b"null", "application/json", id="null"),
    ],
)
def test_login_body_that_is_not_a_json_object_is_400(client, snapshot, data, content_type):
    before = snapshot()
    response = client.post(LOGIN, data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is False
    assert isinstance(body["message"], str)
    assert snapshot() == before


def test_login_accepts_json_sent_as_text_plain(client, staff):
    body = json.dumps({"email": staff.email, "password": PASSWORD})
    response = client.post(LOGIN, data=body, content_type="text/plain")
    assert response.status_code == 200
    assert response.get_json()["data"]["user"]["id"] == staff.id


# --- /me -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "staff"])
def test_me_returns_the_user_object(client, make_user, role):
    account = make_user(isp_id=3, branch_id=4, role=role)
    response = client.get(ME, headers=account.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    assert {field: body["data"][field] for field in USER_FIELDS} == user_object(account)


def test_me_returns_the_same_user_object_as_login(client, staff):
    login_user = log_in(client, staff.email).get_json()["data"]["user"]
    assert client.get(ME, headers=staff.headers).get_json()["data"] == login_user


# --- The token itself ------------------------------------------------------------------------


@pytest.fixture
def login_token(client, staff):
    return log_in(client, staff.email).get_json()["data"]["access_token"]


def test_token_is_signed_hs256_with_the_configured_key(login_token):
    assert pyjwt.get_unverified_header(login_token)["alg"] == "HS256"
    pyjwt.decode(login_token, JWT_SECRET, algorithms=["HS256"])  # raises on a bad signature


def test_token_names_the_user_and_its_scope(login_token, staff):
    claims = pyjwt.decode(login_token, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(staff.id)
    assert (claims["role"], claims["isp_id"], claims["branch_id"]) == (
        staff.role,
        staff.isp_id,
        staff.branch_id,
    )


def test_token_lives_the_default_3600_seconds(app, login_token):
    claims = pyjwt.decode(login_token, JWT_SECRET, algorithms=["HS256"])
    assert app.config["JWT_ACCESS_TOKEN_EXPIRES"] == 3600
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize("lifetime", [60, 7200])
def test_token_lifetime_follows_the_config(make_app, staff, lifetime):
    client = make_app(JWT_ACCESS_TOKEN_EXPIRES=lifetime).test_client()
    data = log_in(client, staff.email).get_json()["data"]
    claims = pyjwt.decode(data["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert data["expires_in"] == lifetime
    assert claims["exp"] - claims["iat"] == lifetime


# --- Refused tokens --------------------------------------------------------------------------


def forged(account, *, key=JWT_SECRET, algorithm="HS256", **changes) -> str:
    """A token built by hand with PyJWT: the claims a genuine one carries, then `changes`."""
    now = int(time.time())
    claims = {
        "fresh": False,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "type": "access",
        "sub": str(account.id),
        "nbf": now,
        "exp": now + 600,
        "role": account.role,
        "isp_id": account.isp_id,
        "branch_id": account.branch_id,
    }
    claims.update(changes)
    with warnings.catch_warnings():
        # PyJWT warns that the test key is short for HS512; only the refusal matters here.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return pyjwt.encode(claims, key, algorithm=algorithm)


def issued(app, account, *, refresh=False, **options) -> str:
    """A token made by flask-jwt-extended itself, with the given options."""
    claims = {"role": account.role, "isp_id": account.isp_id, "branch_id": account.branch_id}
    claims.update(options.pop("claims", {}))
    make = create_refresh_token if refresh else create_access_token
    with app.app_context():
        return make(identity=str(account.id), additional_claims=claims, **options)


BAD_AUTHORIZATION = [
    # (id, function (app, account) -> Authorization header value or None)
    pytest.param(lambda app, a: None, id="missing"),
    pytest.param(lambda app, a: "", id="empty"),
    pytest.param(lambda app, a: "Bearer", id="bearer-without-token"),
    pytest.param(lambda app, a: "Bearer ", id="bearer-space"),
    pytest.param(lambda app, a: a.token, id="token-without-scheme"),
    pytest.param(lambda app, a: f"Token {a.token}", id="wrong-scheme"),
    pytest.param(lambda app, a: f"Basic {a.token}", id="basic-scheme"),
    pytest.param(lambda app, a: "Bearer not-a-jwt", id="not-a-jwt"),
    pytest.param(lambda app, a: "Bearer a.b.c", id="three-garbage-parts"),
    pytest.param(lambda app, a: f"Bearer {a.token[:-4]}", id="truncated-signature"),
    pytest.param(
        lambda app, a: f"Bearer {forged(a, key='another-secret-that-is-long-enough-!!')}",
        id="signed-with-another-key",
    ),
    pytest.param(
        lambda app, a: f"Bearer {forged(a, key=JWT_SECRET, algorithm='HS512')}",
        id="hs512-with-the-right-key",
    ),
    pytest.param(lambda app, a: f"Bearer {forged(a, key=None, algorithm='none')}", id="alg-none"),
    pytest.param(
        lambda app, a: f"Bearer {issued(app, a, expires_delta=timedelta(seconds=-10))}",
        id="expired",
    ),
    pytest.param(
        lambda app, a: f"Bearer {forged(a, nbf=int(time.time()) + 600)}", id="not-yet-valid"
    ),
    pytest.param(lambda app, a: f"Bearer {forged(a, sub=a.id)}", id="sub-not-a-string"),
    pytest.param(lambda app, a: f"Bearer {forged(a, sub='admin')}", id="sub-not-an-id"),
    pytest.param(lambda app, a: f"Bearer {forged(a, sub=str(2**31))}", id="sub-beyond-column"),
    pytest.param(lambda app, a: f"Bearer {forged(a, type='refresh')}", id="refresh-type-claim"),
    pytest.param(lambda app, a: f"Bearer {issued(app, a, refresh=True)}", id="refresh-token"),
    pytest.param(lambda app, a: f"Bearer {issued(app, a, claims={'role': None})}", id="no-role"),
]

PROBES = [
    pytest.param(ME, id="me"),
    pytest.param("/api/v1/tickets", id="list"),
]


@pytest.mark.parametrize("path", PROBES)
@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION)
def test_bad_or_missing_token_is_401(client, app, staff, path, authorization):
    value = authorization(app, staff)
    headers = {} if value is None else {"Authorization": value}
    response = client.get(path, query_string=scope_of(staff), headers=headers)
    assert_error(response, 401)


SCOPE_DISAGREEMENTS = [
    pytest.param({"role": "admin"}, id="role-admin-for-staff"),
    pytest.param({"isp_id": 2}, id="other-isp"),
    pytest.param({"branch_id": 2}, id="other-branch"),
    pytest.param({"isp_id": "1"}, id="isp-as-string"),
]


@pytest.mark.parametrize("path", PROBES)
@pytest.mark.parametrize("claims", SCOPE_DISAGREEMENTS)
def test_token_whose_claims_disagree_with_the_user_row_is_401(client, app, staff, path, claims):
    token = issued(app, staff, claims=claims)
    response = client.get(
        path, query_string=scope_of(staff), headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 401)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"role": "staff"}, id="demoted"),
        pytest.param({"isp_id": 2}, id="moved-to-another-isp"),
        pytest.param({"branch_id": 2}, id="moved-to-another-branch"),
    ],
)
def test_token_issued_before_a_role_or_scope_change_is_401(client, app, admin, change):
    set_user(app, admin.id, **change)
    assert_error(client.get(ME, headers=admin.headers), 401)


@pytest.mark.parametrize("path", PROBES)
def test_token_of_a_deactivated_user_is_401(client, app, staff, path):
    set_user(app, staff.id, is_active=False)
    response = client.get(path, query_string=scope_of(staff), headers=staff.headers)
    assert_error(response, 401)


@pytest.mark.parametrize("path", PROBES)
def test_token_of_a_deleted_user_is_401(client, app, staff, path):
    delete_user(app, staff.id)
    response = client.get(path, query_string=scope_of(staff), headers=staff.headers)
    assert_error(response, 401)


EVERY_ENDPOINT = [
    ("GET", "/api/v1/tickets", None),
    ("POST", "/api/v1/tickets", {"title": "T", "description": "D", "priority": 2}),
    ("GET", "/api/v1/tickets/{id}", None),
    ("PUT", "/api/v1/tickets/{id}", {"title": "Updated Title"}),
    ("DELETE", "/api/v1/tickets/{id}", None),
    ("POST", "/api/v1/tickets/{id}/reply", {"message": "We are looking into this."}),
    ("PUT", "/api/v1/tickets/{id}/status", {"status": 2}),
    ("GET", ME, None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [pytest.param(*endpoint, id=f"{endpoint[0]} {endpoint[1]}") for endpoint in EVERY_ENDPOINT],
)
def test_every_endpoint_without_a_token_is_401_and_changes_nothing(
    client, admin, make_ticket, snapshot, method, path, body
):
    ticket_id = make_ticket(admin)
    before = snapshot()
    response = client.open(
        path.format(id=ticket_id),
        method=method,
        json={**scope_of(admin), **body} if body else None,
        query_string=scope_of(admin) if body is None else None,
    )
    assert_error(response, 401)
    assert snapshot() == before

"""Issue 4, point 4: only genuine, current tokens of active users are accepted."""

import base64
import json
import time

import jwt as pyjwt
import pytest

from tickets_service.models import RevokedToken, User

from conftest import JWT_SECRET, assert_error

ME = "/api/v1/auth/me"


def decode(token: str) -> dict:
    return pyjwt.decode(token, JWT_SECRET, algorithms=["HS256"])


def sign(claims: dict, key: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return pyjwt.encode(claims, key, algorithm=algorithm)


def unsigned(claims: dict) -> str:
    """A token with `alg: none` and an empty signature."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_genuine_token_is_accepted(client, staff):
    response = client.get(ME, headers=bearer(sign(decode(staff.token))))
    assert response.status_code == 200
    assert response.json["data"]["id"] == staff.id


def test_alg_none_is_refused(client, staff):
    assert_error(client.get(ME, headers=bearer(unsigned(decode(staff.token)))), 401)


def test_wrong_signature_is_refused(client, staff):
    forged = sign(decode(staff.token), key="another-secret-that-is-long-enough-0123456789")
    assert_error(client.get(ME, headers=bearer(forged)), 401)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_another_algorithm_is_refused_even_with_the_right_key(client, staff, algorithm):
    other = sign(decode(staff.token), algorithm=algorithm)
    assert_error(client.get(ME, headers=bearer(other)), 401)


@pytest.mark.parametrize("claim", ["sub", "jti", "exp", "iat", "role", "isp_id", "branch_id"])
def test_a_token_missing_a_claim_is_refused(client, staff, claim):
    claims = decode(staff.token)
    del claims[claim]
    assert_error(client.get(ME, headers=bearer(sign(claims))), 401)


def test_an_expired_token_is_refused(client, staff):
    claims = decode(staff.token) | {"iat": int(time.time()) - 120, "exp": int(time.time()) - 60}
    response = client.get(ME, headers=bearer(sign(claims)))
    assert_error(response, 401)
    assert response.json["message"] == "Token has expired."


def test_a_token_not_yet_valid_is_refused(client, staff):
    claims = decode(staff.token) | {"nbf": int(time.time()) + 3600}
    assert_error(client.get(ME, headers=bearer(sign(claims))), 401)


@pytest.mark.parametrize(
    "changes",
    [
        {"role": "admin"},
        {"isp_id": 2},
        {"branch_id": 2},
        {"sub": "abc"},
        {"sub": "99999999999999999999"},
        {"sub": "0"},
        {"sub": 1},
        {"type": "refresh"},
        {"jti": ""},
        {"jti": "x" * 65},
    ],
    ids=str,
)
def test_claims_that_disagree_with_the_user_row_are_refused(client, staff, changes):
    claims = decode(staff.token) | changes
    assert_error(client.get(ME, headers=bearer(sign(claims))), 401)


@pytest.mark.parametrize("column, value", [("role", "admin"), ("isp_id", 7), ("branch_id", 9)])
def test_token_is_refused_after_the_users_row_changes(app, client, staff, column, value):
    from tickets_service.extensions import db

    with app.app_context():
        user = db.session.get(User, staff.id)
        setattr(user, column, value)
        db.session.commit()
        db.session.remove()
    assert_error(client.get(ME, headers=staff.headers), 401)


def test_token_of_a_deactivated_user_is_refused(runner, client, staff):
    result = runner.invoke(args=["users", "deactivate", "--email", staff.email])
    assert result.exit_code == 0
    assert_error(client.get(ME, headers=staff.headers), 401)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Bearer abc", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Token x.y.z"],
)
def test_malformed_authorization_headers_are_refused(client, header):
    assert_error(client.get(ME, headers={"Authorization": header}), 401)


def test_logout_revokes_the_presented_token(client, rows, staff):
    response = client.post("/api/v1/auth/logout", headers=staff.headers)
    assert response.status_code == 200
    assert response.json == {"success": True, "message": "Logged out successfully"}
    (revoked,) = rows(RevokedToken)
    claims = decode(staff.token)
    assert revoked["jti"] == claims["jti"]
    assert revoked["user_id"] == staff.id
    assert int(revoked["expires_at"].timestamp()) == claims["exp"]
    assert_error(client.get(ME, headers=staff.headers), 401)
    assert_error(client.post("/api/v1/auth/logout", headers=staff.headers), 401)


def test_logout_revokes_only_that_token(client, staff):
    from conftest import PASSWORD

    login = client.post("/api/v1/auth/login", json={"email": staff.email, "password": PASSWORD})
    second = bearer(login.json["data"]["access_token"])
    assert client.post("/api/v1/auth/logout", headers=staff.headers).status_code == 200
    assert client.get(ME, headers=second).status_code == 200


def test_a_revoked_token_is_refused_by_every_instance(make_app, client, staff):
    other_instance = make_app().test_client()
    assert other_instance.get(ME, headers=staff.headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=staff.headers).status_code == 200
    assert_error(other_instance.get(ME, headers=staff.headers), 401)


def test_logout_needs_a_token(client, rows):
    assert_error(client.post("/api/v1/auth/logout"), 401)
    assert rows(RevokedToken) == []

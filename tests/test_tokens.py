"""Tokens follow the user. A new password (API or CLI), role, ISP or branch,
or a deactivation ends every token the user holds at once; reactivation revives none of them; a
rename ends none; a token without the version claim is refused; and one SQL statement reads the
caller and the token's revocation together."""

import jwt as pyjwt
import pytest
from support.client import JWT_SECRET, PASSWORD, assert_error, assert_success, call
from support.database import session
from support.urls import LOGIN, ME, USERS

from tickets_service.models import User

NEW_PASSWORD = "a brand new secret phrase"


def log_in(client, email, password=PASSWORD) -> str:
    response = client.post(LOGIN, json={"email": email, "password": password})
    return assert_success(response, 200)["data"]["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def me(client, token: str):
    return client.get(ME, headers=bearer(token))


@pytest.fixture
def sessions(client, staff) -> list[str]:
    """Three live tokens of the staff user: the fixture's and two logins (a phone, a laptop)."""
    tokens = [staff.token, log_in(client, staff.email), log_in(client, staff.email)]
    assert len(set(tokens)) == 3
    for token in tokens:
        assert_success(me(client, token), 200)
    return tokens


def token_version(fetch, user_id: int) -> int:
    return fetch(User, user_id)["token_version"]


def assert_all_refused(client, tokens: list[str]) -> None:
    for token in tokens:
        assert_error(me(client, token), 401)


# --- Changes that end every session -------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"password": NEW_PASSWORD}, {"role": "admin"}, {"branch_id": 2}, {"is_active": False}],
    ids=["password", "role", "branch", "deactivation"],
)
def test_an_admins_change_revokes_every_token_of_the_user_at_once(
    client, admin, staff, sessions, fetch, change
):
    version = token_version(fetch, staff.id)

    response = call(client, admin, "PUT", f"{USERS}/{staff.id}", change)

    assert_success(response, 200, "User updated successfully")
    assert_all_refused(client, sessions)
    assert token_version(fetch, staff.id) == version + 1
    assert_success(me(client, admin.token), 200)  # nobody else's sessions end


@pytest.mark.parametrize("change", [{"password": NEW_PASSWORD}, {"role": "admin"}])
def test_a_token_issued_after_the_change_works(client, admin, staff, sessions, change):
    assert_success(call(client, admin, "PUT", f"{USERS}/{staff.id}", change), 200)

    fresh = log_in(client, staff.email, change.get("password", PASSWORD))

    assert assert_success(me(client, fresh), 200)["data"]["id"] == staff.id


@pytest.mark.parametrize("command", ["set-password", "deactivate"])
def test_the_cli_revokes_every_token_of_the_user_at_once(
    runner, client, staff, sessions, fetch, command
):
    version = token_version(fetch, staff.id)
    args = ["users", command, "--email", staff.email]
    if command == "set-password":
        args += ["--password", NEW_PASSWORD]

    result = runner.invoke(args=args)

    assert result.exit_code == 0, result.output
    assert_all_refused(client, sessions)
    assert token_version(fetch, staff.id) == version + 1
    if command == "set-password":
        assert_success(me(client, log_in(client, staff.email, NEW_PASSWORD)), 200)


def test_moving_the_user_to_another_isp_revokes_every_token(app, client, staff, sessions, fetch):
    """No endpoint moves a user between ISPs; the platform may, and the rule is on the model."""
    with session(app) as own:
        own.get(User, staff.id).isp_id = 2
        own.commit()

    assert_all_refused(client, sessions)
    assert token_version(fetch, staff.id) == 1


def test_reactivation_does_not_revive_old_tokens(client, admin, staff, sessions, fetch):
    url = f"{USERS}/{staff.id}"
    assert_success(call(client, admin, "PUT", url, {"is_active": False}), 200)

    assert_success(call(client, admin, "PUT", url, {"is_active": True}), 200)

    assert_all_refused(client, sessions)
    assert fetch(User, staff.id)["is_active"] is True
    assert_success(me(client, log_in(client, staff.email)), 200)


def test_a_rename_keeps_every_token_working(client, admin, staff, sessions, fetch):
    version = token_version(fetch, staff.id)

    assert_success(call(client, admin, "PUT", f"{USERS}/{staff.id}", {"name": "New Name"}), 200)

    for token in sessions:
        assert assert_success(me(client, token), 200)["data"]["name"] == "New Name"
    assert token_version(fetch, staff.id) == version


def test_a_refused_change_revokes_nothing(client, admin, sessions, staff, fetch):
    """A 422 leaves the user as it was, tokens included."""
    version = token_version(fetch, staff.id)

    response = call(client, admin, "PUT", f"{USERS}/{staff.id}", {"password": "short"})

    assert_error(response, 422, "password")
    for token in sessions:
        assert_success(me(client, token), 200)
    assert token_version(fetch, staff.id) == version


# --- The version claim ------------------------------------------------------------------------


def claims_of(token: str) -> dict:
    return pyjwt.decode(token, JWT_SECRET, algorithms=["HS256"])


def signed(claims: dict) -> str:
    return pyjwt.encode(claims, JWT_SECRET, algorithm="HS256")


def test_a_token_without_the_ver_claim_is_401(client, staff):
    claims = claims_of(staff.token)
    del claims["ver"]

    assert_error(me(client, signed(claims)), 401)


@pytest.mark.parametrize("ver", [1, -1, "0", None, 0.5])
def test_a_token_whose_ver_is_not_the_users_is_401(client, staff, ver):
    claims = claims_of(staff.token)
    assert claims["ver"] == 0

    assert_error(me(client, signed({**claims, "ver": ver})), 401)


def test_the_same_claims_signed_again_are_accepted(client, staff):
    """The control for the two tests above: re-signing itself breaks nothing."""
    assert_success(me(client, signed(claims_of(staff.token))), 200)


# --- The cost per request -----------------------------------------------------------------------


@pytest.mark.parametrize("revoked", [False, True], ids=["live", "logged out"])
def test_one_sql_statement_reads_the_user_and_the_revocation(client, staff, count_queries, revoked):
    if revoked:
        assert_success(client.post("/api/v1/auth/logout", headers=staff.headers), 200)

    with count_queries() as counter:
        response = client.get(ME, headers=staff.headers)

    assert response.status_code == (401 if revoked else 200)
    (statement,) = counter.statements  # transaction control aside
    assert "users" in statement
    assert "revoked_tokens" in statement

"""Issue 4, point 5: login rate limits, no enumeration by timing, password rules."""

import pytest

from tickets_service import auth, models
from tickets_service.models import User

from conftest import PASSWORD, assert_error

LOGIN = "/api/v1/auth/login"


def attempt(client, email, password="wrong password!", address="10.0.0.1"):
    return client.post(
        LOGIN, json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def assert_429(response):
    assert "Too many" in assert_error(response, 429)["message"]
    assert int(response.headers["Retry-After"]) > 0


@pytest.fixture
def hash_checks(monkeypatch):
    """Count password-hash verifications (the slow step that timing would reveal)."""
    calls = []

    def counting(real):
        def check(stored, password):
            calls.append(stored)
            return real(stored, password)

        return check

    monkeypatch.setattr(auth, "check_password_hash", counting(auth.check_password_hash))
    monkeypatch.setattr(models, "check_password_hash", counting(models.check_password_hash))
    return calls


def test_unknown_email_costs_a_hash_check_like_a_wrong_password(client, staff, hash_checks):
    unknown = attempt(client, "nobody@example.test")
    after_unknown = len(hash_checks)
    wrong = attempt(client, staff.email)
    assert unknown.json == wrong.json
    assert unknown.status_code == wrong.status_code == 401
    assert after_unknown == 1
    assert len(hash_checks) == 2
    # The decoy uses the same algorithm and cost as real hashes.
    assert hash_checks[0].split("$")[0] == hash_checks[1].split("$")[0]


def test_users_create_refuses_a_short_password(runner, rows):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--isp-id",
            "1",
            "--branch-id",
            "1",
            "--name",
            "Ann",
            "--email",
            "ann@example.test",
            "--role",
            "staff",
            "--password",
            "short",
        ]
    )
    assert result.exit_code == 1
    assert "password" in result.output
    assert rows(User) == []


def test_users_set_password_changes_the_password(runner, client, staff):
    result = runner.invoke(
        args=["users", "set-password", "--email", staff.email, "--password", "a brand new one"]
    )
    assert result.exit_code == 0, result.output
    assert attempt(client, staff.email, "a brand new one").status_code == 200
    assert attempt(client, staff.email, PASSWORD).status_code == 401


def test_users_set_password_prompts_when_not_given(runner, client, staff):
    result = runner.invoke(
        args=["users", "set-password", "--email", staff.email],
        input="prompted secret\nprompted secret\n",
    )
    assert result.exit_code == 0, result.output
    assert attempt(client, staff.email, "prompted secret").status_code == 200


@pytest.mark.parametrize(
    "args, message",
    [
        (["--email", "nobody@example.test", "--password", "long enough!"], "no user"),
        (["--password", "short"], "at least 8"),
    ],
)
def test_users_set_password_refuses_bad_input(runner, client, staff, args, message):
    if "--email" not in args:
        args = ["--email", staff.email, *args]
    result = runner.invoke(args=["users", "set-password", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert attempt(client, staff.email, PASSWORD).status_code == 200

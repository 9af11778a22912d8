"""Failed-login limits stop guessing without locking out the owner: counted per (email,
address), per address and per email, in the database (shared by every worker and instance),
atomically before the password is checked."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tickets_service.models import LoginAttempt

from conftest import PASSWORD, assert_error

LOGIN = "/api/v1/auth/login"


def attempt(client, email, password="wrong password!", address="10.0.0.1"):
    return client.post(
        LOGIN, json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def assert_429(response):
    assert "Too many" in assert_error(response, 429)["message"]
    assert int(response.headers["Retry-After"]) > 0


def test_ten_failures_from_one_address_throttle_that_address_for_that_email(client, staff):
    for _ in range(10):
        assert attempt(client, staff.email).status_code == 401
    assert_429(attempt(client, staff.email))
    # Even the right password waits there: that is the point of the limit...
    assert_429(attempt(client, staff.email, PASSWORD))
    # ...but the owner, elsewhere, still logs in.
    assert attempt(client, staff.email, PASSWORD, address="10.9.9.9").status_code == 200


def test_the_email_limit_ignores_case_and_spaces(make_app, staff):
    client = make_app(LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS="2 per minute").test_client()
    assert attempt(client, staff.email).status_code == 401
    assert attempt(client, f"  {staff.email.upper()} ").status_code == 401
    assert_429(attempt(client, staff.email))


def test_failed_logins_per_address_are_limited_whatever_the_email(make_app, staff, admin):
    client = make_app(LOGIN_RATE_LIMIT_PER_ADDRESS="3 per minute").test_client()
    for n in range(3):
        assert attempt(client, f"nobody{n}@example.test").status_code == 401
    assert_429(attempt(client, staff.email, PASSWORD))
    assert attempt(client, admin.email, PASSWORD, address="10.9.9.9").status_code == 200


def test_a_slow_ceiling_per_email_holds_across_addresses(make_app, staff):
    client = make_app(LOGIN_RATE_LIMIT_PER_EMAIL="4 per hour").test_client()
    for n in range(4):
        assert attempt(client, staff.email, address=f"10.1.0.{n}").status_code == 401
    assert_429(attempt(client, staff.email, PASSWORD, address="10.1.1.1"))
    retry_after = int(attempt(client, staff.email, address="10.1.1.2").headers["Retry-After"])
    assert 0 < retry_after <= 3600


def test_the_default_ceiling_per_email_is_a_hundred_an_hour(client, staff):
    for n in range(100):
        assert attempt(client, staff.email, address=f"10.2.{n // 10}.{n % 10}").status_code == 401
    assert_429(attempt(client, staff.email, PASSWORD, address="10.3.0.1"))


def test_successful_logins_do_not_count(make_app, staff):
    client = make_app(
        LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS="2 per minute",
        LOGIN_RATE_LIMIT_PER_ADDRESS="2 per minute",
        LOGIN_RATE_LIMIT_PER_EMAIL="2 per hour",
    ).test_client()
    for _ in range(5):
        assert attempt(client, staff.email, PASSWORD).status_code == 200


def test_parallel_guesses_never_exceed_the_limit(make_app, staff):
    """Each attempt is counted before its password is checked, in one atomic statement."""
    client = make_app(LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS="5 per minute").test_client()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: attempt(client, staff.email).status_code, range(24)))
    assert sorted(statuses) == [401] * 5 + [429] * 19


def test_instances_share_the_counts_through_the_database(make_app, staff, rows):
    settings = {"LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS": "2 per minute"}
    first, second = make_app(**settings).test_client(), make_app(**settings).test_client()
    assert attempt(first, staff.email).status_code == 401
    assert attempt(second, staff.email).status_code == 401
    assert_429(attempt(first, staff.email))
    assert_429(attempt(second, staff.email))
    # Counts are stored under hashes: no email or address in clear.
    stored = " ".join(str(row) for row in rows(LoginAttempt))
    assert staff.email not in stored and "10.0.0.1" not in stored


@pytest.mark.parametrize("setting", ["ten per minute", "0 per minute", "5 per fortnight", ""])
def test_a_malformed_limit_stops_the_app_at_start(monkeypatch, setting):
    from tickets_service.config import ConfigError, from_environment

    environ = {"LOGIN_RATE_LIMIT_PER_ADDRESS": setting or " "}
    if not setting:
        assert from_environment(environ)["LOGIN_RATE_LIMIT_PER_ADDRESS"] == "60 per minute"
        return
    with pytest.raises(ConfigError, match="LOGIN_RATE_LIMIT_PER_ADDRESS"):
        from_environment(environ)

"""Login, /me and logout; the token itself and every way a token is refused (always a 401 in the
envelope); the limits on failed logins."""

import hashlib
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import jwt as pyjwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from support.catalogue import ENDPOINTS, LIST, LOGIN, LOGOUT, ME, World
from support.client import JWT_SECRET, PASSWORD, assert_error, assert_success
from support.database import session

from tickets_service import login_limits
from tickets_service.models import LoginAttempt, RevokedToken, User

USER_FIELDS = ("id", "name", "email", "role", "isp_id", "branch_id")
PROBES = [pytest.param(ME, id="me"), pytest.param(LIST, id="list")]


def log_in(client, email, password=PASSWORD, **options):
    return client.post(LOGIN.path, json={"email": email, "password": password}, **options)


def claims_of(token: str) -> dict:
    return pyjwt.decode(token, JWT_SECRET, algorithms=["HS256"])


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def change_user(app, user_id: int, **columns) -> None:
    """Change (or, with no columns, delete) a user's row behind the API's back."""
    with session(app) as own:
        user = own.get(User, user_id)
        for name, value in columns.items():
            setattr(user, name, value)
        if not columns:
            own.delete(user)
        own.commit()


# --- Login and /me ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "staff"])
def test_login_returns_a_bearer_token_whose_user_me_returns(client, make_user, role):
    account = make_user(isp_id=3, branch_id=4, role=role)
    data = assert_success(log_in(client, account.email), 200)["data"]
    assert isinstance(data["access_token"], str)
    assert data["access_token"]
    assert (data["token_type"], data["expires_in"]) == ("Bearer", 3600)
    assert {name: data["user"][name] for name in USER_FIELDS} == {
        name: getattr(account, name) for name in USER_FIELDS
    }
    me = assert_success(client.get(ME.path, headers=bearer(data["access_token"])), 200)
    assert me["data"] == data["user"]


def keys_of(value) -> set:
    """Every key at any depth of a JSON document."""
    if isinstance(value, dict):
        return set(value).union(*(keys_of(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(item) for item in value))
    return set()


@pytest.mark.parametrize("endpoint", [LOGIN, ME], ids=str)
def test_no_password_or_hash_is_ever_answered(send, staff, password_hash, endpoint):
    response = send(endpoint, World(staff, 0))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert password_hash not in text
    assert password_hash.split("$")[0] not in text  # e.g. "scrypt:32768:8:1"
    assert PASSWORD not in text
    assert not [key for key in keys_of(response.get_json()) if "password" in key.lower()]


@pytest.mark.parametrize(
    ("email", "password", "active"),
    [
        pytest.param("nobody@example.test", PASSWORD, True, id="unknown-email"),
        pytest.param(None, "not the password", True, id="wrong-password"),
        pytest.param(None, PASSWORD.upper(), True, id="password-in-other-case"),
        pytest.param(None, PASSWORD + " ", True, id="password-with-trailing-space"),
        pytest.param(None, PASSWORD, False, id="deactivated-user"),
    ],
)
def test_wrong_credentials_are_401_with_one_answer_for_all(
    client, make_user, assert_refused, email, password, active
):
    """The same answer whatever is wrong, so that emails cannot be enumerated."""
    account = make_user(active=active)
    response = assert_refused(lambda: log_in(client, email or account.email, password), 401)
    assert response.get_json() == log_in(client, "nobody@example.test", "x").get_json()


# --- The token --------------------------------------------------------------------------------


def test_a_token_is_hs256_signed_with_the_key_and_names_the_user_and_its_scope(client, staff):
    token = log_in(client, staff.email).get_json()["data"]["access_token"]
    assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
    claims = claims_of(token)  # raises on a bad signature
    assert claims["sub"] == str(staff.id)
    scope = ("role", "isp_id", "branch_id")
    assert [claims[name] for name in scope] == [getattr(staff, name) for name in scope]


@pytest.mark.parametrize("lifetime", [None, 60, 7200], ids=["default-3600", "60", "7200"])
def test_a_token_lives_jwt_access_token_expires_seconds(app, make_app, staff, lifetime):
    configured = app if lifetime is None else make_app(JWT_ACCESS_TOKEN_EXPIRES=lifetime)
    data = log_in(configured.test_client(), staff.email).get_json()["data"]
    claims = claims_of(data["access_token"])
    assert data["expires_in"] == claims["exp"] - claims["iat"] == (lifetime or 3600)


def forged(account, *, key=JWT_SECRET, algorithm="HS256", drop=(), **changes) -> str:
    """The account's genuine claims, without `drop`, with `changes`, signed as told."""
    claims = {name: value for name, value in claims_of(account.token).items() if name not in drop}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the key is short for HS512
        return pyjwt.encode({**claims, **changes}, key, algorithm=algorithm)


def signed(**options):
    return lambda account: f"Bearer {forged(account, **options)}"


def test_a_token_re_signed_with_its_own_claims_is_accepted(client, staff):
    """So that the forged tokens below are refused for what they change, not for being forged."""
    response = client.get(ME.path, headers={"Authorization": signed()(staff)})
    assert assert_success(response, 200)["data"]["id"] == staff.id


IN_A_DAY = int(time.time()) + 86_400
# No Authorization header at all: test_every_endpoint_but_login_is_401_without_a_token.
REFUSED = {
    "empty": lambda account: "",
    "bearer-without-token": lambda account: "Bearer",
    "bearer-space": lambda account: "Bearer ",
    "token-without-scheme": lambda account: account.token,
    "wrong-scheme": lambda account: f"Token {account.token}",
    "basic-scheme": lambda account: f"Basic {account.token}",
    "basic-credentials": lambda account: "Basic dXNlcjpwYXNz",
    "not-a-jwt": lambda account: "Bearer not-a-jwt",
    "three-garbage-parts": lambda account: "Bearer a.b.c",
    "truncated-signature": lambda account: f"Bearer {account.token[:-4]}",
    "signed-with-another-key": signed(key="another-secret-that-is-long-enough-0123456789"),
    "hs384-with-the-right-key": signed(algorithm="HS384"),
    "hs512-with-the-right-key": signed(algorithm="HS512"),
    "alg-none": signed(key=None, algorithm="none"),
    "not-yet-valid": signed(nbf=IN_A_DAY),
    "refresh-token": signed(type="refresh"),
    "sub-not-a-string": lambda account: signed(sub=account.id)(account),
    "sub-not-an-id": signed(sub="admin"),
    "sub-zero": signed(sub="0"),
    "sub-beyond-the-column": signed(sub=str(2**31)),
    "sub-of-20-digits": signed(sub="9" * 20),
    "jti-empty": signed(jti=""),
    "jti-of-65-characters": signed(jti="x" * 65),
    **{f"without-{claim}": signed(drop=(claim,)) for claim in ("sub", "jti", "exp", "iat")},
    # Claims that disagree with the user's row.
    **{f"without-{claim}": signed(drop=(claim,)) for claim in ("role", "isp_id", "branch_id")},
    "role-null": signed(role=None),
    "role-admin-for-staff": signed(role="admin"),
    "another-isp": signed(isp_id=2),
    "another-branch": signed(branch_id=2),
    "isp-as-a-string": signed(isp_id="1"),
}


@pytest.mark.parametrize("probe", PROBES)
@pytest.mark.parametrize("authorization", REFUSED.values(), ids=REFUSED)
def test_a_missing_malformed_or_forged_token_is_401(
    send, staff, assert_refused, probe, authorization
):
    headers = {"Authorization": authorization(staff)}
    assert_refused(lambda: send(probe, World(staff, 0), headers=headers), 401)


@pytest.mark.parametrize("probe", PROBES)
def test_an_expired_token_is_401_saying_so(send, staff, assert_refused, probe):
    expired = signed(iat=int(time.time()) - 120, exp=int(time.time()) - 60)(staff)
    request = lambda: send(probe, World(staff, 0), headers={"Authorization": expired})  # noqa: E731
    assert assert_refused(request, 401).get_json()["message"] == "Token has expired."


@pytest.mark.parametrize(
    ("role", "change"),
    [
        pytest.param("admin", {"role": "staff"}, id="demoted"),
        pytest.param("staff", {"role": "admin"}, id="promoted"),
        pytest.param("admin", {"isp_id": 2}, id="moved-to-another-isp"),
        pytest.param("staff", {"branch_id": 2}, id="moved-to-another-branch"),
    ],
)
def test_a_token_issued_before_a_role_or_scope_change_is_401(app, client, make_user, role, change):
    account = make_user(role=role)
    change_user(app, account.id, **change)
    assert_error(client.get(ME.path, headers=account.headers), 401)


@pytest.mark.parametrize("probe", PROBES)
@pytest.mark.parametrize("fate", ["deactivated-by-the-cli", "deleted"])
def test_the_token_of_a_deactivated_or_deleted_user_is_401(
    app, runner, send, staff, assert_refused, probe, fate
):
    if fate == "deleted":
        change_user(app, staff.id)
    else:
        assert runner.invoke(args=["users", "deactivate", "--email", staff.email]).exit_code == 0
    assert_refused(lambda: send(probe, World(staff, 0)), 401)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.authenticated], ids=str)
def test_every_endpoint_but_login_is_401_without_a_token(send, world, assert_refused, endpoint):
    assert_refused(lambda: send(endpoint, world, anonymous=True), 401)


# --- Logout ----------------------------------------------------------------------------------


def test_logout_revokes_the_presented_token(client, send, staff, rows):
    response = send(LOGOUT, World(staff, 0))
    assert response.get_json() == {"success": True, "message": "Logged out successfully"}
    [revoked] = rows(RevokedToken)
    claims = claims_of(staff.token)
    assert (revoked["jti"], revoked["user_id"]) == (claims["jti"], staff.id)
    assert int(revoked["expires_at"].timestamp()) == claims["exp"]
    assert_error(client.get(ME.path, headers=staff.headers), 401)
    assert_error(client.post(LOGOUT.path, headers=staff.headers), 401)


def test_logout_revokes_that_token_only(client, staff):
    second = bearer(log_in(client, staff.email).get_json()["data"]["access_token"])
    assert client.post(LOGOUT.path, headers=staff.headers).status_code == 200
    assert client.get(ME.path, headers=second).status_code == 200


@pytest.mark.parametrize("exp", [2**63, 253_402_300_800], ids=["2^63", "year-10000"])
def test_a_token_that_expires_past_the_last_timestamp_logs_out(client, staff, rows, exp):
    """Its revocation is kept until the last moment a timestamp holds."""
    token = signed(exp=exp)(staff)

    assert_success(client.post(LOGOUT.path, headers={"Authorization": token}), 200)

    [revoked] = rows(RevokedToken)
    assert str(revoked["expires_at"]).startswith("9999-12-31 23:59:59")
    assert_error(client.get(ME.path, headers={"Authorization": token}), 401)


def test_a_revoked_token_is_refused_by_every_instance(make_app, client, staff):
    other_instance = make_app().test_client()
    assert other_instance.get(ME.path, headers=staff.headers).status_code == 200
    assert client.post(LOGOUT.path, headers=staff.headers).status_code == 200
    assert_error(other_instance.get(ME.path, headers=staff.headers), 401)


# --- Limits on failed logins -----------------------------------------------------------------
# Counted per (email, address), per address and per email, in the database (shared by every
# worker and instance), atomically before the password is checked.


class StoppedClock:
    """Wall-clock time for the limits' fixed windows, stopped 30 s into an hour, so that a run
    crossing a minute boundary does not start a count over halfway through a test."""

    def __init__(self):
        self.now = time.time() // 3600 * 3600 + 30

    def time(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    stopped = StoppedClock()
    monkeypatch.setattr(login_limits, "time", stopped)
    return stopped


def attempt(client, email, password="wrong password!", address="10.0.0.1"):
    return log_in(client, email, password, environ_base={"REMOTE_ADDR": address})


def assert_429(response) -> None:
    assert "Too many" in assert_error(response, 429)["message"]
    assert int(response.headers["Retry-After"]) > 0


def test_an_attacker_throttled_at_one_address_does_not_use_up_the_owners_hourly_ceiling(
    client, staff, rows
):
    """Refused attempts are not counted, and one refused for its address never reaches the
    email's ceiling (100 an hour)."""
    statuses = [attempt(client, staff.email).status_code for _ in range(120)]
    assert statuses == [401] * 10 + [429] * 110
    assert [row["attempts"] for row in rows(LoginAttempt)] == [10, 10, 10]
    assert attempt(client, staff.email, PASSWORD, address="10.9.9.9").status_code == 200


def test_ten_failures_from_one_address_throttle_that_address_for_that_email(client, staff):
    assert [attempt(client, staff.email).status_code for _ in range(10)] == [401] * 10
    assert_429(attempt(client, staff.email))
    # Even the right password waits there: that is the point of the limit...
    assert_429(attempt(client, staff.email, PASSWORD))
    # ...but the owner, elsewhere, still logs in.
    assert attempt(client, staff.email, PASSWORD, address="10.9.9.9").status_code == 200


def test_a_new_window_starts_each_count_afresh_but_the_hourly_ceiling_keeps_counting(
    client, staff, rows, clock
):
    assert [attempt(client, staff.email).status_code for _ in range(10)] == [401] * 10
    assert_429(attempt(client, staff.email))
    clock.now += 60
    assert attempt(client, staff.email).status_code == 401
    # The minute windows that ended are pruned; the hour's ceiling holds all eleven failures.
    assert sorted(row["attempts"] for row in rows(LoginAttempt)) == [1, 1, 11]


def test_the_email_limit_ignores_case_and_spaces(make_app, staff):
    client = make_app(LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS="2 per minute").test_client()
    assert attempt(client, staff.email).status_code == 401
    assert attempt(client, f"  {staff.email.upper()} ").status_code == 401
    assert_429(attempt(client, staff.email))


def test_failed_logins_per_address_are_limited_whatever_the_email(make_app, staff, admin):
    client = make_app(LOGIN_RATE_LIMIT_PER_ADDRESS="3 per minute").test_client()
    assert [attempt(client, f"nobody{n}@example.test").status_code for n in range(3)] == [401] * 3
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
    assert [attempt(client, staff.email, PASSWORD).status_code for _ in range(5)] == [200] * 5


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


@pytest.fixture
def scrypt_costs(monkeypatch):
    """The (n, r, p) cost of every scrypt computation: the slow step a timing attack measures.

    This patches the standard library, not the service: werkzeug looks hashlib.scrypt up on
    every call, so the count holds whichever module ends up checking passwords."""
    costs = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        costs.append((kwargs["n"], kwargs["r"], kwargs["p"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return costs


def test_an_unknown_email_costs_one_hash_check_like_a_wrong_password(client, staff, scrypt_costs):
    attempt(client, "first-unknown@example.test")  # the decoy hash may be made once, here
    scrypt_costs.clear()
    assert attempt(client, "nobody@example.test").status_code == 401
    assert attempt(client, staff.email).status_code == 401
    unknown, wrong = scrypt_costs  # one check each, at the same cost
    assert unknown == wrong

"""Rate limits (ratelimits.py, on with RATE_LIMITS): each authenticated request is charged to its
caller and to its ISP's ceiling, in this process or in a real Redis (127.0.0.1:6379, database 9,
or TEST_REDIS_URL); the headers never show quota a 429 would contradict; a refused request
changes nothing and uses up nothing; a Redis that stops answering costs no request."""

import logging
import os
import time

import pytest
import redis
from support.client import assert_error, assert_success, call, get, list_tickets
from support.database import database_state
from support.urls import LOGIN, TICKETS, ticket_url

from tickets_service.models import MAX_ID

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def redis_or_skip() -> redis.Redis:
    """The test Redis, emptied; on CI its absence fails, elsewhere it skips."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.flushdb()
    except redis.RedisError as err:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"needs Redis at {REDIS_URL} ({type(err).__name__})")
    return client


@pytest.fixture(autouse=True)
def early_in_a_minute():
    """Each test starts with 5 s or more left in the minute, so no window turns during it."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.05)


@pytest.fixture(params=["process", "redis"])
def limited(request, make_app):
    """limited(per_user, per_isp) -> an app with these limits, counting in this process or in
    Redis."""
    shared = request.param == "redis"
    if shared:
        redis_or_skip()

    def build(per_user: int, per_isp: int = 1000, **settings):
        settings = {"REDIS_URL": REDIS_URL if shared else None, **settings}
        return make_app(
            RATE_LIMITS=True, RATE_LIMIT_PER_USER=per_user, RATE_LIMIT_PER_ISP=per_isp, **settings
        ).test_client()

    return build


def charged(response) -> tuple[int, int, int]:
    return tuple(int(response.headers[name]) for name in HEADERS)


def test_without_rate_limits_nothing_is_counted_or_shown(client, admin):
    for _ in range(3):
        response = list_tickets(client, admin)
        assert_success(response, 200)
        assert not any(name in response.headers for name in HEADERS)


def test_every_authenticated_answer_says_what_is_left(limited, admin):
    client = limited(per_user=10)
    answers = [
        list_tickets(client, admin),
        get(client, admin, ticket_url(MAX_ID)),
        list_tickets(client, admin, status="9"),
        call(client, admin, "POST", TICKETS, {"title": ""}),
    ]

    assert [response.status_code for response in answers] == [200, 404, 422, 422]
    assert [charged(response)[:2] for response in answers] == [(10, 9), (10, 8), (10, 7), (10, 6)]
    assert all(1 <= charged(response)[2] <= 60 for response in answers)


def test_over_the_limit_is_429_with_retry_after_and_changes_nothing(app, limited, admin):
    client = limited(per_user=2)
    for _ in range(2):
        assert_success(list_tickets(client, admin), 200)
    before = database_state(app)

    body = {"title": "One too many", "description": "-", "priority": 1}
    response = call(client, admin, "POST", TICKETS, body)

    assert assert_error(response, 429)["message"].startswith("Too many requests")
    limit, remaining, reset = charged(response)
    assert (limit, remaining) == (2, 0)
    assert response.headers["Retry-After"] == str(reset)
    assert database_state(app) == before


def test_an_isps_ceiling_holds_over_all_its_callers_and_no_other_isp(
    limited, admin, staff, other_admin
):
    client = limited(per_user=3, per_isp=4)
    statuses = [list_tickets(client, caller).status_code for caller in (admin, admin, staff)]
    shown = charged(list_tickets(client, staff))  # the ISP's fourth: its last
    refused = [list_tickets(client, caller) for caller in (admin, staff)]

    assert statuses == [200, 200, 200]
    assert shown == (3, 0, shown[2])  # staff has 1 of 3 left, but the ISP has none
    assert [response.status_code for response in refused] == [429, 429]
    assert_success(list_tickets(client, other_admin), 200)


def test_a_refused_request_uses_up_nothing(limited, admin, staff):
    """admin's third request is refused by admin's own limit: the ISP's count does not move,
    so staff still gets the ISP's last two."""
    client = limited(per_user=2, per_isp=4)
    first = [list_tickets(client, admin).status_code for _ in range(3)]
    then = [list_tickets(client, staff).status_code for _ in range(3)]

    assert (first, then) == ([200, 200, 429], [200, 200, 429])


def test_a_request_without_a_valid_token_is_not_counted(limited, admin):
    client = limited(per_user=1)
    refused = client.get(TICKETS, headers={"Authorization": "Bearer nonsense"})
    login = client.post(LOGIN, json={"email": admin.email, "password": "wrong password"})

    assert (refused.status_code, login.status_code) == (401, 401)
    assert not any(name in refused.headers or name in login.headers for name in HEADERS)
    assert charged(list_tickets(client, admin))[:2] == (1, 0)


# --- API keys: each its own count, its own limit or the default per key ---------------------


def test_a_key_is_counted_apart_from_its_creator_under_its_own_limit(limited, admin, make_key):
    key = make_key(admin, rate_limit=2)
    client = limited(per_user=5, RATE_LIMIT_PER_KEY=50)
    statuses = [get(client, key, TICKETS, isp_id=1, branch_id=1).status_code for _ in range(3)]
    refused = get(client, key, ticket_url(1))

    assert statuses == [200, 200, 429]
    assert charged(refused)[:2] == (2, 0)
    assert refused.headers["Retry-After"] == str(charged(refused)[2])
    assert charged(list_tickets(client, admin))[:2] == (5, 4)  # the admin's count is its own


def test_a_key_without_its_own_limit_has_the_default_per_key(limited, admin, make_key):
    key = make_key(admin)
    client = limited(per_user=5, RATE_LIMIT_PER_KEY=3)
    answers = [get(client, key, TICKETS, isp_id=1, branch_id=1) for _ in range(4)]

    assert [response.status_code for response in answers] == [200, 200, 200, 429]
    assert [charged(response)[:2] for response in answers] == [(3, 2), (3, 1), (3, 0), (3, 0)]


def test_keys_count_toward_their_isps_ceiling(limited, admin, make_key):
    key = make_key(admin, rate_limit=100)
    client = limited(per_user=100, per_isp=3)
    statuses = [get(client, key, TICKETS, isp_id=1, branch_id=1).status_code for _ in range(2)]
    statuses.append(list_tickets(client, admin).status_code)
    assert statuses == [200, 200, 200]
    assert list_tickets(client, admin).status_code == 429
    assert get(client, key, TICKETS, isp_id=1, branch_id=1).status_code == 429


def test_redis_shares_the_counts_between_instances(make_app, admin):
    redis_or_skip()
    one, two = (
        make_app(RATE_LIMITS=True, RATE_LIMIT_PER_USER=3, REDIS_URL=REDIS_URL).test_client()
        for _ in range(2)
    )
    statuses = [list_tickets(client, admin).status_code for client in (one, two, one, two)]

    assert statuses == [200, 200, 200, 429]


def test_without_redis_each_process_counts_its_own(make_app, admin):
    one, two = (
        make_app(RATE_LIMITS=True, RATE_LIMIT_PER_USER=1, REDIS_URL=None).test_client()
        for _ in range(2)
    )
    statuses = [list_tickets(client, admin).status_code for client in (one, two, one)]

    assert statuses == [200, 200, 429]


def test_a_redis_that_does_not_answer_costs_no_request_and_is_logged_once(make_app, admin, caplog):
    closed = "redis://127.0.0.1:1/0"
    client = make_app(RATE_LIMITS=True, RATE_LIMIT_PER_USER=3, REDIS_URL=closed).test_client()

    with caplog.at_level(logging.WARNING, logger="tickets_service.ratelimits"):
        statuses = [list_tickets(client, admin).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]  # counted in the process meanwhile
    outages = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(outages) == 1

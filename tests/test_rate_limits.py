"""Rate limits (ratelimits.py, on unless RATE_LIMITS is off): each authenticated request is
charged to its caller and to its ISP's ceiling, in this process or in a real Redis
(127.0.0.1:6379, database 9, or TEST_REDIS_URL), in memory while far from a limit and in Redis
near it; the headers never show quota a 429 would contradict; a refused request changes nothing
and uses up nothing; a Redis that stops answering costs no request."""

import logging
import os
import shutil
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from support.client import assert_error, assert_success, call, get, list_tickets
from support.database import app_config, database_state
from support.processes import free_port, gunicorns, service_env
from support.urls import LOGIN, TICKETS, ticket_url

from tickets_service import create_app, ratelimits
from tickets_service.extensions import db
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
def early_in_a_minute(request):
    """Each test starts with 5 s or more left in the minute (more where its minute_left mark
    says: tests that start processes, or make many requests), so no window turns during it."""
    marker = request.node.get_closest_marker("minute_left")
    needed = marker.args[0] if marker else 5
    left = 60 - time.time() % 60
    if left < needed:
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


def test_rate_limits_are_on_unless_turned_off(db_url, admin, monkeypatch):
    monkeypatch.delenv("RATE_LIMITS", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = {name: value for name, value in app_config(db_url).items() if name != "RATE_LIMITS"}
    app = create_app(settings)
    try:
        response = list_tickets(app.test_client(), admin)
    finally:
        with app.app_context():
            db.engine.dispose()
    assert charged(response)[:2] == (600, 599)


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


# --- Far from a limit, counted in memory and shared within a sync interval -------------------


def count_charges_in_redis(app) -> list:
    """A list that gets an item each time the app runs its charging script in Redis (which
    still runs)."""
    shared, calls = app.extensions["rate_limits"].shared, []
    script = shared.script

    def counted_script(*args, **kwargs):
        calls.append(1)
        return script(*args, **kwargs)

    shared.script = counted_script
    return calls


def wait_for(condition, seconds: float = 2.0) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "not within the time the sync thread has"
        time.sleep(ratelimits.SYNC_INTERVAL / 2)


def counted(server: redis.Redis, caller: str) -> int:
    """A count of this minute, as Redis holds it (caller: "user:<id>", "key:<id>" or "isp")."""
    window = int(time.time() // ratelimits.WINDOW)
    return int(server.get(f"rl:{{1}}:{caller}:{window}") or 0)


@pytest.mark.minute_left(20)
def test_far_from_its_limits_a_request_is_charged_in_memory_and_reaches_redis_soon(make_app, admin):
    server = redis_or_skip()
    app = make_app(
        RATE_LIMITS=True, RATE_LIMIT_PER_USER=1000, RATE_LIMIT_PER_ISP=10_000, REDIS_URL=REDIS_URL
    )
    client, charges = app.test_client(), count_charges_in_redis(app)
    assert_success(list_tickets(client, admin), 200)  # a count's first charge reads it
    answers = [list_tickets(client, admin) for _ in range(200)]  # while several syncs run

    assert len(charges) == 1  # then no round trip to Redis on the way
    # Each answer one less: a sync on its way to Redis never makes the count look smaller.
    assert [charged(response)[:2] for response in answers] == [
        (1000, 1000 - n) for n in range(2, 202)
    ]
    wait_for(lambda: counted(server, f"user:{admin.id}") == 201)
    assert counted(server, "isp") == 201


@pytest.mark.minute_left(20)
def test_another_instance_reads_a_count_before_it_shows_it(make_app, admin):
    redis_or_skip()
    one, two = (
        make_app(
            RATE_LIMITS=True,
            RATE_LIMIT_PER_USER=1000,
            RATE_LIMIT_PER_ISP=10_000,
            REDIS_URL=REDIS_URL,
        ).test_client()
        for _ in range(2)
    )
    for _ in range(20):
        assert_success(list_tickets(one, admin), 200)
    server = redis.Redis.from_url(REDIS_URL)
    wait_for(lambda: counted(server, f"user:{admin.id}") == 20)

    assert charged(list_tickets(two, admin))[:2] == (1000, 1000 - 21)


@pytest.mark.minute_left(20)
def test_near_its_limit_each_request_is_charged_in_redis_exactly(make_app, admin):
    """60 a minute leaves 50 (the least headroom) after 10: those go in memory (but the first,
    which reads the count), the rest to Redis, and exactly 60 pass, each answer saying what is
    left."""
    server = redis_or_skip()
    assert ratelimits.headroom(60) == 50
    app = make_app(
        RATE_LIMITS=True, RATE_LIMIT_PER_USER=60, RATE_LIMIT_PER_ISP=10_000, REDIS_URL=REDIS_URL
    )
    client, charges = app.test_client(), count_charges_in_redis(app)
    answers = [list_tickets(client, admin) for _ in range(62)]

    assert [response.status_code for response in answers] == [200] * 60 + [429] * 2
    assert [charged(response)[1] for response in answers] == [*range(59, -1, -1), 0, 0]
    assert len(charges) == 1 + 52  # the first read, then the last 52
    assert counted(server, f"user:{admin.id}") == 60


@pytest.mark.minute_left(20)
def test_gunicorns_forked_workers_add_their_counts_to_redis(db_url, admin, tmp_path):
    """As the Procfile runs it: two workers, each counting in memory with a sync thread of its
    own (started in the worker, not the master), between them every request counted once."""
    server = redis_or_skip()
    env = service_env(db_url, RATE_LIMITS="on", RATE_LIMIT_PER_USER="1000", REDIS_URL=REDIS_URL)
    with gunicorns(tmp_path, env, workers=2) as [base]:
        with requests.Session() as http:
            for _ in range(40):
                response = http.get(f"{base}{TICKETS}/stats", headers=admin.headers, timeout=10)
                assert response.status_code == 200
                assert int(response.headers["RateLimit-Limit"]) == 1000
        wait_for(lambda: counted(server, f"user:{admin.id}") == 40)
    assert counted(server, "isp") == 40


@pytest.mark.minute_left(20)
def test_a_runaway_client_on_every_worker_gets_exactly_its_limit(db_url, admin, tmp_path):
    """Eight connections at once over two workers, 130 requests against 100 a minute: 100 pass
    (half of them counted in memory, the rest in Redis) and 30 are 429."""
    server = redis_or_skip()
    env = service_env(db_url, RATE_LIMITS="on", RATE_LIMIT_PER_USER="100", REDIS_URL=REDIS_URL)
    with gunicorns(tmp_path, env, workers=2) as [base]:

        def burst(_n: int) -> list:
            with requests.Session() as http:
                url = f"{base}{TICKETS}/stats"
                return [http.get(url, headers=admin.headers, timeout=10) for _ in range(13)]

        with ThreadPoolExecutor(8) as pool:
            answers = [response for batch in pool.map(burst, range(10)) for response in batch]
    statuses = Counter(response.status_code for response in answers)

    assert statuses == {200: 100, 429: 30}
    assert counted(server, f"user:{admin.id}") == 100


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own, on a free port, which the test may stop and start:
    (its URL, start, stop)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs the redis-server binary (Debian's redis-server package)")
    port = free_port()
    argv = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(tmp_path)]
    running: list = []

    def start():
        running.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        wait_for(lambda: _answers(client), seconds=5)

    def stop():
        process = running.pop()
        process.terminate()
        process.wait(timeout=5)

    yield f"redis://127.0.0.1:{port}/0", start, stop
    while running:
        stop()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.mark.minute_left(20)
def test_an_outage_is_logged_once_however_long_it_lasts_and_so_is_the_recovery(
    make_app, admin, caplog, monkeypatch, own_redis
):
    """Far from the limits a request asks nothing of Redis, so only Redis answering, never a
    charge made in memory, ends an outage."""
    url, start, stop = own_redis
    monkeypatch.setattr(ratelimits, "REDIS_RETRY_SECONDS", 0.1)
    start()
    client = make_app(RATE_LIMITS=True, RATE_LIMIT_PER_USER=1000, REDIS_URL=url).test_client()

    def outages_and_recoveries() -> tuple[int, int]:
        messages = [record.getMessage() for record in caplog.records]
        return (
            len([m for m in messages if "Redis unavailable" in m]),
            len([m for m in messages if "shared once more" in m]),
        )

    with caplog.at_level(logging.WARNING, logger="tickets_service.ratelimits"):
        assert_success(list_tickets(client, admin), 200)  # the count is read: then in memory
        stop()
        statuses = []
        for _ in range(8):
            statuses.append(list_tickets(client, admin).status_code)
            time.sleep(0.1)
        down = outages_and_recoveries()
        start()
        wait_for(lambda: outages_and_recoveries()[1] > 0, seconds=5)
        assert_success(list_tickets(client, admin), 200)

    assert statuses == [200] * 8
    assert down == (1, 0)
    assert outages_and_recoveries() == (1, 1)

"""Idempotency-Key on every POST. The same key, user and request within a day
replay the first answer (status and body, with Idempotent-Replayed: true) and do nothing
twice; another request under the key is 422; keys are per user, 1 to 255 printable characters,
pruned after a day, and only a request that succeeded keeps its key."""

from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError
from support.client import assert_error, assert_success, call, in_parallel
from support.database import database_state, read_rows, set_columns
from support.urls import DELIVERIES, SUBSCRIBERS, TICKETS, USERS, WEBHOOKS, ticket_url

from tickets_service import idempotency
from tickets_service.models import IdempotencyKey, Ticket, TicketHistory, utcnow

HEADER = "Idempotency-Key"
TICKET_BODY = {"title": "No internet", "description": "Since this morning", "priority": 2}
USER_BODY = {"name": "New Agent", "role": "staff", "password": "a long enough password"}


@pytest.fixture
def targets(admin, make_world) -> dict:
    """What the POSTs act on: a live ticket, two deleted ones, two deliveries."""
    world = make_world(admin)
    return {
        "ticket": world.ticket_id,
        "deleted": [world.target("deleted_ticket"), world.make("deleted_ticket")],
        "delivery": [world.target("delivery"), world.make("delivery")],
    }


def request_of(post: str, targets: dict, n: int = 0) -> tuple[str, dict | None]:
    """The URL and body of a POST that honours Idempotency-Key (n=0), or of another request to
    it (n=1: another body, or another target when it has no body)."""
    return {
        "ticket": (TICKETS, {**TICKET_BODY, "title": f"No internet {n}"}),
        "reply": (ticket_url(targets["ticket"], "/reply"), {"message": f"Checked line {n}."}),
        "restore": (ticket_url(targets["deleted"][n], "/restore"), None),
        "subscriber": (SUBSCRIBERS, {"name": f"Jane Roe {n}", "external_id": f"crm-{n}"}),
        "user": (USERS, {**USER_BODY, "email": f"agent{n}@isp.example"}),
        "webhook": (WEBHOOKS, {"url": f"https://93.184.216.34/h{n}", "events": ["ticket.created"]}),
        "redeliver": (f"{DELIVERIES}/{targets['delivery'][n]}/redeliver", None),
    }[post]


POSTS = {"ticket": 201, "reply": 201, "restore": 200, "subscriber": 201, "user": 201}
POSTS |= {"webhook": 201, "redeliver": 201}  # and the status each answers
every_post = pytest.mark.parametrize("post", list(POSTS))


def send(client, account, url, body, key=None):
    headers = {} if key is None else {HEADER: key}
    return call(client, account, "POST", url, body, headers=headers)


def keys_in_db(app) -> list[tuple[int, str]]:
    return [(row["user_id"], row["key"]) for row in read_rows(app, IdempotencyKey)]


# --- Replays ----------------------------------------------------------------------------------


@every_post
def test_the_same_key_user_and_request_replay_the_first_answer(app, client, admin, targets, post):
    url, body = request_of(post, targets)
    first = send(client, admin, url, body, key="retry-1")
    assert_success(first, POSTS[post])
    assert "Idempotent-Replayed" not in first.headers
    after_first = database_state(app)

    again = send(client, admin, url, body, key="retry-1")

    assert again.status_code == first.status_code
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers.get("ETag") == first.headers.get("ETag")
    assert database_state(app) == after_first


@every_post
def test_the_same_key_with_another_request_is_422_and_does_nothing(
    client, admin, targets, assert_refused, post
):
    url, body = request_of(post, targets)
    assert_success(send(client, admin, url, body, key="retry-1"), POSTS[post])
    other_url, other_body = request_of(post, targets, 1)

    response = assert_refused(
        lambda: send(client, admin, other_url, other_body, "retry-1"), 422, HEADER
    )

    assert "Idempotent-Replayed" not in response.headers


def test_the_same_key_on_another_endpoint_is_422(client, admin, assert_refused):
    assert_success(send(client, admin, SUBSCRIBERS, {"name": "Same Key"}, key="k"), 201)
    user = {**USER_BODY, "email": "k@example.test"}

    assert_refused(lambda: send(client, admin, USERS, user, key="k"), 422, HEADER)


def test_without_a_key_the_same_post_twice_creates_twice(app, client, admin):
    first = send(client, admin, TICKETS, TICKET_BODY)
    second = send(client, admin, TICKETS, TICKET_BODY)

    assert assert_success(first, 201)["data"]["id"] != assert_success(second, 201)["data"]["id"]
    assert "Idempotent-Replayed" not in second.headers
    assert len(read_rows(app, Ticket)) == 2


def test_the_same_key_by_another_user_is_independent(app, client, admin, make_user):
    colleague = make_user(isp_id=admin.isp_id, branch_id=admin.branch_id, role="admin")
    mine = send(client, admin, TICKETS, TICKET_BODY, key="shared-key")

    theirs = send(client, colleague, TICKETS, TICKET_BODY, key="shared-key")

    assert assert_success(theirs, 201)["data"]["id"] != assert_success(mine, 201)["data"]["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert [row["created_by_id"] for row in read_rows(app, Ticket)] == [admin.id, colleague.id]
    assert sorted(keys_in_db(app)) == sorted((u, "shared-key") for u in (admin.id, colleague.id))


def test_twenty_concurrent_identical_creates_with_one_key_create_one_ticket(app, admin):
    def create():
        return send(app.test_client(), admin, TICKETS, TICKET_BODY, key="mobile-retry")

    responses = in_parallel([create] * 20)

    created = [r for r in responses if r.status_code == 201]
    assert created, [r.status_code for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409)
        else:
            assert_success(response, 201, "Ticket created successfully")
    assert len({r.get_data() for r in created}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in created) == 1
    (ticket,) = read_rows(app, Ticket)
    assert created[0].get_json()["data"]["id"] == ticket["id"]
    assert [row["action"] for row in read_rows(app, TicketHistory)] == ["created"]
    assert keys_in_db(app) == [(admin.id, "mobile-retry")]


# --- What a key may be ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["x" * 256, "", "tab\there", "bell\x07", "delete\x7f", "caf\u00e9", "snow\u2603man"],
    ids=["256 chars", "empty", "tab", "control", "DEL", "latin-1", "non-latin"],
)
def test_a_key_that_is_too_long_or_not_printable_is_422_and_creates_nothing(
    client, admin, assert_refused, key
):
    assert_refused(lambda: send(client, admin, TICKETS, TICKET_BODY, key=key), 422, HEADER)


@pytest.mark.parametrize("key", ["x" * 255, "a", "order 42 / retry #3 ~!", "8f14e45f-ceea"])
def test_a_key_of_1_to_255_printable_characters_is_accepted(app, client, admin, key):
    response = send(client, admin, TICKETS, TICKET_BODY, key=key)

    assert_success(response, 201)
    assert keys_in_db(app) == [(admin.id, key)]


# --- A day, then pruned -----------------------------------------------------------------------


def age_key(app, user_id: int, key: str, age: timedelta) -> None:
    where = (IdempotencyKey.user_id == user_id) & (IdempotencyKey.key == key)
    set_columns(app, IdempotencyKey, where, created_at=utcnow() - age)


def test_a_key_younger_than_a_day_still_replays(app, client, admin):
    first = send(client, admin, TICKETS, TICKET_BODY, key="k")
    age_key(app, admin.id, "k", timedelta(hours=23, minutes=50))

    again = send(client, admin, TICKETS, TICKET_BODY, key="k")

    assert (again.status_code, again.get_data()) == (201, first.get_data())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(read_rows(app, Ticket)) == 1


def test_an_expired_key_is_pruned_and_can_be_used_for_a_new_request(app, client, admin):
    first = send(client, admin, TICKETS, TICKET_BODY, key="k")
    age_key(app, admin.id, "k", timedelta(hours=24, minutes=5))

    other = send(client, admin, TICKETS, {**TICKET_BODY, "title": "Another"}, key="k")

    assert assert_success(other, 201)["data"]["id"] != first.get_json()["data"]["id"]
    assert "Idempotent-Replayed" not in other.headers
    assert [row["title"] for row in read_rows(app, Ticket)] == ["No internet", "Another"]
    (stored,) = read_rows(app, IdempotencyKey)
    assert (stored["key"], stored["body"]) == ("k", other.get_data(as_text=True))


def test_a_users_next_keyed_request_prunes_its_expired_keys(app, client, admin):
    for key in ("old-1", "old-2", "recent"):
        assert_success(send(client, admin, TICKETS, {**TICKET_BODY, "title": key}, key=key), 201)
    age_key(app, admin.id, "old-1", timedelta(days=3))
    age_key(app, admin.id, "old-2", timedelta(hours=25))
    age_key(app, admin.id, "recent", timedelta(hours=2))

    assert_success(send(client, admin, TICKETS, TICKET_BODY, key="new"), 201)

    assert sorted(keys_in_db(app)) == [(admin.id, "new"), (admin.id, "recent")]


# --- Only a request that succeeded keeps its key ------------------------------------------------


@pytest.mark.parametrize(
    ("who", "url", "body", "status"),
    [
        ("admin", TICKETS, {**TICKET_BODY, "priority": 9}, 422),
        ("admin", TICKETS, {**TICKET_BODY, "isp_id": 2}, 403),
        ("staff", SUBSCRIBERS, {"name": "Jane Roe"}, 403),
        ("admin", ticket_url(2_000_000, "/reply"), {"message": "Hello?"}, 404),
        ("admin", "live ticket restore", None, 409),
    ],
    ids=["422 body", "403 scope", "403 role", "404 ticket", "409 not deleted"],
)
def test_a_failed_first_request_leaves_no_key_behind(
    client, admin, staff, targets, assert_refused, who, url, body, status
):
    if url == "live ticket restore":
        url = ticket_url(targets["ticket"], "/restore")
    account = admin if who == "admin" else staff

    assert_refused(lambda: send(client, account, url, body, key="first-try"), status)
    # The key is free: a corrected request under it is done, not refused as another request.
    fixed = send(client, admin, TICKETS, TICKET_BODY, key="first-try")
    assert_success(fixed, 201)
    assert "Idempotent-Replayed" not in fixed.headers


# --- A first request that dies before it has answered ------------------------------------------


class Killed(BaseException):
    """The worker process dies (a deploy, a gunicorn timeout): nothing after this line runs."""


@pytest.mark.parametrize("death", ["process killed", "database dropped"])
def test_a_first_request_that_dies_before_answering_leaves_nothing_and_the_retry_creates_once(
    app, client, admin, monkeypatch, death
):
    """The change, the key and its stored answer commit together: a request that dies while
    storing its answer has changed nothing, so the retry does the work once and answers."""

    def dies(*_args):
        if death == "process killed":
            raise Killed
        raise OperationalError("UPDATE idempotency_keys", {}, Exception("connection lost"))

    store = idempotency._store
    monkeypatch.setattr(idempotency, "_store", dies)
    if death == "process killed":
        with pytest.raises(Killed):
            send(client, admin, TICKETS, TICKET_BODY, key="k")
    else:
        assert_error(send(client, admin, TICKETS, TICKET_BODY, key="k"), 503)
    monkeypatch.setattr(idempotency, "_store", store)
    assert read_rows(app, Ticket) == []
    assert read_rows(app, IdempotencyKey) == []

    retry = send(client, admin, TICKETS, TICKET_BODY, key="k")

    (ticket,) = read_rows(app, Ticket)
    assert assert_success(retry, 201)["data"]["id"] == ticket["id"]
    replay = send(client, admin, TICKETS, TICKET_BODY, key="k")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == retry.get_json()

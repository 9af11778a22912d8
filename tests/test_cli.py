"""Issue 2, point 13: the operator commands print what they created as one JSON object, refuse
bad input with a clear one-line message and exit status 1, and seed-demo can run twice."""

import json
import re

import pytest
from werkzeug.security import check_password_hash

from tickets_service.models import Subscriber, Ticket, TicketReply, User

from conftest import PASSWORD

NEW_PASSWORD = "a new and long enough password"
USER_OPTIONS = {
    "--isp-id": "3",
    "--branch-id": "2",
    "--name": "Ada Lovelace",
    "--email": "ada@example.test",
    "--role": "admin",
}
SUBSCRIBER_OPTIONS = {
    "--isp-id": "3",
    "--branch-id": "2",
    "--name": "John Doe",
    "--phone": "+15550100",
    "--email": "john@example.test",
}
MODELS = (User, Subscriber, Ticket, TicketReply)


def arguments(options: dict, **changes) -> list[str]:
    """Command-line options; a change to None leaves that option out."""
    merged = {**options, **{f"--{name.replace('_', '-')}": v for name, v in changes.items()}}
    return [part for name, value in merged.items() if value is not None for part in (name, value)]


def create_user(runner, password=NEW_PASSWORD, **changes):
    extra = [] if password is None else ["--password", password]
    return runner.invoke(args=["users", "create", *arguments(USER_OPTIONS, **changes), *extra])


def printed_object(result) -> dict:
    """stdout holds exactly one JSON object, on one line."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert isinstance(record, dict)
    return record


def assert_refused(result, mention: str) -> None:
    """Exit status 1, one clear line on stderr naming the problem, nothing on stdout."""
    assert result.exit_code == 1
    assert result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "Traceback" not in message
    assert re.search(mention, message, re.IGNORECASE)


def table_sizes(rows) -> dict:
    return {model.__tablename__: len(rows(model)) for model in MODELS}


# --- users create ----------------------------------------------------------------------------


def test_users_create_prints_the_created_user(runner, fetch):
    result = create_user(runner)
    assert result.exit_code == 0
    record = printed_object(result)
    row = fetch(User, record["id"])
    assert row is not None
    assert {name: record[name] for name in ("name", "email", "role", "isp_id", "branch_id")} == {
        "name": "Ada Lovelace",
        "email": "ada@example.test",
        "role": "admin",
        "isp_id": 3,
        "branch_id": 2,
    }
    assert {name: row[name] for name in ("name", "email", "role", "isp_id", "branch_id")} == {
        name: record[name] for name in ("name", "email", "role", "isp_id", "branch_id")
    }
    assert row["is_active"] is True


def test_users_create_prints_no_password_or_hash(runner, rows):
    result = create_user(runner)
    assert result.exit_code == 0
    (user,) = rows(User)
    output = result.stdout + result.stderr
    assert NEW_PASSWORD not in output
    assert user["password_hash"] not in output
    assert not [key for key in printed_object(result) if "password" in key.lower()]


def test_users_create_stores_a_hash_of_the_password(runner, rows):
    assert create_user(runner).exit_code == 0
    (user,) = rows(User)
    assert user["password_hash"] != NEW_PASSWORD
    assert check_password_hash(user["password_hash"], NEW_PASSWORD)


def test_created_user_can_log_in(runner, client):
    record = printed_object(create_user(runner))
    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.test", "password": NEW_PASSWORD}
    )
    assert response.status_code == 200
    assert response.get_json()["data"]["user"]["id"] == record["id"]


def test_users_create_prompts_for_the_password_when_not_given(runner, rows):
    result = runner.invoke(
        args=["users", "create", *arguments(USER_OPTIONS)],
        input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n",
    )
    assert result.exit_code == 0
    (user,) = rows(User)
    assert check_password_hash(user["password_hash"], NEW_PASSWORD)


def test_users_create_keeps_stdout_to_the_json_object_when_prompting(runner):
    """The prompt must not break `... | jq`: only the record goes to stdout."""
    result = runner.invoke(
        args=["users", "create", *arguments(USER_OPTIONS)],
        input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n",
    )
    assert result.exit_code == 0
    assert printed_object(result)["email"] == "ada@example.test"


BAD_USER_INPUT = [
    # (option changes, password, pattern the message must contain)
    pytest.param({"email": "not-an-email"}, NEW_PASSWORD, "email", id="bad-email"),
    pytest.param({"email": None}, NEW_PASSWORD, "email", id="missing-email"),
    pytest.param({"role": "owner"}, NEW_PASSWORD, "role", id="bad-role"),
    pytest.param({"role": None}, NEW_PASSWORD, "role", id="missing-role"),
    pytest.param({"isp_id": "abc"}, NEW_PASSWORD, "isp", id="isp-id-word"),
    pytest.param({"isp_id": "1.5"}, NEW_PASSWORD, "isp", id="isp-id-decimal"),
    pytest.param({"isp_id": "-1"}, NEW_PASSWORD, "isp", id="isp-id-negative"),
    pytest.param({"isp_id": str(10**20)}, NEW_PASSWORD, "isp", id="isp-id-huge"),
    pytest.param({"branch_id": "two"}, NEW_PASSWORD, "branch", id="branch-id-word"),
    pytest.param({"name": ""}, NEW_PASSWORD, "name", id="empty-name"),
    pytest.param({}, "short", "password", id="short-password"),
    pytest.param({}, "", "password", id="empty-password"),
]


@pytest.mark.parametrize(("changes", "password", "mention"), BAD_USER_INPUT)
def test_users_create_refuses_bad_input(runner, snapshot, changes, password, mention):
    before = snapshot()
    result = create_user(runner, password, **changes)
    assert_refused(result, mention)
    assert snapshot() == before


@pytest.mark.parametrize("spelling", [str, str.upper], ids=["same-case", "other-case"])
def test_users_create_refuses_a_duplicate_email(runner, staff, snapshot, spelling):
    before = snapshot()
    result = create_user(runner, email=spelling(staff.email))
    assert_refused(result, re.escape(staff.email))
    assert snapshot() == before


# --- users deactivate ------------------------------------------------------------------------


def test_users_deactivate_marks_the_user_inactive(runner, staff, fetch):
    result = runner.invoke(args=["users", "deactivate", "--email", staff.email])
    assert result.exit_code == 0
    assert fetch(User, staff.id)["is_active"] is False


def test_users_deactivate_leaves_other_users_active(runner, staff, admin, fetch):
    runner.invoke(args=["users", "deactivate", "--email", staff.email])
    assert fetch(User, admin.id)["is_active"] is True


def test_deactivated_user_cannot_log_in(runner, client, staff):
    assert runner.invoke(args=["users", "deactivate", "--email", staff.email]).exit_code == 0
    response = client.post("/api/v1/auth/login", json={"email": staff.email, "password": PASSWORD})
    assert response.status_code == 401


def test_deactivated_users_token_stops_working(runner, client, staff):
    assert runner.invoke(args=["users", "deactivate", "--email", staff.email]).exit_code == 0
    response = client.get("/api/v1/auth/me", headers=staff.headers)
    assert response.status_code == 401


def test_users_deactivate_refuses_an_unknown_email(runner, staff, snapshot):
    before = snapshot()
    result = runner.invoke(args=["users", "deactivate", "--email", "nobody@example.test"])
    assert_refused(result, "nobody@example.test")
    assert snapshot() == before


# --- subscribers create ----------------------------------------------------------------------


def test_subscribers_create_prints_the_created_subscriber(runner, fetch):
    result = runner.invoke(args=["subscribers", "create", *arguments(SUBSCRIBER_OPTIONS)])
    assert result.exit_code == 0
    record = printed_object(result)
    expected = {
        "isp_id": 3,
        "branch_id": 2,
        "name": "John Doe",
        "phone": "+15550100",
        "email": "john@example.test",
    }
    assert {name: record[name] for name in expected} == expected
    row = fetch(Subscriber, record["id"])
    assert {name: row[name] for name in expected} == expected


def test_subscribers_create_without_phone_or_email(runner, fetch):
    options = arguments(SUBSCRIBER_OPTIONS, phone=None, email=None)
    result = runner.invoke(args=["subscribers", "create", *options])
    assert result.exit_code == 0
    record = printed_object(result)
    row = fetch(Subscriber, record["id"])
    assert (record["phone"], record["email"]) == (None, None)
    assert (row["phone"], row["email"]) == (None, None)


BAD_SUBSCRIBER_INPUT = [
    pytest.param({"isp_id": "abc"}, "isp", id="isp-id-word"),
    pytest.param({"isp_id": None}, "isp", id="isp-id-missing"),
    pytest.param({"branch_id": "1.5"}, "branch", id="branch-id-decimal"),
    pytest.param({"name": None}, "name", id="name-missing"),
    pytest.param({"name": "   "}, "name", id="name-blank"),
    pytest.param({"email": "john-at-example"}, "email", id="bad-email"),
]


@pytest.mark.parametrize(("changes", "mention"), BAD_SUBSCRIBER_INPUT)
def test_subscribers_create_refuses_bad_input(runner, snapshot, changes, mention):
    before = snapshot()
    result = runner.invoke(
        args=["subscribers", "create", *arguments(SUBSCRIBER_OPTIONS, **changes)]
    )
    assert_refused(result, mention)
    assert snapshot() == before


# --- seed-demo -------------------------------------------------------------------------------


def test_seed_demo_creates_a_demo_isp(runner, rows):
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    users = rows(User)
    isp_ids = {user["isp_id"] for user in users}
    assert len(isp_ids) == 1
    assert {user["role"] for user in users} >= {"admin", "staff"}
    assert rows(Subscriber)
    assert {subscriber["isp_id"] for subscriber in rows(Subscriber)} == isp_ids
    tickets = rows(Ticket)
    assert tickets
    assert {ticket["isp_id"] for ticket in tickets} == isp_ids
    replied = {reply["ticket_id"] for reply in rows(TicketReply)}
    assert replied
    assert replied <= {ticket["id"] for ticket in tickets}


def test_seed_demo_twice_duplicates_nothing(runner, rows):
    first = runner.invoke(args=["seed-demo"])
    after_first = table_sizes(rows)
    second = runner.invoke(args=["seed-demo"])
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert table_sizes(rows) == after_first


def printed_logins(output: str) -> list[dict]:
    """The {"email": ..., "password": ...} objects seed-demo prints for the reader."""
    found = []
    for text in re.findall(r"\{[^{}]*\}", output):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and {"email", "password"} <= value.keys():
            found.append(value)
    return found


@pytest.mark.parametrize("runs", [1, 2])
def test_seed_demo_prints_logins_that_work(runner, client, runs):
    for _ in range(runs):
        result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0
    logins = printed_logins(result.stdout)
    assert logins
    for credentials in logins:
        response = client.post("/api/v1/auth/login", json=credentials)
        assert response.status_code == 200

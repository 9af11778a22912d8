"""The operator commands print what they created as one JSON object, refuse bad input with a
clear one-line message and exit status 1, and seed-demo can run twice."""

import json
import re
from itertools import pairwise

import pytest
from support.catalogue import LOGIN
from support.client import PASSWORD

from tickets_service.models import Subscriber, Ticket, TicketReply, User

NEW_PASSWORD = "a new and long enough password"
# What `users create` and `subscribers create` are given, and store.
USER = {"isp_id": 3, "branch_id": 2, "name": "Ada Lovelace", "email": "ada@example.test"}
USER["role"] = "admin"
SUBSCRIBER = {"isp_id": 3, "branch_id": 2, "name": "John Doe", "phone": "+15550100"}
SUBSCRIBER["email"] = "john@example.test"


def arguments(values: dict, **changes) -> list[str]:
    """The values as command-line options; a change to None leaves that option out."""
    merged = {f"--{name.replace('_', '-')}": value for name, value in {**values, **changes}.items()}
    return [
        part for name, value in merged.items() if value is not None for part in (name, str(value))
    ]


def create_user(runner, password=NEW_PASSWORD, **changes):
    extra = [] if password is None else ["--password", password]
    return runner.invoke(args=["users", "create", *arguments(USER, **changes), *extra])


def logs_in(client, email, password) -> bool:
    response = client.post(LOGIN.path, json={"email": email, "password": password})
    assert response.status_code in {200, 401}
    return response.status_code == 200


def printed_object(result) -> dict:
    """Exit status 0, and stdout holds exactly one JSON object, on one line."""
    assert result.exit_code == 0, result.output
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


# --- users create ----------------------------------------------------------------------------


def test_users_create_prints_the_user_it_stored(runner, fetch):
    record = printed_object(create_user(runner))
    row = fetch(User, record["id"])
    assert {name: record[name] for name in USER} == USER
    assert {name: row[name] for name in USER} == USER
    assert row["is_active"] is True


def test_users_create_stores_only_a_hash_and_prints_neither(runner, rows):
    result = create_user(runner)
    [user] = rows(User)
    assert user["password_hash"] != NEW_PASSWORD
    output = result.stdout + result.stderr
    assert NEW_PASSWORD not in output
    assert user["password_hash"] not in output
    assert not [key for key in printed_object(result) if "password" in key.lower()]


@pytest.mark.parametrize("prompted", [False, True], ids=["--password", "prompted"])
def test_a_created_user_logs_in_with_the_password_given(runner, client, prompted):
    """Prompted on stderr, so stdout stays the one JSON object a script parses."""
    if prompted:
        result = runner.invoke(
            args=["users", "create", *arguments(USER)],
            input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n",
        )
    else:
        result = create_user(runner)
    assert printed_object(result)["email"] == "ada@example.test"
    assert logs_in(client, "ada@example.test", NEW_PASSWORD)


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
    assert_refused(create_user(runner, password, **changes), mention)
    assert snapshot() == before


@pytest.mark.parametrize("spelling", [str, str.upper], ids=["same-case", "other-case"])
def test_users_create_refuses_a_duplicate_email(runner, staff, snapshot, spelling):
    before = snapshot()
    assert_refused(create_user(runner, email=spelling(staff.email)), "email already exists")
    assert snapshot() == before


# --- users deactivate and set-password -------------------------------------------------------
# What a deactivated user's token and login get: see test_auth.


def test_users_deactivate_deactivates_that_user_only(runner, staff, admin, fetch):
    record = printed_object(runner.invoke(args=["users", "deactivate", "--email", staff.email]))
    assert record["id"] == staff.id
    assert fetch(User, staff.id)["is_active"] is False
    assert fetch(User, admin.id)["is_active"] is True


@pytest.mark.parametrize("prompted", [False, True], ids=["--password", "prompted"])
def test_users_set_password_replaces_the_password(runner, client, staff, prompted):
    args = ["users", "set-password", "--email", staff.email]
    if prompted:
        result = runner.invoke(args=args, input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    else:
        result = runner.invoke(args=[*args, "--password", NEW_PASSWORD])
    assert printed_object(result)["id"] == staff.id
    assert logs_in(client, staff.email, NEW_PASSWORD)
    assert not logs_in(client, staff.email, PASSWORD)


# (command, --email, --password or None, pattern the message must contain). Bytes a shell passes
# that are no UTF-8 arrive as surrogates.
NOBODY, LONG_ENOUGH = "nobody@example.test", "long enough!"
BAD_COMMANDS = {
    "deactivate-unknown-email": ("deactivate", NOBODY, None, NOBODY),
    "set-password-unknown-email": ("set-password", NOBODY, LONG_ENOUGH, "no user"),
    "set-password-too-short": ("set-password", "{email}", "short", "between 8 and 1024"),
    "set-password-too-long": ("set-password", "{email}", "x" * 1025, "between 8 and 1024"),
    "set-password-not-utf8": ("set-password", "{email}", "abcdefgh\udcff", "UTF-8"),
    "set-password-email-not-utf8": ("set-password", "a\udcff@example.test", LONG_ENOUGH, "no user"),
    "deactivate-email-not-utf8": ("deactivate", "a\udcff@example.test", None, "no user"),
}


@pytest.mark.parametrize(
    ("command", "email", "password", "mention"), BAD_COMMANDS.values(), ids=BAD_COMMANDS
)
def test_users_commands_refuse_bad_input(
    runner, client, staff, snapshot, command, email, password, mention
):
    before = snapshot()
    args = arguments({"email": email.format(email=staff.email), "password": password})
    assert_refused(runner.invoke(args=["users", command, *args]), mention)
    assert snapshot() == before
    assert logs_in(client, staff.email, PASSWORD)


def test_the_webhook_worker_refuses_a_negative_idle_time(runner):
    result = runner.invoke(args=["webhooks", "work", "--once", "--idle", "-5"])
    assert result.exit_code == 2
    assert "-5" in result.output and "Traceback" not in result.output


# --- subscribers create ----------------------------------------------------------------------


@pytest.mark.parametrize("contact", [True, False], ids=["with-contact", "without-phone-or-email"])
def test_subscribers_create_prints_the_subscriber_it_stored(runner, fetch, contact):
    changes = {} if contact else {"phone": None, "email": None}
    result = runner.invoke(args=["subscribers", "create", *arguments(SUBSCRIBER, **changes)])
    record = printed_object(result)
    expected = {**SUBSCRIBER, **changes}
    assert {name: record[name] for name in expected} == expected
    row = fetch(Subscriber, record["id"])
    assert {name: row[name] for name in expected} == expected


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
    options = arguments(SUBSCRIBER, **changes)
    assert_refused(runner.invoke(args=["subscribers", "create", *options]), mention)
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


def test_seed_demo_prints_logins_that_work_and_twice_duplicates_nothing(runner, client, snapshot):
    for run in (1, 2):
        result = runner.invoke(args=["seed-demo"])
        assert result.exit_code == 0
        if run == 1:
            after_first = snapshot()
        logins = printed_logins(result.stdout)
        assert logins
        assert all(logs_in(client, login["email"], login["password"]) for login in logins)
    assert but_logins(snapshot()) == but_logins(after_first)


def but_logins(state: dict) -> dict:
    """The state less the audit trail's logins (each check above logs in once more)."""
    trail = [entry for entry in state["audit_entries"] if entry["action"] != "login"]
    return {**state, "audit_entries": trail}


# --- seed-bulk -------------------------------------------------------------------------------


def test_seed_bulk_loads_a_branch_one_second_apart_with_replies_on_the_newest(
    runner, admin, rows, client
):
    result = runner.invoke(
        args=["seed-bulk", "--isp-id", "1", "--branch-id", "2", "--tickets", "30", "--replies", "4"]
    )

    assert result.exit_code == 0, result.output
    newest = json.loads(result.output.strip().splitlines()[-1])["newest_ticket_id"]
    tickets = sorted(rows(Ticket), key=lambda t: t["created_at"], reverse=True)
    assert len(tickets) == 30 and tickets[0]["id"] == newest
    assert {(t["isp_id"], t["branch_id"]) for t in tickets} == {(1, 2)}
    steps = {(a["created_at"] - b["created_at"]).total_seconds() for a, b in pairwise(tickets)}
    assert steps == {1.0}
    assert {t["status"] for t in tickets} == {0, 1, 2, 3}
    assert {t["priority"] for t in tickets} == {1, 2, 3}
    assert len({t["subscriber_id"] for t in tickets}) == 30  # a thousand subscribers made
    assert [r["ticket_id"] for r in rows(TicketReply)] == [newest] * 4
    assert tickets[0]["reply_count"] == 4
    # The counts stay right: the stats read them.
    stats = client.get(
        "/api/v1/tickets/stats", query_string={"branch_id": 2}, headers=admin.headers
    ).get_json()["data"]
    assert sum(stats["by_status"].values()) == 30
    assert stats["by_status"] == {str(s): sum(t["status"] == s for t in tickets) for s in range(5)}


@pytest.mark.parametrize(
    ("args", "mention"),
    [
        (["--isp-id", "9", "--branch-id", "1", "--tickets", "5"], "no user"),
        (["--isp-id", "1", "--branch-id", "1", "--tickets", "0"], "--tickets"),
        (["--isp-id", "0", "--branch-id", "1", "--tickets", "5"], "--isp-id"),
    ],
)
def test_seed_bulk_refuses_bad_input(runner, admin, snapshot, args, mention):
    before = snapshot()
    result = runner.invoke(args=["seed-bulk", *args])
    assert result.exit_code != 0
    assert mention in result.output
    assert snapshot() == before


# --- A database that is down or not migrated ----------------------------------------------------

UNREACHABLE = "postgresql://postgres@127.0.0.1:9/unreachable"
COMMANDS = {
    "users create": ["users", "create", *arguments(USER), "--password", NEW_PASSWORD],
    "users deactivate": ["users", "deactivate", "--email", "ada@example.test"],
    "users set-password": ["users", "set-password", "--email", "a@b.test", "--password", "x" * 8],
    "subscribers create": ["subscribers", "create", *arguments(SUBSCRIBER)],
    "seed-demo": ["seed-demo"],
    "seed-bulk": ["seed-bulk", "--isp-id", "1", "--branch-id", "1", "--tickets", "2"],
}


@pytest.mark.parametrize("database", ["unreachable", "not migrated"])
@pytest.mark.parametrize("args", COMMANDS.values(), ids=COMMANDS)
def test_a_database_down_or_not_migrated_is_one_line_and_status_1(
    make_app, tmp_path, database, args
):
    url = UNREACHABLE if database == "unreachable" else f"sqlite:///{tmp_path / 'empty.db'}"
    result = make_app(SQLALCHEMY_DATABASE_URI=url).test_cli_runner().invoke(args=args)

    assert_refused(result, "the database refused")

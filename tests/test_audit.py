"""The audit trail: every write to a user, a subscriber or a webhook, and every login, failed
login and logout, has its entry, written with the change (never without it), with secrets
redacted; admins read their own ISP's entries, filtered and paged by keyset; old entries are
pruned by a command. (Who may call GET /audit, and how it refuses bad query strings, is the
endpoint catalogue's: tests/support/catalogue.py.)"""

from datetime import timedelta

import pytest
from support.client import PASSWORD, assert_error, assert_success, call, get
from support.database import saved, set_columns
from support.urls import DELIVERIES, LOGIN, LOGOUT, SUBSCRIBERS, USERS, WEBHOOKS

from tickets_service.audit import REDACTED
from tickets_service.models import AuditEntry, WebhookDelivery, utcnow

AUDIT = "/api/v1/audit"
NEW_USER = {"name": "Nina", "email": "nina@example.test", "role": "staff", "password": "8 chars!"}
HOOK = {"url": "https://93.184.216.34/hook", "events": ["ticket.created"]}


def entries(rows) -> list[dict]:
    return rows(AuditEntry)


def only_entry(rows, **expected) -> dict:
    """The one entry of the table, which has these values."""
    (entry,) = entries(rows)
    assert {name: entry[name] for name in expected} == expected
    return entry


def by(account) -> dict:
    """The columns saying an entry's actor is this account."""
    return {"actor_type": "user", "actor_id": account.id, "actor_name": account.name}


# --- What is recorded -------------------------------------------------------------------------


def test_creating_a_user_records_its_values_with_the_password_redacted(client, admin, rows):
    response = call(client, admin, "POST", USERS, NEW_USER, headers={"X-Request-ID": "req-1"})
    user_id = assert_success(response, 201)["data"]["id"]

    entry = only_entry(rows, action="created", object_type="user", object_id=user_id, **by(admin))
    assert entry["isp_id"] == admin.isp_id
    assert (entry["ip"], entry["request_id"]) == ("127.0.0.1", "req-1")
    assert entry["changes"] == {
        "name": [None, "Nina"],
        "email": [None, "nina@example.test"],
        "role": [None, "staff"],
        "branch_id": [None, admin.branch_id],
        "is_active": [None, True],
        "password_hash": [None, REDACTED],
    }
    assert "8 chars!" not in str(entry) and "scrypt" not in str(entry)


def test_an_update_records_old_and_new_values_and_a_no_op_records_nothing(
    client, admin, staff, rows
):
    body = {"name": "Renamed", "role": "admin", "password": "another pass"}
    assert_success(call(client, admin, "PUT", f"{USERS}/{staff.id}", body), 200)
    assert_success(call(client, admin, "PUT", f"{USERS}/{staff.id}", {"name": "Renamed"}), 200)

    entry = only_entry(rows, action="updated", object_type="user", object_id=staff.id)
    assert entry["changes"] == {
        "name": [staff.name, "Renamed"],
        "role": ["staff", "admin"],
        "password_hash": [REDACTED, REDACTED],
    }


def test_a_refused_write_records_nothing(client, admin, staff, rows):
    """The entry is written with its change: a change that is refused leaves neither."""
    taken = {**NEW_USER, "email": staff.email}
    assert_error(call(client, admin, "POST", USERS, taken), 409)
    assert_error(call(client, admin, "PUT", f"{USERS}/{admin.id}", {"is_active": False}), 409)
    assert_error(call(client, staff, "POST", SUBSCRIBERS, {"name": "Sam"}), 403)

    assert entries(rows) == []


def test_a_replayed_create_records_one_entry(client, admin, rows):
    key = {"Idempotency-Key": "audit-once"}
    for _ in range(2):
        assert_success(call(client, admin, "POST", USERS, NEW_USER, headers=key), 201)

    assert len(entries(rows)) == 1


def test_subscriber_writes_and_syncs_are_recorded_as_they_change_it(client, admin, rows):
    created = call(client, admin, "POST", SUBSCRIBERS, {"name": "Sam", "phone": "+1 555"})
    sub_id = assert_success(created, 201)["data"]["id"]
    assert_success(call(client, admin, "PUT", f"{SUBSCRIBERS}/{sub_id}", {"name": "Samuel"}), 200)
    synced = f"{SUBSCRIBERS}/by-external-id/crm-7"
    new_id = assert_success(call(client, admin, "PUT", synced, {"name": "Ola"}), 201)["data"]["id"]
    assert_success(call(client, admin, "PUT", synced, {"name": "Ola"}), 200)  # the same again
    assert_success(
        call(client, admin, "PUT", synced, {"name": "Ola", "email": "ola@example.test"}), 200
    )

    got = [(e["action"], e["object_id"], e["changes"]) for e in entries(rows)]
    assert got == [
        (
            "created",
            sub_id,
            {
                "name": [None, "Sam"],
                "phone": [None, "+1 555"],
                "email": [None, None],
                "external_id": [None, None],
                "branch_id": [None, admin.branch_id],
            },
        ),
        ("updated", sub_id, {"name": ["Sam", "Samuel"]}),
        (
            "created",
            new_id,
            {
                "name": [None, "Ola"],
                "phone": [None, None],
                "email": [None, None],
                "external_id": [None, "crm-7"],
                "branch_id": [None, admin.branch_id],
            },
        ),
        ("updated", new_id, {"email": [None, "ola@example.test"]}),
    ]
    assert {e["object_type"] for e in entries(rows)} == {"subscriber"}


def test_webhook_writes_are_recorded_and_the_secret_never_is(client, admin, rows, make_world):
    secret = assert_success(call(client, admin, "POST", WEBHOOKS, HOOK), 201)["data"]["secret"]
    hook_id = entries(rows)[0]["object_id"]
    delivery = make_world(admin).target("delivery")
    redelivered = call(client, admin, "POST", f"{DELIVERIES}/{delivery}/redeliver")
    again = assert_success(redelivered, 201)["data"]["delivery_id"]
    assert_success(call(client, admin, "DELETE", f"{WEBHOOKS}/{hook_id}"), 200)

    created, redelivery, deleted = entries(rows)
    assert created["changes"] == {
        "url": [None, HOOK["url"]],
        "events": [None, HOOK["events"]],
        "secret": [None, REDACTED],
    }
    origin = next(d for d in rows(WebhookDelivery) if d["delivery_id"] == delivery)
    assert (redelivery["action"], redelivery["object_type"]) == ("redelivered", "webhook")
    assert redelivery["object_id"] == origin["endpoint_id"]
    assert redelivery["changes"] == {"delivery_id": [delivery, again]}
    assert (deleted["action"], deleted["object_id"]) == ("deleted", hook_id)
    assert deleted["changes"] == {
        "url": [HOOK["url"], None],
        "events": [HOOK["events"], None],
        "secret": [REDACTED, None],
    }
    assert all(secret not in str(entry) and "whsec_" not in str(entry) for entry in entries(rows))


def test_logins_failed_logins_and_logouts_are_recorded(client, admin, rows):
    assert_error(client.post(LOGIN, json={"email": admin.email, "password": "wrong!"}), 401)
    assert_error(client.post(LOGIN, json={"email": "nobody@example.test", "password": "x"}), 401)
    token = assert_success(
        client.post(LOGIN, json={"email": admin.email, "password": PASSWORD}), 200
    )
    bearer = {"Authorization": f"Bearer {token['data']['access_token']}"}
    assert_success(client.post(LOGOUT, headers=bearer), 200)

    got = [
        (e["action"], e["isp_id"], e["actor_id"], e["actor_name"], e["object_id"])
        for e in entries(rows)
    ]
    assert got == [
        ("login_failed", admin.isp_id, admin.id, admin.name, admin.id),
        ("login_failed", None, None, "(unknown email)", None),
        ("login", admin.isp_id, admin.id, admin.name, admin.id),
        ("logout", admin.isp_id, admin.id, admin.name, admin.id),
    ]
    assert all(e["ip"] == "127.0.0.1" and e["object_type"] == "user" for e in entries(rows))
    assert "wrong!" not in str(entries(rows))


def test_an_operators_command_is_recorded_as_the_systems(runner, rows):
    options = {"isp-id": "3", "branch-id": "1", "name": "Op", "email": "op@example.test"}
    options.update(role="admin", password="8 chars!")
    arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
    result = runner.invoke(args=["users", "create", *arguments])
    assert result.exit_code == 0, result.output

    entry = only_entry(rows, actor_type="system", actor_id=None, actor_name="system", isp_id=3)
    assert (entry["action"], entry["ip"], entry["request_id"]) == ("created", None, None)


# --- Reading the trail ------------------------------------------------------------------------


@pytest.fixture
def trail(app, client, admin, staff, other_admin) -> dict:
    """Entries of ISP 1 (three by the admin, one by staff) and one of ISP 2; their ids."""
    made = {}
    for name in ("first", "second"):
        body = {**NEW_USER, "email": f"{name}@example.test", "name": name}
        made[name] = assert_success(call(client, admin, "POST", USERS, body), 201)["data"]["id"]
    assert_success(call(client, admin, "PUT", f"{USERS}/{made['first']}", {"name": "Fir"}), 200)
    assert_success(client.post(LOGIN, json={"email": staff.email, "password": PASSWORD}), 200)
    assert_success(call(client, other_admin, "POST", SUBSCRIBERS, {"name": "Elsewhere"}), 201)
    return made


def listed(client, account, **query) -> tuple[list, dict]:
    body = assert_success(get(client, account, AUDIT, **query), 200)
    return [(e["action"], e["object_type"], e["object_id"]) for e in body["data"]], body["meta"]


def test_an_admin_reads_their_own_isps_entries_newest_first(client, admin, staff, trail):
    shown, meta = listed(client, admin)

    assert shown == [
        ("login", "user", staff.id),
        ("updated", "user", trail["first"]),
        ("created", "user", trail["second"]),
        ("created", "user", trail["first"]),
    ]
    assert meta == {"per_page": 50, "next_cursor": None}
    body = assert_success(get(client, admin, AUDIT, action="updated"), 200)
    (entry,) = body["data"]
    assert set(entry) == {
        "id", "at", "actor_type", "actor_id", "actor_name", "action",
        "object_type", "object_id", "ip", "request_id", "changes",
    }  # fmt: skip
    assert (entry["actor_type"], entry["actor_id"]) == ("user", admin.id)
    assert entry["changes"] == {"name": ["first", "Fir"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"action": "created"}, ["second", "first"]),
        ({"object_type": "subscriber"}, []),
        ({"actor": "system"}, []),
        ({"actor": "key:1"}, []),
    ],
)
def test_the_trail_filters(client, admin, trail, query, expected):
    shown, _meta = listed(client, admin, **query)
    assert [object_id for _, _, object_id in shown] == [trail[name] for name in expected]


def test_the_trail_filters_by_actor_object_and_time(app, client, admin, staff, trail):
    assert listed(client, admin, actor=f"user:{staff.id}")[0] == [("login", "user", staff.id)]
    mine = listed(client, admin, object_type="user", object_id=trail["first"])[0]
    assert mine == [("updated", "user", trail["first"]), ("created", "user", trail["first"])]
    first_id = min(e["id"] for e in assert_success(get(client, admin, AUDIT), 200)["data"])
    long_ago = utcnow() - timedelta(days=3)
    set_columns(app, AuditEntry, AuditEntry.id == first_id, at=long_ago)
    day = long_ago.strftime("%Y-%m-%d")
    assert listed(client, admin, to=day)[0] == [("created", "user", trail["first"])]
    assert len(listed(client, admin, **{"from": utcnow().strftime("%Y-%m-%d")})[0]) == 3


def test_the_trail_pages_by_keyset_without_gaps_or_repeats(client, admin, trail):
    everything, _meta = listed(client, admin)
    pages, query = [], {"per_page": 3}
    while True:
        shown, meta = listed(client, admin, **query)
        pages.append(shown)
        if meta["next_cursor"] is None:
            break
        query["cursor"] = meta["next_cursor"]

    assert [len(page) for page in pages] == [3, 1]
    assert [entry for page in pages for entry in page] == everything


@pytest.mark.parametrize(
    "query",
    [
        {"actor": "admin"},
        {"actor": "user:0"},
        {"action": "dropped"},
        {"object_type": "ticket"},
        {"from": "2026-02-30"},
        {"from": "2026-12-03", "to": "2026-12-02"},
    ],
)
def test_a_bad_filter_is_422(client, admin, query):
    assert_error(get(client, admin, AUDIT, **query), 422)


# --- Pruning ----------------------------------------------------------------------------------


def test_prune_deletes_the_entries_past_the_retention_only(app, runner, rows):
    now = utcnow()
    for days in (400, 366, 364, 0):
        saved(app, audit_row(now - timedelta(days=days)))

    result = runner.invoke(args=["audit", "prune"])
    assert result.exit_code == 0, result.output
    assert "Pruned 2 audit entries older than 365 days." in result.output
    assert len(entries(rows)) == 2
    assert runner.invoke(args=["audit", "prune", "--days", "1"]).exit_code == 0
    assert len(entries(rows)) == 1


def audit_row(at) -> AuditEntry:
    return AuditEntry(
        at=at,
        isp_id=1,
        actor_type="system",
        actor_name="system",
        action="created",
        object_type="user",
    )

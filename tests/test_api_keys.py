"""API keys: an ISP's admins make keys for programs (shown once, kept hashed), list and revoke
them; a key authenticates in one query, acts within its ISP (and branch) with its scopes only,
never manages users or keys, and shows up under its name wherever the API says who did what.
(Per-key rate limits: test_rate_limits.py. Who may call /api-keys at all, and how its query
strings are refused, is the endpoint catalogue's: tests/support/catalogue.py.)"""

import hashlib
import re
from datetime import timedelta

import pytest
from support.catalogue import ENDPOINTS
from support.client import (
    assert_error,
    assert_success,
    call,
    create_ticket,
    get,
    reply,
    scope_of,
    set_status,
)
from support.database import set_columns
from support.urls import API_KEYS, AUDIT, ME, SUBSCRIBERS, TICKETS, USERS, WEBHOOKS, ticket_url

from tickets_service.models import (
    KEY_SCOPES,
    ApiKey,
    AuditEntry,
    Ticket,
    TicketHistory,
    TicketReply,
    utcnow,
)

ALL_SCOPES = KEY_SCOPES
KEY_FIELDS = ["id", "name", "prefix", "key", "scopes", "branch_id", "expires_at"]
KEY_FIELDS += ["rate_limit", "created_at"]
LISTED_FIELDS = ["id", "name", "prefix", "scopes", "branch_id", "expires_at", "rate_limit"]
LISTED_FIELDS += ["created_at", "created_by", "last_used_at", "revoked_at"]


def key_url(key_id: int) -> str:
    return f"{API_KEYS}/{key_id}"


def later(**delta) -> str:
    return (utcnow() + timedelta(**delta)).strftime("%Y-%m-%d %H:%M:%S")


# --- Making, listing, showing and revoking keys ---------------------------------------------


def test_a_new_key_is_shown_once_and_kept_only_as_a_hash(client, admin, fetch, rows):
    body = {"name": "Zabbix", "scopes": ["tickets:read", "tickets:write"], "rate_limit": 300}
    response = call(client, admin, "POST", API_KEYS, {**body, "expires_at": later(days=30)})
    data = assert_success(response, 201, "API key created successfully")["data"]

    assert list(data) == KEY_FIELDS
    match = re.fullmatch(r"tsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", data["key"])
    assert match and match.group(1) == data["prefix"]  # 43 characters: 32 random bytes
    assert (data["scopes"], data["branch_id"], data["rate_limit"]) == (body["scopes"], None, 300)
    row = fetch(ApiKey, data["id"])
    secret = match.group(2)
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row)
    assert (row["isp_id"], row["created_by_id"], row["revoked_at"]) == (1, admin.id, None)
    [entry] = rows(AuditEntry)
    assert (entry["action"], entry["object_type"], entry["object_id"]) == (
        "created",
        "api_key",
        data["id"],
    )
    assert entry["changes"]["scopes"] == [None, body["scopes"]]
    assert secret not in str(entry) and row["secret_hash"] not in str(entry)


def test_the_list_shows_keys_newest_first_without_their_secrets(client, admin, make_key):
    first = make_key(admin, name="First")
    second = make_key(admin, name="Second", scopes=["subscribers:read"])
    body = assert_success(get(client, admin, API_KEYS, per_page=1), 200)
    assert [item["id"] for item in body["data"]] == [second.id]
    assert body["meta"] == {"page": 1, "per_page": 1, "total": 2, "pages": 2}
    listed = assert_success(get(client, admin, API_KEYS), 200)["data"]
    assert [item["id"] for item in listed] == [second.id, first.id]
    assert list(listed[0]) == LISTED_FIELDS
    assert listed[0]["created_by"] == admin.id
    shown = assert_success(get(client, admin, key_url(first.id)), 200)["data"]
    assert list(shown) == LISTED_FIELDS and shown["name"] == "First"
    text = str(listed) + str(shown)
    assert first.key not in text and second.key.rsplit("_", 1)[1] not in text
    assert "secret" not in text


def test_another_isps_key_is_not_found_and_staff_may_not_manage_keys(
    client, admin, other_admin, staff, make_key, assert_refused
):
    key = make_key(admin)
    assert_error(get(client, other_admin, key_url(key.id)), 404)
    assert assert_success(get(client, other_admin, API_KEYS), 200)["data"] == []
    assert_refused(lambda: call(client, other_admin, "DELETE", key_url(key.id)), 404)
    assert_error(get(client, staff, API_KEYS), 403)
    body = {"name": "Mine", "scopes": ["tickets:read"]}
    assert_refused(lambda: call(client, staff, "POST", API_KEYS, body), 403)
    assert_refused(lambda: call(client, staff, "DELETE", key_url(key.id)), 403)


def test_a_revoked_key_is_refused_on_every_instance_and_stays_listed(
    client, make_app, admin, make_key, fetch, rows
):
    key = make_key(admin, used=False)
    other_instance = make_app().test_client()
    assert_success(get(other_instance, key, TICKETS, isp_id=1, branch_id=1), 200)

    response = call(client, admin, "DELETE", key_url(key.id))
    assert_success(response, 200, "API key revoked successfully")

    for instance in (client, other_instance):
        refused = assert_error(get(instance, key, TICKETS, isp_id=1, branch_id=1), 401)
        assert refused["message"] == "API key has been revoked."
    revoked_at = fetch(ApiKey, key.id)["revoked_at"]
    assert revoked_at is not None
    listed = assert_success(get(client, admin, API_KEYS), 200)["data"]
    assert [(item["id"], item["revoked_at"] is not None) for item in listed] == [(key.id, True)]
    # Revoking it again is no change.
    entries = len(rows(AuditEntry))
    assert_success(call(client, admin, "DELETE", key_url(key.id)), 200)
    assert fetch(ApiKey, key.id)["revoked_at"] == revoked_at
    assert len(rows(AuditEntry)) == entries
    assert [e["action"] for e in rows(AuditEntry) if e["object_type"] == "api_key"] == [
        "created",
        "used_from_new_address",
        "revoked",
    ]


BAD_KEYS = {
    "scopes as a string": {"scopes": "tickets:read"},
    "an unknown scope": {"scopes": ["tickets:read", "tickets:admin"]},
    "a scope twice": {"scopes": ["tickets:read", "tickets:read"]},
    "no scope": {"scopes": []},
    "expires in the past": {"expires_at": "2020-01-01 00:00:00"},
    "expires now-ish": {"expires_at": "2026-01-01 00:00:00"},
    "expires in a bad format": {"expires_at": "tomorrow"},
    "rate limit 0": {"rate_limit": 0},
    "negative rate limit": {"rate_limit": -5},
    "rate limit over the ISP's ceiling": {"rate_limit": 6001},
    "rate limit as a string": {"rate_limit": "100"},
    "rate limit as a boolean": {"rate_limit": True},
    "a name that is not a string": {"name": 7},
    "a branch of another ISP": {"branch_id": 7},
    "no name": {"name": ""},
}


@pytest.mark.parametrize("change", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_bad_key_request_is_422_and_changes_nothing(
    client, admin, other_staff, make_user, assert_refused, change
):
    make_user(isp_id=2, branch_id=7)  # branch 7 exists, in ISP 2 only
    body = {"name": "Script", "scopes": ["tickets:read"], **change}
    field = "scopes.1" if change == BAD_KEYS["an unknown scope"] else next(iter(change))
    assert_refused(lambda: call(client, admin, "POST", API_KEYS, body), 422, field)


def test_a_key_for_a_branch_of_the_isp_is_accepted(client, admin, staff_branch2):
    body = {"name": "Branch 2 tool", "scopes": ["tickets:read"], "branch_id": 2}
    data = assert_success(call(client, admin, "POST", API_KEYS, body), 201)["data"]
    assert data["branch_id"] == 2


# --- Authenticating with a key --------------------------------------------------------------


def test_a_platform_script_reads_tickets_and_syncs_subscribers_and_nothing_else(
    client, admin, make_key, make_ticket, assert_refused
):
    ticket_id = make_ticket(admin)
    key = make_key(admin, scopes=["tickets:read", "subscribers:read", "subscribers:write"])
    listed = assert_success(get(client, key, TICKETS, isp_id=1, branch_id=1), 200)["data"]
    assert [item["id"] for item in listed] == [ticket_id]
    assert_success(get(client, key, ticket_url(ticket_id)), 200)
    synced = call(client, key, "PUT", f"{SUBSCRIBERS}/by-external-id/cust-7", {"name": "Ana"})
    assert_success(synced, 201)

    body = {"title": "Down", "description": "Since noon", "priority": 2}
    refused = assert_refused(lambda: call(client, key, "POST", TICKETS, body), 403)
    assert "tickets:write" in refused.get_json()["message"]
    refused = assert_refused(lambda: set_status(client, key, ticket_id, 2), 403)
    assert "tickets:write" in refused.get_json()["message"]
    refused = assert_error(get(client, key, USERS), 403)
    assert "users:read" in refused["message"]
    assert "webhooks:manage" in assert_error(get(client, key, WEBHOOKS), 403)["message"]


PERSON_ONLY = [
    ("POST", USERS, {"name": "X", "email": "x@example.test", "role": "staff", "password": "p" * 8}),
    ("PUT", f"{USERS}/{{admin}}", {"name": "Renamed"}),
    ("GET", API_KEYS, None),
    ("POST", API_KEYS, {"name": "Another", "scopes": ["tickets:read"]}),
    ("GET", f"{API_KEYS}/{{key}}", None),
    ("DELETE", f"{API_KEYS}/{{key}}", None),
    ("GET", ME, None),
    ("POST", "/api/v1/auth/logout", None),
    ("GET", AUDIT, None),
]


@pytest.mark.parametrize(("method", "path", "body"), PERSON_ONLY, ids=lambda v: str(v)[:24])
def test_a_key_never_manages_users_or_keys_whatever_its_scopes(
    client, admin, make_key, assert_refused, method, path, body
):
    key = make_key(admin, scopes=ALL_SCOPES)
    url = path.format(admin=admin.id, key=key.id)
    response = assert_refused(lambda: call(client, key, method, url, body), 403)
    assert "API key" in response.get_json()["message"]


def test_users_read_lets_a_key_read_users(client, admin, make_key):
    key = make_key(admin, scopes=["users:read"])
    users = assert_success(get(client, key, USERS), 200)["data"]
    assert [user["id"] for user in users] == [admin.id]


BAD_CREDENTIALS = {
    "the wrong shape": "tsk_abc",
    "a bad character": "tsk_0123456789ab_" + "!" * 43,
    "an unknown prefix": "tsk_0123456789ab_" + "a" * 43,
    "a right prefix and a wrong secret": None,  # built from a real key
}


@pytest.mark.parametrize("presented", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_a_wrong_key_is_401_and_changes_nothing(client, admin, make_key, assert_refused, presented):
    key = make_key(admin, scopes=["tickets:write"])
    if presented is None:
        presented = key.key[:-4] + ("aaaa" if not key.key.endswith("aaaa") else "bbbb")
    headers = {"Authorization": f"Bearer {presented}"}
    body = {"title": "Down", "description": "Since noon", "priority": 2}
    response = assert_refused(lambda: client.post(TICKETS, json=body, headers=headers), 401)
    assert response.get_json()["message"] == "Invalid API key."


def test_an_expired_key_is_401(client, app, admin, make_key):
    key = make_key(admin, expires_at=later(hours=1))
    assert_success(get(client, key, TICKETS, isp_id=1, branch_id=1), 200)
    set_columns(app, ApiKey, key.id, expires_at=utcnow() - timedelta(seconds=1))
    response = assert_error(get(client, key, TICKETS, isp_id=1, branch_id=1), 401)
    assert response["message"] == "API key has expired."


def test_a_branch_key_acts_as_staff_of_its_branch(
    client, admin, staff_branch2, make_key, make_ticket, assert_refused
):
    own = make_ticket(admin, branch_id=2)
    elsewhere = make_ticket(admin, branch_id=1)
    key = make_key(admin, scopes=["tickets:read", "tickets:write"], branch_id=2)
    listed = get(client, key, TICKETS, isp_id=1, branch_id=2)
    assert [item["id"] for item in assert_success(listed, 200)["data"]] == [own]
    assert_error(get(client, key, TICKETS, isp_id=1, branch_id=1), 403)
    assert_error(get(client, key, ticket_url(elsewhere)), 404)
    assert_refused(lambda: set_status(client, key, elsewhere, 1), 404)
    # Deleting a ticket is an admin's: staff of the branch may not, nor may its key.
    assert_refused(lambda: call(client, key, "DELETE", ticket_url(own)), 403)
    created = create_ticket(client, key, branch_id=2, user_id=admin.id)
    assert created


def test_a_key_of_another_isp_reaches_nothing_here(
    client, admin, other_admin, make_key, make_ticket, assert_refused
):
    ticket_id = make_ticket(admin)
    key = make_key(other_admin, scopes=ALL_SCOPES)
    assert_error(get(client, key, ticket_url(ticket_id)), 404)
    assert_error(get(client, key, TICKETS, isp_id=1, branch_id=1), 403)
    assert_refused(lambda: set_status(client, key, ticket_id, 2), 404)


def test_user_id_is_optional_for_a_key_and_if_given_must_be_its_creators(
    client, admin, staff, make_key, make_ticket, assert_refused
):
    ticket_id = make_ticket(admin)
    key = make_key(admin, scopes=["tickets:read", "tickets:write"])
    for query in ({}, {"user_id": admin.id}):
        body = assert_success(get(client, key, TICKETS, isp_id=1, branch_id=1, **query), 200)
        assert [item["id"] for item in body["data"]] == [ticket_id]
    refused = assert_error(get(client, key, TICKETS, isp_id=1, branch_id=1, user_id=staff.id), 403)
    assert "admin who created this API key" in refused["message"]
    body = {"user_id": staff.id, "status": 1}
    assert_refused(lambda: call(client, key, "PUT", ticket_url(ticket_id, "/status"), body), 403)
    # A person still names themselves on the list, as the spec says.
    assert_error(get(client, admin, TICKETS, isp_id=1, branch_id=1), 422, "user_id")


def test_assignee_me_means_nobody_for_a_key(client, admin, make_key, make_ticket):
    make_ticket(admin, assignee_id=admin.id)
    key = make_key(admin)
    response = get(client, key, TICKETS, isp_id=1, branch_id=1, assignee_id="me")
    assert_error(response, 422, "assignee_id")


# --- Who did it: a key under its name --------------------------------------------------------


def test_what_a_key_does_shows_under_its_name_with_no_user(client, admin, make_key, rows):
    key = make_key(admin, name="NOC monitor", scopes=["tickets:read", "tickets:write"])
    ticket_id = create_ticket(client, key, assignee_id=admin.id)
    assert_success(reply(client, key, ticket_id, "Outage confirmed"), 201)
    assert_success(set_status(client, key, ticket_id, 1), 200)

    ticket = assert_success(get(client, admin, ticket_url(ticket_id)), 200)["data"]
    assert (ticket["created_by"], ticket["created_by_key_id"]) == (None, key.id)
    [shown] = ticket["replies"]
    assert (shown["user_id"], shown["user_name"], shown["key_id"]) == (None, "NOC monitor", key.id)
    replies = assert_success(get(client, admin, ticket_url(ticket_id, "/replies")), 200)["data"]
    assert replies == ticket["replies"]
    history = assert_success(get(client, admin, ticket_url(ticket_id, "/history")), 200)["data"]
    assert [entry["action"] for entry in history] == [
        "created",
        "assigned",
        "replied",
        "status_changed",
    ]
    assert {(e["user_id"], e["user_name"], e["key_id"]) for e in history} == {
        (None, "NOC monitor", key.id)
    }
    # The database keeps the admin accountable for the key beside it.
    [row] = rows(Ticket)
    assert (row["created_by_id"], row["created_by_key_id"]) == (admin.id, key.id)
    assert {(r["user_id"], r["key_id"]) for r in rows(TicketReply)} == {(admin.id, key.id)}
    assert {(r["user_id"], r["key_id"]) for r in rows(TicketHistory)} == {(admin.id, key.id)}


def test_what_a_person_does_shows_no_key(client, admin, make_key):
    ticket_id = create_ticket(client, admin)
    assert_success(reply(client, admin, ticket_id), 201)
    ticket = assert_success(get(client, admin, ticket_url(ticket_id)), 200)["data"]
    assert (ticket["created_by"], ticket["created_by_key_id"]) == (admin.id, None)
    assert ticket["replies"][0]["key_id"] is None
    assert ticket["replies"][0]["user_id"] == admin.id


def test_a_keys_writes_outside_tickets_are_audited_as_the_key(client, admin, make_key, rows):
    key = make_key(admin, name="Platform", scopes=["subscribers:write"])
    body = {"name": "Ana Gomez"}
    subscriber_id = assert_success(call(client, key, "POST", SUBSCRIBERS, body), 201)["data"]["id"]
    [entry] = [e for e in rows(AuditEntry) if e["object_type"] == "subscriber"]
    assert (entry["actor_type"], entry["actor_id"], entry["actor_name"]) == (
        "key",
        key.id,
        "Platform",
    )
    assert entry["object_id"] == subscriber_id
    shown = get(client, admin, AUDIT, actor=f"key:{key.id}", object_type="subscriber")
    assert [e["object_id"] for e in assert_success(shown, 200)["data"]] == [subscriber_id]


def test_a_keys_idempotency_keys_are_its_own(client, admin, make_key, rows):
    key = make_key(admin, scopes=["tickets:write"])
    body = {**scope_of(admin), "title": "Down", "description": "Noon", "priority": 2}
    del body["user_id"]
    headers = {"Idempotency-Key": "abc-1"}
    first = call(client, key, "POST", TICKETS, body, headers=headers)
    again = call(client, key, "POST", TICKETS, body, headers=headers)
    assert assert_success(first, 201)["data"] == assert_success(again, 201)["data"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # The admin the key acts for cannot replay the key's answer with the same header.
    assert_error(call(client, admin, "POST", TICKETS, body, headers=headers), 422)
    assert len(rows(Ticket)) == 1


# --- Cost and bookkeeping -------------------------------------------------------------------


def test_a_key_authenticates_in_as_many_statements_as_a_token(
    client, admin, make_key, make_ticket, count_queries
):
    ticket_id = make_ticket(admin)
    key = make_key(admin)
    assert_success(get(client, key, ticket_url(ticket_id)), 200)  # its first use is noted
    counts = []
    for caller in (admin, key):
        with count_queries() as counter:
            assert_success(get(client, caller, ticket_url(ticket_id)), 200)
        counts.append(counter.count)
    assert counts[0] == counts[1]


def test_last_used_is_written_at_most_once_a_minute(app, client, admin, make_key, fetch):
    key = make_key(admin, used=False)
    assert fetch(ApiKey, key.id)["last_used_at"] is None
    assert_success(get(client, key, TICKETS, isp_id=1, branch_id=1), 200)
    first = fetch(ApiKey, key.id)["last_used_at"]
    assert first is not None
    assert_success(get(client, key, TICKETS, isp_id=1, branch_id=1), 200)
    assert fetch(ApiKey, key.id)["last_used_at"] == first
    shown = assert_success(get(client, admin, key_url(key.id)), 200)["data"]
    assert shown["last_used_at"] is not None

    set_columns(app, ApiKey, key.id, last_used_at=utcnow() - timedelta(seconds=61))
    assert_success(get(client, key, TICKETS, isp_id=1, branch_id=1), 200)
    assert fetch(ApiKey, key.id)["last_used_at"] > first


def test_a_keys_first_use_from_each_address_is_audited_once(client, admin, make_key, rows):
    key = make_key(admin, used=False)

    def use(address: str):
        environ = {"REMOTE_ADDR": address}
        query = {"isp_id": 1, "branch_id": 1}
        response = client.get(
            TICKETS, query_string=query, headers=key.headers, environ_base=environ
        )
        assert_success(response, 200)

    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"):
        use(address)
    seen = [e for e in rows(AuditEntry) if e["action"] == "used_from_new_address"]
    assert [(e["ip"], e["actor_type"], e["actor_id"], e["object_id"]) for e in seen] == [
        ("10.0.0.1", "key", key.id, key.id),
        ("10.0.0.2", "key", key.id, key.id),
    ]


def test_a_refused_request_still_notes_the_keys_use(client, admin, make_key, fetch):
    key = make_key(admin, scopes=["tickets:read"], used=False)
    body = {"title": "Down", "description": "Since noon", "priority": 2}
    assert_error(call(client, key, "POST", TICKETS, body), 403)
    assert fetch(ApiKey, key.id)["last_used_at"] is not None


# --- Every operation: the scope it needs, documented and enforced ----------------------------

AUTHENTICATED = [endpoint for endpoint in ENDPOINTS if endpoint.authenticated]


@pytest.mark.parametrize("endpoint", AUTHENTICATED, ids=str)
def test_the_document_names_the_scope_each_operation_needs(client, endpoint):
    document = client.get("/api/v1/openapi.json").get_json()
    method, path = endpoint.route
    assert document["paths"][path][method]["x-api-key-scope"] == endpoint.key_scope


@pytest.mark.parametrize("endpoint", AUTHENTICATED, ids=str)
def test_a_key_without_the_scope_an_operation_needs_is_403_and_changes_nothing(
    admin, make_world, make_key, send, assert_refused, endpoint
):
    world = make_world(admin)
    others = [scope for scope in KEY_SCOPES if scope != endpoint.key_scope]
    key = make_key(admin, scopes=others)
    response = assert_refused(lambda: send(endpoint, world, headers=key.headers), 403)
    needed = endpoint.key_scope or "Only a person may do this"
    assert needed in response.get_json()["message"]


@pytest.mark.parametrize("endpoint", [e for e in AUTHENTICATED if e.key_scope], ids=str)
def test_a_key_with_the_scope_an_operation_needs_does_what_a_person_does(
    admin, make_world, make_key, send, assert_took_effect, endpoint
):
    world = make_world(admin)
    key = make_key(admin, scopes=[endpoint.key_scope])
    assert_took_effect(endpoint, world, send(endpoint, world, headers=key.headers))


def test_the_branch_a_new_key_gets_is_the_one_its_query_or_body_names(
    client, admin, staff_branch2, assert_refused
):
    body = {"name": "Branch tool", "scopes": ["tickets:read"]}
    made = call(client, admin, "POST", API_KEYS, body, query={"branch_id": 2})
    assert assert_success(made, 201)["data"]["branch_id"] == 2
    both = call(client, admin, "POST", API_KEYS, {**body, "branch_id": 2}, query={"branch_id": 2})
    assert assert_success(both, 201)["data"]["branch_id"] == 2

    def make(sent: dict, query: dict):
        return lambda: call(client, admin, "POST", API_KEYS, sent, query=query)

    assert_refused(make({**body, "branch_id": 1}, {"branch_id": 2}), 422, "branch_id")
    assert_refused(make(body, {"branch_id": 999}), 422, "branch_id")


def test_making_a_key_takes_no_idempotency_key(client, admin, assert_refused):
    """Its answer holds the key, which is never stored, so it cannot be replayed: a retry
    that expects one is refused rather than making a second key."""
    body = {"name": "Retried", "scopes": ["tickets:read"]}
    headers = {"Idempotency-Key": "make-key-1"}
    assert_refused(lambda: call(client, admin, "POST", API_KEYS, body, headers=headers), 422)

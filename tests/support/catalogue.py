"""The endpoint catalogue: every operation of the API, once. The input, validation,
authentication, tenancy and query-string matrices are generated from it: a new endpoint is one
more entry in ENDPOINTS (a test fails while a route is missing from it)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from tickets_service.models import (
    Attachment,
    CannedReply,
    Incident,
    IncidentSuggestion,
    IspSettings,
    NetworkObject,
    RevokedToken,
    SlaPolicy,
    SubscriberLink,
    Ticket,
    TicketReply,
    TicketType,
)
from tickets_service.public import token_hash

from .client import PASSWORD, SCOPE, Account, scope_of

# What a path names, and the route parameter it fills.
PLACEHOLDERS = {
    "ticket": "ticket_id",
    "deleted_ticket": "ticket_id",
    "subscriber": "subscriber_id",
    "user": "user_id",
    "webhook": "webhook_id",
    "delivery": "delivery_id",
    "api_key": "key_id",
    "external_id": "external_id",
    # A network object by its platform's kind and id: the ISP's, not a branch's.
    "network_kind": "kind",
    "network_object": "external_id",
    "incident": "incident_id",  # the world's ticket is under it
    "suggestion": "suggestion_id",
    "ticket_type": "type_id",
    "sla_type": "type_key",  # the world's ticket type's key
    "sla_priority": "priority",
    "canned_reply": "reply_id",  # a canned reply of the world's branch
    "attachment": "attachment_id",  # a file on the world's ticket
}
# Names a path gives that any caller of the ISP may use: no branch's reach ends short of them.
ISP_WIDE = ("external_id", "network_kind", "network_object", "ticket_type", "sla_type")
ISP_WIDE += ("sla_priority",)


@dataclass(frozen=True)
class World:
    """Who calls, the live ticket a per-ticket path names, a subscriber a body may link, and
    the other objects a path may name (a deleted ticket, a colleague, a webhook and one of its
    deliveries, a network object and its kind), made by `make`."""

    caller: Account
    ticket_id: int
    subscriber_id: int | None = None
    scope: dict | None = None  # the isp/branch/user the request claims; the caller's by default
    make: Callable[[str], object] | None = field(default=None, compare=False, repr=False)
    made: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def claimed(self) -> dict:
        return scope_of(self.caller) if self.scope is None else self.scope

    def target(self, kind: str):
        if kind == "ticket":
            return self.ticket_id
        if kind == "subscriber" and self.subscriber_id is not None:
            return self.subscriber_id
        if kind not in self.made:
            self.made[kind] = self.make(kind)
        return self.made[kind]

    def path_of(self, endpoint: "Endpoint", **given) -> str:
        """The endpoint's path with this world's objects (or the ones `given`) in it."""
        names = {kind: given.get(kind) or self.target(kind) for kind in endpoint.placeholders}
        return endpoint.path.format(**names)


@dataclass(frozen=True)
class Outcome:
    """What an accepted request left: the body's data and the database to read back."""

    world: World
    sent: dict
    data: object
    fetch: Callable
    rows: Callable


@dataclass(frozen=True, eq=False)
class Endpoint:
    """One operation of the API: how a client calls it in a World (path, method, body, query),
    what a success answers and does (`effect`), and the rules its fields and parameters follow.
    Every attribute left at its default simply adds no case to the matrices."""

    name: str
    method: str
    path: str  # "{ticket}", "{subscriber}"...: an object of the World (PLACEHOLDERS)
    effect: Callable[[Outcome], None] | None = None  # asserts what a success did
    body: Callable[[World], dict] | None = None  # a body it accepts
    query: Callable[[World], dict] | None = None  # the query string a client sends
    status: int = 200
    message: str | None = None
    integer_fields: tuple[str, ...] = ()
    string_fields: tuple[str, ...] = ()
    nullable_fields: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()  # taken as typed: not trimmed, never stored
    codes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # body or query code tables
    max_lengths: Mapping[str, int] = field(default_factory=dict)
    # Fields a client may not send: unknown names and columns the server owns.
    refused_fields: Mapping[str, object] = field(default_factory=dict)
    query_integers: tuple[str, ...] = ()  # integer query parameters it validates
    authenticated: bool = True
    admin_only: bool = False
    body_limit: int | None = None  # a route's own body limit, below MAX_CONTENT_LENGTH
    claims_in: str | None = None  # where it takes isp_id / branch_id / user_id: query, body
    needs: tuple[str, ...] = ()  # objects of the World it acts on that its path does not name

    def within_limit(self, data: bytes, limit: int, status: int) -> int:
        """`status`, or 413 when `data` is over this route's body limit (or `limit`)."""
        return 413 if len(data) > min(limit, self.body_limit or limit) else status

    def __str__(self) -> str:
        return self.name

    @property
    def placeholders(self) -> list[str]:
        return [kind for kind in PLACEHOLDERS if "{" + kind + "}" in self.path]

    @property
    def reaches(self) -> str | None:
        """The object its path names, which out of the caller's reach is 404. (Network objects
        are the whole ISP's: another ISP's are 404 in test_network.py.)"""
        kinds = [kind for kind in self.placeholders if kind not in ISP_WIDE]
        return kinds[0] if kinds else None

    @property
    def route(self) -> tuple[str, str]:
        """(method, path) as the OpenAPI document and the URL map write it."""
        path = self.path
        for kind, parameter in PLACEHOLDERS.items():
            path = path.replace("{" + kind + "}", "{" + parameter + "}")
        return self.method.lower(), path

    @property
    def key_scope(self) -> str | None:
        """The API key scope it needs; None where only a person may call it (users' writes,
        keys, the caller's own account, the audit trail)."""
        resource, read = self.path.split("/")[3], self.method == "GET"
        return {
            "tickets": "tickets:read" if read else "tickets:write",
            "subscribers": "subscribers:read" if read else "subscribers:write",
            "users": "users:read" if read else None,
            "webhooks": "webhooks:manage",
            "deliveries": "webhooks:manage",
            "network": "network:read" if read else "network:write",
            "incidents": "tickets:read" if read else "incidents:write",
            "ticket-types": "tickets:read" if read else "tickets:write",
            "sla-policies": "tickets:read" if read else "tickets:write",
            "tags": "tickets:read" if read else None,
            "attachments": "tickets:read" if read else "tickets:write",
        }.get(resource)

    @property
    def per_ticket(self) -> bool:
        return "{ticket}" in self.path

    @property
    def scoped(self) -> bool:
        """It takes isp_id / branch_id / user_id, which must agree with the token."""
        return self.claims_in is not None


def assert_stored(row: dict, sent: dict) -> None:
    """Every value sent that the row has a column for is stored as sent."""
    shared = sent.keys() & row.keys()
    assert shared
    assert {name: row[name] for name in shared} == {name: sent[name] for name in shared}


def _listed(o: Outcome) -> None:
    assert [item["id"] for item in o.data] == [o.world.ticket_id]


def _fetched(o: Outcome) -> None:
    assert o.data["id"] == o.world.ticket_id


def _created(o: Outcome) -> None:
    row = o.fetch(Ticket, o.data["id"])
    assert_stored(row, o.sent)
    assert (row["created_by_id"], row["status"], row["deleted_at"]) == (o.world.caller.id, 0, None)


def _changed(o: Outcome) -> None:
    assert_stored(o.fetch(Ticket, o.world.ticket_id), o.sent)


def _deleted(o: Outcome) -> None:
    assert o.fetch(Ticket, o.world.ticket_id)["deleted_at"] is not None


def _replied(o: Outcome) -> None:
    [reply] = o.rows(TicketReply)
    assert_stored(reply, o.sent)
    assert (reply["ticket_id"], reply["user_id"]) == (o.world.ticket_id, o.world.caller.id)


def _logged_in(o: Outcome) -> None:
    assert o.data["access_token"]
    assert o.data["user"]["id"] == o.world.caller.id


def _me(o: Outcome) -> None:
    assert o.data["id"] == o.world.caller.id


def _logged_out(o: Outcome) -> None:
    [revoked] = o.rows(RevokedToken)
    assert revoked["user_id"] == o.world.caller.id


PRIORITIES = (1, 2, 3)
STATUSES = (0, 1, 2, 3, 4)  # the spec's four, and waiting on the subscriber
TICKET_FIELDS = {
    "integer_fields": (*SCOPE, "subscriber_id", "priority"),
    "string_fields": ("title", "description"),
    "nullable_fields": ("subscriber_id",),
    "codes": {"priority": PRIORITIES},
    "max_lengths": {"title": 255, "description": 10_000},
    "query_integers": SCOPE,
    "claims_in": "body",
}

LIST = Endpoint(
    "list",
    "GET",
    "/api/v1/tickets",
    _listed,
    # The world's branch also holds the incident its ticket is under: tickets only.
    query=lambda w: {**w.claimed, "kind": "ticket"},
    codes={"status": STATUSES, "priority": PRIORITIES},
    query_integers=(*SCOPE, "status", "priority", "page", "per_page"),
    claims_in="query",
)
FETCH = Endpoint(
    "fetch",
    "GET",
    "/api/v1/tickets/{ticket}",
    _fetched,
    query=lambda w: w.claimed,
    query_integers=SCOPE,
    claims_in="query",
)
CREATE = Endpoint(
    "create",
    "POST",
    "/api/v1/tickets",
    _created,
    body=lambda w: {
        **w.claimed,
        "subscriber_id": w.subscriber_id,
        "title": "Connection Issue",
        "description": "Cannot connect to internet",
        "priority": 2,
    },
    status=201,
    message="Ticket created successfully",
    required_fields=("title", "description", "priority"),
    refused_fields={
        "id": 999,
        "status": 3,
        "created_by_id": 1,
        "created_by": 1,
        "created_at": "2000-01-01 00:00:00",
        "deleted_at": "2000-01-01 00:00:00",
        "subscriber_name": "Someone",
        "replies": [],
        "__proto__": {"admin": True},
        "": 1,
        "Title": "case variant",
    },
    **TICKET_FIELDS,
)
UPDATE = Endpoint(
    "update",
    "PUT",
    "/api/v1/tickets/{ticket}",
    _changed,
    body=lambda w: {
        **w.claimed,
        "subscriber_id": w.subscriber_id,
        "title": "Updated Title",
        "description": "Still cannot connect",
        "priority": 3,
    },
    message="Ticket updated successfully",
    refused_fields={
        "id": 999,
        "status": 3,
        "created_by_id": 1,
        "updated_at": "2000-01-01 00:00:00",
        "deleted_at": "2000-01-01 00:00:00",
    },
    **TICKET_FIELDS,
)
DELETE = Endpoint(
    "delete",
    "DELETE",
    "/api/v1/tickets/{ticket}",
    _deleted,
    query=lambda w: w.claimed,
    message="Ticket deleted successfully",
    query_integers=SCOPE,
    admin_only=True,
    claims_in="query",
)
REPLY = Endpoint(
    "reply",
    "POST",
    "/api/v1/tickets/{ticket}/reply",
    _replied,
    body=lambda w: {**w.claimed, "message": "We are looking into this issue."},
    status=201,
    message="Reply added successfully",
    integer_fields=SCOPE,
    string_fields=("message",),
    required_fields=("message",),
    max_lengths={"message": 10_000},
    refused_fields={
        "user_name": "Someone else",
        "ticket_id": 1,
        "created_at": "2000-01-01 00:00:00",
    },
    query_integers=SCOPE,
    claims_in="body",
)
STATUS = Endpoint(
    "status",
    "PUT",
    "/api/v1/tickets/{ticket}/status",
    _changed,
    body=lambda w: {**w.claimed, "status": 2},
    message="Ticket status updated successfully",
    integer_fields=(*SCOPE, "status"),
    required_fields=("status",),
    codes={"status": STATUSES},
    refused_fields={"priority": 3, "title": "x", "deleted_at": None},
    query_integers=SCOPE,
    claims_in="body",
)
LOGIN = Endpoint(
    "login",
    "POST",
    "/api/v1/auth/login",
    _logged_in,
    body=lambda w: {"email": w.caller.email, "password": PASSWORD},
    string_fields=("email", "password"),
    required_fields=("email", "password"),
    secret_fields=("password",),
    max_lengths={"email": 255, "password": 1024},
    refused_fields={"role": "admin", "isp_id": 2, "remember": True},
    authenticated=False,
    body_limit=4096,
)
ME = Endpoint("me", "GET", "/api/v1/auth/me", _me)
LOGOUT = Endpoint(
    "logout", "POST", "/api/v1/auth/logout", _logged_out, message="Logged out successfully"
)


# --- The desk, subscribers, users and webhooks ----------------------------------------------


def _a_list(o: Outcome) -> None:
    assert isinstance(o.data, list)


def _the_object(kind: str):
    """The answer shows the object the path names."""

    def check(o: Outcome) -> None:
        assert o.data["id"] == o.world.target(kind)

    return check


def _made(o: Outcome) -> None:
    assert isinstance(o.data["id"], int)


def _restored(o: Outcome) -> None:
    assert o.fetch(Ticket, o.world.target("deleted_ticket"))["deleted_at"] is None


def _done(_o: Outcome) -> None:
    """Its success envelope is the whole of what it promises here."""


def _reads(name: str, path: str, effect=_a_list, **rules) -> Endpoint:
    """A GET taking the optional scope (and paging) in its query string."""
    return Endpoint(
        name, "GET", path, effect, query=lambda w: w.claimed, claims_in="query", **rules
    )


def _writes(name: str, method: str, path: str, body, effect, message: str, **rules) -> Endpoint:
    """An admin's write taking the optional scope in its body (or its query string)."""
    where = "body" if body is not None else "query"
    query = (lambda w: w.claimed) if body is None else None
    body_with_scope = (lambda w: {**w.claimed, **body(w)}) if body is not None else None
    return Endpoint(
        name,
        method,
        path,
        effect,
        body=body_with_scope,
        query=query,
        message=message,
        admin_only=True,
        claims_in=where,
        **rules,
    )


STATS = _reads("stats", "/api/v1/tickets/stats", _done)
HISTORY = _reads("history", "/api/v1/tickets/{ticket}/history")
REPLIES = _reads("replies", "/api/v1/tickets/{ticket}/replies")
RESTORE = _writes(
    "restore",
    "POST",
    "/api/v1/tickets/{deleted_ticket}/restore",
    None,
    _restored,
    "Ticket restored successfully",
)
SUBSCRIBERS = _reads("subscribers", "/api/v1/subscribers")
SUBSCRIBER = _reads("subscriber", "/api/v1/subscribers/{subscriber}", _the_object("subscriber"))
ADD_SUBSCRIBER = _writes(
    "add subscriber",
    "POST",
    "/api/v1/subscribers",
    lambda w: {"name": "Ana Gomez", "phone": "+15550123"},
    _made,
    "Subscriber created successfully",
    status=201,
)
EDIT_SUBSCRIBER = _writes(
    "edit subscriber",
    "PUT",
    "/api/v1/subscribers/{subscriber}",
    lambda w: {"name": "Ana Gomez"},
    _done,
    "Subscriber updated successfully",
)
SYNC_SUBSCRIBER = _writes(
    "sync subscriber",
    "PUT",
    "/api/v1/subscribers/by-external-id/{external_id}",
    lambda w: {"name": "Chen Wei"},
    _made,
    "Subscriber synced successfully",
    status=201,
)
USERS = _reads("users", "/api/v1/users")
USER = _reads("user", "/api/v1/users/{user}", _the_object("user"))
ADD_USER = _writes(
    "add user",
    "POST",
    "/api/v1/users",
    lambda w: {
        "name": "Sam Lee",
        "email": "sam@example.test",
        "role": "staff",
        "password": "pw-12345678",
    },
    _made,
    "User created successfully",
    status=201,
)
EDIT_USER = _writes(
    "edit user",
    "PUT",
    "/api/v1/users/{user}",
    lambda w: {"name": "Renamed"},
    _done,
    "User updated successfully",
)
# Webhooks are an admin's only: a staff user is 403 before any lookup.
WEBHOOKS = _reads("webhooks", "/api/v1/webhooks", admin_only=True)
ADD_WEBHOOK = _writes(
    "add webhook",
    "POST",
    "/api/v1/webhooks",
    lambda w: {"url": "https://93.184.216.34/hook", "events": ["ticket.created"]},
    _made,
    "Webhook created successfully",
    status=201,
)
REMOVE_WEBHOOK = _writes(
    "remove webhook",
    "DELETE",
    "/api/v1/webhooks/{webhook}",
    None,
    _done,
    "Webhook deleted successfully",
)
DELIVERIES = _reads("deliveries", "/api/v1/webhooks/{webhook}/deliveries", admin_only=True)
REDELIVER = _writes(
    "redeliver",
    "POST",
    "/api/v1/deliveries/{delivery}/redeliver",
    None,
    _done,
    "Delivery scheduled",
    status=201,
)
# API keys are an admin's only, like webhooks (and never a key's: test_api_keys.py).
API_KEYS = _reads("api keys", "/api/v1/api-keys", admin_only=True)
API_KEY = _reads("api key", "/api/v1/api-keys/{api_key}", _the_object("api_key"), admin_only=True)
ADD_API_KEY = _writes(
    "add api key",
    "POST",
    "/api/v1/api-keys",
    lambda w: {"name": "Billing export", "scopes": ["tickets:read"]},
    _made,
    "API key created successfully",
    status=201,
    string_fields=("name",),
    required_fields=("name", "scopes"),
    max_lengths={"name": 255},
)
REVOKE_API_KEY = _writes(
    "revoke api key",
    "DELETE",
    "/api/v1/api-keys/{api_key}",
    None,
    _done,
    "API key revoked successfully",
)
# The audit trail is an admin's only, like webhooks.
AUDIT = _reads("audit", "/api/v1/audit", admin_only=True, query_integers=("object_id", "cursor"))
KEYS = (API_KEYS, API_KEY, ADD_API_KEY, REVOKE_API_KEY)
ROLE_FIRST = (WEBHOOKS, ADD_WEBHOOK, REMOVE_WEBHOOK, DELIVERIES, REDELIVER, *KEYS, AUDIT)


def _network_object(o: Outcome, external_id: str) -> dict:
    """The caller's ISP's row of the world's kind and this external id."""
    kind = o.world.target("network_kind")
    [row] = [
        row
        for row in o.rows(NetworkObject)
        if (row["isp_id"], row["kind"], row["external_id"])
        == (o.world.caller.isp_id, kind, external_id)
    ]
    return row


def _network_listed(o: Outcome) -> None:
    listed = [(item["kind"], item["external_id"]) for item in o.data]
    assert (o.world.target("network_kind"), o.world.target("network_object")) in listed


def _network_shown(o: Outcome) -> None:
    shown = (o.data["kind"], o.data["external_id"])
    assert shown == (o.world.target("network_kind"), o.world.target("network_object"))


def _network_synced(o: Outcome) -> None:
    row = _network_object(o, o.world.target("external_id"))
    parent = _network_object(o, o.world.target("network_object"))
    assert row["id"] == o.data["id"]
    assert_stored(row, o.sent)
    assert (row["parent_id"], row["retired_at"]) == (parent["id"], None)


def _network_retired(o: Outcome) -> None:
    assert _network_object(o, o.world.target("network_object"))["retired_at"] is not None


# The ISP platform syncs its network; staff read it.
NETWORK_OBJECT_PATH = "/api/v1/network/{network_kind}/{network_object}"
NETWORK = _reads(
    "network",
    "/api/v1/network",
    _network_listed,
    query_integers=(*SCOPE, "page", "per_page"),
    needs=("network_object",),
)
NETWORK_OBJECT = _reads("network object", NETWORK_OBJECT_PATH, _network_shown, query_integers=SCOPE)
SYNC_NETWORK_OBJECT = _writes(
    "sync network object",
    "PUT",
    "/api/v1/network/{network_kind}/{external_id}",
    lambda w: {
        "name": "Access switch",
        "parent": {"kind": w.target("network_kind"), "external_id": w.target("network_object")},
    },
    _network_synced,
    "Network object synced successfully",
    status=201,
    integer_fields=SCOPE,
    string_fields=("name",),
    nullable_fields=("branch_id",),
    required_fields=("name",),
    max_lengths={"name": 255},
    refused_fields={
        "id": 999,
        "kind": "site",
        "external_id": "other",
        "parent_id": 1,
        "depth": 1,
        "path": "/1/",
        "retired_at": None,
        "children_count": 0,
    },
)
RETIRE_NETWORK_OBJECT = _writes(
    "retire network object",
    "DELETE",
    NETWORK_OBJECT_PATH,
    None,
    _network_retired,
    "Network object retired successfully",
    query_integers=SCOPE,
)
NETWORK_OPERATIONS = (NETWORK, NETWORK_OBJECT, SYNC_NETWORK_OBJECT, RETIRE_NETWORK_OBJECT)


def _incident_opened(o: Outcome) -> None:
    row = o.fetch(Ticket, o.data["id"])
    assert (row["kind"], row["isp_id"]) == ("incident", o.world.caller.isp_id)
    assert o.fetch(Incident, o.data["id"])["public_message"] == o.sent["public_message"]


def _incident_edited(o: Outcome) -> None:
    incident = o.fetch(Incident, o.world.target("incident"))
    assert incident["public_message"] == o.sent["public_message"]


def _under_incident(o: Outcome) -> None:
    assert o.fetch(Ticket, o.world.ticket_id)["parent_id"] == o.world.target("incident")


def _no_longer_under(o: Outcome) -> None:
    assert o.fetch(Ticket, o.world.ticket_id)["parent_id"] is None


def _bulk_changed(o: Outcome) -> None:
    assert o.data["results"] == [{"id": o.world.ticket_id, "status": 200, "message": "Changed."}]
    assert o.fetch(Ticket, o.world.ticket_id)["priority"] == o.sent["set"]["priority"]


def _suggestion(status: str):
    def check(o: Outcome) -> None:
        assert o.fetch(IncidentSuggestion, o.world.target("suggestion"))["status"] == status

    return check


def _settings_saved(o: Outcome) -> None:
    assert o.fetch(IspSettings, o.world.caller.isp_id)["storm_tickets"] == o.sent["storm_tickets"]


# Incidents: admins open and change them; everyone in reach reads them.
OPEN_INCIDENT = _writes(
    "open incident",
    "POST",
    "/api/v1/incidents",
    lambda w: {
        "title": "Fibre cut",
        "description": "OLT unreachable",
        "priority": 3,
        "links": [{"kind": w.target("network_kind"), "external_id": w.target("network_object")}],
        "public_message": "Back by 18:00.",
    },
    _incident_opened,
    "Incident opened successfully",
    status=201,
    string_fields=("title", "description", "public_message"),
    required_fields=("title", "description", "priority", "public_message"),
)
INCIDENT = _reads("incident", "/api/v1/incidents/{incident}", _the_object("incident"))
EDIT_INCIDENT = _writes(
    "edit incident",
    "PUT",
    "/api/v1/incidents/{incident}",
    lambda w: {"public_message": "Back by noon."},
    _incident_edited,
    "Incident updated successfully",
)
AFFECTED = _reads("affected", "/api/v1/incidents/{incident}/affected")
IMPACT = _reads("impact", "/api/v1/incidents/{incident}/impact")
SET_PARENT = Endpoint(
    "set parent",
    "PUT",
    "/api/v1/tickets/{ticket}/parent",
    _under_incident,
    body=lambda w: {**w.claimed, "incident_id": w.target("incident")},
    message="Ticket linked to the incident",
    integer_fields=(*SCOPE, "incident_id"),
    required_fields=("incident_id",),
    query_integers=SCOPE,
    claims_in="body",
)
REMOVE_PARENT = Endpoint(
    "remove parent",
    "DELETE",
    "/api/v1/tickets/{ticket}/parent",
    _no_longer_under,
    query=lambda w: w.claimed,
    needs=("incident",),  # the world's ticket is under it
    message="Ticket unlinked from its incident",
    query_integers=SCOPE,
    claims_in="query",
)
BULK = Endpoint(
    "bulk",
    "POST",
    "/api/v1/tickets/bulk",
    _bulk_changed,
    body=lambda w: {**w.claimed, "ids": [w.ticket_id], "set": {"priority": 3}},
    integer_fields=SCOPE,
    claims_in="body",
)
OUTAGES = _reads("outages", "/api/v1/subscribers/{subscriber}/outages", _done)
# Suggestions and settings are an admin's only: staff are 403 before anything is looked up.
SUGGESTIONS = _reads("suggestions", "/api/v1/incidents/suggestions", admin_only=True)
ACCEPT_SUGGESTION = _writes(
    "accept suggestion",
    "POST",
    "/api/v1/incidents/suggestions/{suggestion}/accept",
    lambda w: {"title": "Outage at the switch"},
    _made,
    "Incident opened successfully",
    status=201,
)
DISMISS_SUGGESTION = _writes(
    "dismiss suggestion",
    "DELETE",
    "/api/v1/incidents/suggestions/{suggestion}",
    None,
    _suggestion("dismissed"),
    "Suggestion dismissed",
)
SETTINGS = _reads("settings", "/api/v1/settings", _done, admin_only=True)
EDIT_SETTINGS = _writes(
    "edit settings",
    "PUT",
    "/api/v1/settings",
    lambda w: {"storm_tickets": 7},
    _settings_saved,
    "Settings updated successfully",
)
INCIDENT_OPERATIONS = (OPEN_INCIDENT, INCIDENT, EDIT_INCIDENT, AFFECTED, IMPACT)
INCIDENT_OPERATIONS += (SET_PARENT, REMOVE_PARENT, BULK, OUTAGES)
ADMIN_FIRST = (SUGGESTIONS, ACCEPT_SUGGESTION, DISMISS_SUGGESTION, SETTINGS, EDIT_SETTINGS)


# --- Desk rules: ticket types, SLA policies, tags, canned replies ------------------------------


def _type_saved(o: Outcome) -> None:
    row = o.fetch(TicketType, o.data["id"])
    assert_stored(row, o.sent)
    assert row["isp_id"] == o.world.caller.isp_id


def _policy_saved(o: Outcome) -> None:
    key = (o.world.caller.isp_id, o.world.target("sla_type"), o.world.target("sla_priority"))
    assert_stored(o.fetch(SlaPolicy, key), o.sent)


def _policy_gone(o: Outcome) -> None:
    key = (o.world.caller.isp_id, o.world.target("sla_type"), o.world.target("sla_priority"))
    assert o.fetch(SlaPolicy, key) is None


def _canned_saved(o: Outcome) -> None:
    row = o.fetch(CannedReply, o.data["id"])
    assert_stored(row, o.sent)
    assert row["isp_id"] == o.world.caller.isp_id


def _canned_gone(o: Outcome) -> None:
    assert o.fetch(CannedReply, o.world.target("canned_reply")) is None


TICKET_TYPES = _reads("ticket types", "/api/v1/ticket-types")
ADD_TICKET_TYPE = _writes(
    "add ticket type",
    "POST",
    "/api/v1/ticket-types",
    lambda w: {"key": "fibre-cut", "name": "Fibre cut", "default_priority": 3},
    _type_saved,
    "Ticket type created successfully",
    status=201,
    integer_fields=(*SCOPE, "default_priority"),
    string_fields=("name",),
    required_fields=("key", "name"),
    codes={"default_priority": PRIORITIES},
    max_lengths={"name": 255},
    refused_fields={"id": 9, "created_at": "2000-01-01 00:00:00"},
)
EDIT_TICKET_TYPE = _writes(
    "edit ticket type",
    "PUT",
    "/api/v1/ticket-types/{ticket_type}",
    lambda w: {"name": "Renamed", "default_priority": 1},
    _done,
    "Ticket type updated successfully",
    integer_fields=(*SCOPE, "default_priority"),
    string_fields=("name",),
    codes={"default_priority": PRIORITIES},
    refused_fields={"key": "other-key", "id": 9},
)
SLA_POLICY_PATH = "/api/v1/sla-policies/{sla_type}/{sla_priority}"
SLA_POLICIES = _reads("sla policies", "/api/v1/sla-policies")
SLA_POLICY = _reads("sla policy", SLA_POLICY_PATH, _done, needs=("sla_policy",))
PUT_SLA_POLICY = _writes(
    "put sla policy",
    "PUT",
    SLA_POLICY_PATH,
    lambda w: {"first_response_minutes": 60, "resolve_minutes": 480},
    _policy_saved,
    "SLA policy saved successfully",
    status=201,  # the world's type has no policy of this priority yet
    # Minutes are no ids (0 is a budget): test_sla.py holds their rules.
    integer_fields=SCOPE,
    required_fields=("first_response_minutes", "resolve_minutes"),
    refused_fields={"type": "fault", "priority": 1},
)
DELETE_SLA_POLICY = _writes(
    "delete sla policy",
    "DELETE",
    SLA_POLICY_PATH,
    None,
    _policy_gone,
    "SLA policy deleted successfully",
    needs=("sla_policy",),
)
TAGS = _reads("tags", "/api/v1/tags")
CANNED_REPLIES = _reads("canned replies", "/api/v1/canned-replies", needs=("canned_reply",))
CANNED_REPLY = _reads(
    "canned reply", "/api/v1/canned-replies/{canned_reply}", _the_object("canned_reply")
)
ADD_CANNED_REPLY = Endpoint(
    "add canned reply",
    "POST",
    "/api/v1/canned-replies",
    _canned_saved,
    body=lambda w: {
        **w.claimed,
        "title": "Router serial",
        "body": "Hello {{ subscriber.name }}, what is your router's serial?",
        "scope": "branch",  # the claimed branch's
    },
    status=201,
    message="Canned reply created successfully",
    integer_fields=SCOPE,
    string_fields=("title", "body"),
    required_fields=("title", "body", "scope"),
    max_lengths={"title": 255, "body": 10_000},
    refused_fields={"id": 9, "owner_id": 1, "created_by": 1},
    claims_in="body",
)
EDIT_CANNED_REPLY = Endpoint(
    "edit canned reply",
    "PUT",
    "/api/v1/canned-replies/{canned_reply}",
    _done,
    body=lambda w: {**w.claimed, "title": "Renamed"},
    message="Canned reply updated successfully",
    integer_fields=SCOPE,
    string_fields=("title", "body"),
    max_lengths={"title": 255, "body": 10_000},
    refused_fields={"scope": "isp", "owner_id": 1},
    claims_in="body",
)
DELETE_CANNED_REPLY = Endpoint(
    "delete canned reply",
    "DELETE",
    "/api/v1/canned-replies/{canned_reply}",
    _canned_gone,
    query=lambda w: w.claimed,
    message="Canned reply deleted successfully",
    query_integers=SCOPE,
    claims_in="query",
)
DESK_RULES = (TICKET_TYPES, SLA_POLICIES, SLA_POLICY, TAGS)
DESK_RULES += (CANNED_REPLIES, CANNED_REPLY, ADD_CANNED_REPLY, EDIT_CANNED_REPLY)
DESK_RULES += (DELETE_CANNED_REPLY,)
# The catalogue's and the policies' writes are an admin's: 403 before any lookup.
ADMIN_FIRST += (ADD_TICKET_TYPE, EDIT_TICKET_TYPE, PUT_SLA_POLICY, DELETE_SLA_POLICY)
ROLE_FIRST += ADMIN_FIRST

# --- The subscriber's side: links, attachments ---------------------------------------------
# (Uploads are multipart, downloads are bytes and the link's own routes need no login: they
# are tested in test_attachments*.py and test_subscriber_link.py, outside these matrices.)


def _link_made(o: Outcome) -> None:
    [link] = o.rows(SubscriberLink)
    assert (link["ticket_id"], link["isp_id"]) == (o.world.ticket_id, o.world.caller.isp_id)
    assert link["token_hash"] == token_hash(o.data["token"])
    assert o.data["path"] == f"/t/{o.data['token']}"


def _links_gone(o: Outcome) -> None:
    assert not o.rows(SubscriberLink)


def _attachment_gone(o: Outcome) -> None:
    assert o.world.target("attachment") not in {row["id"] for row in o.rows(Attachment)}


def _attachments_listed(o: Outcome) -> None:
    assert [item["id"] for item in o.data] == [o.world.target("attachment")]


SUBSCRIBER_LINK = Endpoint(
    "subscriber link",
    "POST",
    "/api/v1/tickets/{ticket}/subscriber-link",
    _link_made,
    body=lambda w: {**w.claimed},
    status=201,
    message="Subscriber link created",
    integer_fields=SCOPE,
    refused_fields={"token": "chosen-by-the-client", "ticket_id": 1},
    query_integers=SCOPE,
    claims_in="body",
)
REVOKE_LINKS = Endpoint(
    "revoke subscriber links",
    "DELETE",
    "/api/v1/tickets/{ticket}/subscriber-link",
    _links_gone,
    query=lambda w: w.claimed,
    message="Subscriber links revoked",
    query_integers=SCOPE,
    claims_in="query",
    needs=("subscriber_link",),
)
ATTACHMENTS = _reads(
    "attachments",
    "/api/v1/tickets/{ticket}/attachments",
    _attachments_listed,
    needs=("attachment",),
)
DELETE_ATTACHMENT = Endpoint(
    "delete attachment",
    "DELETE",
    "/api/v1/attachments/{attachment}",
    _attachment_gone,
    query=lambda w: w.claimed,
    message="Attachment deleted",
    query_integers=SCOPE,
    claims_in="query",
    admin_only=True,
)
SUBSCRIBERS_SIDE = (SUBSCRIBER_LINK, REVOKE_LINKS, ATTACHMENTS, DELETE_ATTACHMENT)
ROLE_FIRST += (DELETE_ATTACHMENT,)  # staff are 403 before the attachment is looked up
# The operations outside these matrices, tested in their own files (see above).
LINK = "/api/v1/public/tickets/{token}"
OUTSIDE_THE_MATRICES = {
    ("post", "/api/v1/tickets/{ticket_id}/attachments"),
    ("get", "/api/v1/attachments/{attachment_id}"),
    ("get", LINK),
    ("post", f"{LINK}/reply"),
    ("post", f"{LINK}/attachments"),
    ("get", f"{LINK}/attachments/{{attachment_id}}"),
}

ENDPOINTS = (
    *(LIST, FETCH, CREATE, UPDATE, DELETE, REPLY, STATUS, LOGIN, ME, LOGOUT),
    *(STATS, HISTORY, REPLIES, RESTORE),
    *(SUBSCRIBERS, SUBSCRIBER, ADD_SUBSCRIBER, EDIT_SUBSCRIBER, SYNC_SUBSCRIBER),
    *(USERS, USER, ADD_USER, EDIT_USER),
    *(WEBHOOKS, ADD_WEBHOOK, REMOVE_WEBHOOK, DELIVERIES, REDELIVER),
    *KEYS,
    AUDIT,
    *NETWORK_OPERATIONS,
    *INCIDENT_OPERATIONS,
    *ADMIN_FIRST,
    *DESK_RULES,
    *SUBSCRIBERS_SIDE,
)
# The spec's ticket endpoints and the auth routes: every field rule of theirs is declared.
WITH_RULES = tuple(e for e in ENDPOINTS if e.body and (e.integer_fields or e.string_fields))
WITH_BODY = tuple(endpoint for endpoint in ENDPOINTS if endpoint.body)
PER_TICKET = tuple(endpoint for endpoint in ENDPOINTS if endpoint.per_ticket)
REACHING = tuple(endpoint for endpoint in ENDPOINTS if endpoint.reaches)
SCOPED = tuple(endpoint for endpoint in ENDPOINTS if endpoint.scoped)


def cases(table: dict) -> list:
    """pytest.param rows from {label: value}, with ids from the labels."""
    return [pytest.param(value, id=label) for label, value in table.items()]


def matrix(attribute: str, values, endpoints=WITH_BODY, skip=lambda *_: False) -> list:
    """pytest.param(endpoint, name, value) rows: every endpoint, every name in its `attribute`
    (names, or a mapping keyed by them), every value of the {label: value} table `values` (or
    of values(endpoint, name)), except where skip(endpoint, name, value)."""
    return [
        pytest.param(endpoint, name, value, id=f"{endpoint}-{name}-{label}")
        for endpoint in endpoints
        for name in getattr(endpoint, attribute)
        for label, value in (values(endpoint, name) if callable(values) else values).items()
        if not skip(endpoint, name, value)
    ]

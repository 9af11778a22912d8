"""Marshmallow schemas, named by direction: *In for bodies, *Args for query strings, *Out for
responses. Instances are created once at the bottom; the views declare them on their routes."""

import json
import re
from itertools import pairwise

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from . import sla
from .cursors import Cursor
from .fields import (
    AssigneeFilter,
    Id,
    Password,
    QueryBoolean,
    QueryCodes,
    QueryId,
    QueryInteger,
    QuerySlugs,
    QueryTimestamp,
    Slug,
    StrictBoolean,
    Text,
    Timestamp,
    email_field,
    external_id_field,
    long_text_field,
    new_password_field,
    phone_field,
    priority_code,
    role_field,
    status_code,
    tags_field,
    title_field,
)
from .models import (
    AUDIT_ACTIONS,
    AUDIT_OBJECT_TYPES,
    KEY_SCOPES,
    MAX_ID,
    MAX_LINKS,
    NETWORK_KINDS,
    HistoryAction,
    Role,
    TicketKind,
    TicketPriority,
    TicketStatus,
)
from .scope import current_scope
from .webhooks.events import EVENT_TYPES

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50

# --- Requests -------------------------------------------------------------------------------


class ScopeIn(Schema):
    """The isp_id / branch_id / user_id a client may send in a body."""

    isp_id = Id()
    branch_id = Id()
    user_id = Id()


class TicketScopeArgs(Schema):
    """Optional scope in the query string of the per-ticket endpoints."""

    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()


class PageArgs(Schema):
    """Optional scope and a page: every list but the ticket list takes these."""

    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()
    page = QueryInteger(load_default=1, validate=validate.Range(1, MAX_ID))
    per_page = QueryInteger(load_default=DEFAULT_PER_PAGE, validate=validate.Range(1, MAX_PER_PAGE))


SORTS = ("created_at", "updated_at", "priority", "status", "due_at")


class TicketListArgs(PageArgs):
    isp_id = QueryId(required=True)
    branch_id = QueryId(required=True)
    user_id = QueryId(
        required=True,
        metadata={"description": "The caller's id (an API key may leave it out)."},
    )
    status = QueryCodes(TicketStatus)
    priority = QueryCodes(TicketPriority)
    subscriber_id = QueryId()
    assignee_id = AssigneeFilter()
    created_from = QueryTimestamp()
    created_to = QueryTimestamp(upper=True)
    updated_since = QueryTimestamp()
    overdue = QueryBoolean()
    q = Text(single_line=True, validate=validate.Length(1, 200))
    kind = fields.String(validate=validate.OneOf([kind.value for kind in TicketKind]))
    type = QuerySlugs(metadata={"description": "A ticket type's key, or a comma list."})
    tag = QuerySlugs(metadata={"description": "Tickets carrying every one of these tags."})
    tag_any = QuerySlugs(metadata={"description": "Tickets carrying any of these tags."})
    link = fields.String(
        validate=validate.Length(1, 300),
        metadata={"description": "kind:external_id: the tickets linked to that object."},
    )
    under = fields.String(
        validate=validate.Length(1, 300),
        metadata={
            "description": "kind:external_id: the tickets linked to that object or anything "
            "below it, or whose subscriber is served at or below it."
        },
    )
    sort = fields.String(
        load_default="-created_at",
        validate=validate.OneOf([*SORTS, *(f"-{name}" for name in SORTS)]),
    )
    deleted = fields.String(
        validate=validate.OneOf(["only"]),
        metadata={"description": "only: the deleted tickets instead (admins)."},
    )
    cursor = Cursor(
        metadata={"description": "meta.next_cursor of the page before (instead of page)."}
    )

    @pre_load
    def _a_key_names_its_creator(self, data, **_kwargs):
        """An API key has no user: without a user_id, it names the admin who created it (the
        one user_id it may name)."""
        scope = current_scope()
        if scope.key_id is not None and "user_id" not in data:
            return {**data, "user_id": str(scope.acting_for)}
        return data

    @validates_schema
    def q_has_words(self, data, **kwargs):
        if "q" in data and not search_words(data["q"]):
            raise ValidationError("Give at least one word (letters or digits).", "q")

    @validates_schema(pass_original=True)
    def page_or_cursor(self, data, original, **kwargs):
        if "cursor" in data and "page" in original:
            raise ValidationError("Give page or cursor, not both.", "cursor")


def search_words(text: str) -> list[str]:
    """The terms a text search looks for, lower case: what spaces separate (at most 20),
    each holding a letter or digit."""
    return [term for term in text.lower().split() if _LETTER_OR_DIGIT.search(term)][:20]


_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


class NetworkRefIn(Schema):
    """A network object of the caller's ISP, as its platform names it."""

    kind = fields.String(required=True, validate=validate.OneOf(NETWORK_KINDS))
    external_id = external_id_field(required=True)


def attachment_ids_field() -> fields.List:
    return fields.List(
        Id(),
        validate=validate.Length(max=20),
        metadata={"description": "Attachments uploaded to the ticket for this reply (at most 20)."},
    )


def network_refs(description: str) -> fields.List:
    """A list of network objects, each named once, at most MAX_LINKS of them."""

    def once_each(refs: list) -> None:
        named = [(ref["kind"], ref["external_id"]) for ref in refs]
        if len(set(named)) != len(named):
            raise ValidationError("Name each network object once.")

    return fields.List(
        fields.Nested(NetworkRefIn),
        validate=[validate.Length(max=MAX_LINKS), once_each],
        metadata={"description": description},
    )


LINKS = "The network objects the ticket is about (for a subscriber's ticket, by default the " + (
    "ones that serve the subscriber); an update replaces them."
)


TYPE = "A key of the ISP's ticket types (GET /api/v1/ticket-types), an active one."
TAGS = "Lowercase slugs of at most 40 characters, at most 20; an update replaces them."
DUE_AT = "Set by hand, it wins over the SLA policy's (due_at_manual); null: the policy's."


class TicketIn(ScopeIn):
    title = title_field(required=True)
    description = long_text_field(required=True)
    subscriber_id = Id(allow_none=True)
    priority = fields.Integer(strict=True, required=True, validate=priority_code)
    assignee_id = Id(allow_none=True)
    due_at = Timestamp(allow_none=True, metadata={"description": DUE_AT})
    links = network_refs(LINKS)
    type = Slug(metadata={"description": TYPE + " Default: other."})
    tags = tags_field(metadata={"description": TAGS})


EDITABLE = (
    *("title", "description", "priority", "subscriber_id", "assignee_id", "due_at", "links"),
    *("type", "tags"),
)


class TicketUpdateIn(ScopeIn):
    title = title_field()
    description = long_text_field()
    subscriber_id = Id(allow_none=True)
    priority = fields.Integer(strict=True, validate=priority_code)
    assignee_id = Id(allow_none=True)
    due_at = Timestamp(allow_none=True, metadata={"description": DUE_AT})
    links = network_refs(LINKS)
    type = Slug(metadata={"description": TYPE})
    tags = tags_field(metadata={"description": TAGS})

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not set(EDITABLE) & data.keys():
            raise ValidationError(f"Send at least one of {', '.join(EDITABLE)}.")


STATUSES = (
    "0 Open, 1 In progress, 2 Resolved, 3 Closed (the spec's); 4 Waiting on subscriber: the "
    "SLA clock stops until the ticket leaves it."
)


class TicketStatusIn(ScopeIn):
    status = fields.Integer(
        strict=True, required=True, validate=status_code, metadata={"description": STATUSES}
    )
    restored_at = Timestamp(
        metadata={
            "description": "Resolving an incident: when service came back (not in the future, "
            "not before starts_at; default now)."
        }
    )


# An incident names at least one failing object, when it opens and whenever its links change.
NO_FAILING_OBJECT = "Name at least one failing network object."


class IncidentIn(ScopeIn):
    """An outage of network objects (links: the ones that failed)."""

    title = title_field(required=True)
    description = long_text_field(required=True)
    priority = fields.Integer(strict=True, required=True, validate=priority_code)
    links = network_refs("The network objects that failed (at least one).")
    starts_at = Timestamp(metadata={"description": "Default: now."})
    expected_end_at = Timestamp(allow_none=True)
    planned = StrictBoolean(load_default=False)
    public_message = long_text_field(
        required=True,
        metadata={"description": "What every affected subscriber's new ticket is told."},
    )

    @validates_schema
    def _links_and_times(self, data, **_kwargs):
        if not data.get("links"):
            raise ValidationError(NO_FAILING_OBJECT, "links")
        starts, ends = data.get("starts_at"), data.get("expected_end_at")
        if starts is not None and ends is not None and ends < starts:
            raise ValidationError("Must not be before starts_at.", "expected_end_at")


class IncidentUpdateIn(ScopeIn):
    expected_end_at = Timestamp(allow_none=True)
    public_message = long_text_field()
    links = network_refs(
        "The network objects that failed (at least one): replaces them, and who the incident "
        "affects is worked out again while it is open."
    )

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not {"expected_end_at", "public_message", "links"} & data.keys():
            raise ValidationError("Send at least one of expected_end_at, public_message, links.")
        if "links" in data and not data["links"]:
            raise ValidationError(NO_FAILING_OBJECT, "links")


def _time_zone(name: str) -> None:
    if sla.zone(name) is None:
        raise ValidationError("Give an IANA time zone name, such as Europe/Berlin.")


def dates_field(description: str) -> fields.List:
    """Days (YYYY-MM-DD), each once, at most 366."""

    def once_each(days: list) -> None:
        if len(set(days)) != len(days):
            raise ValidationError("Name each day once.")

    return fields.List(
        fields.Date(format="%Y-%m-%d"),
        validate=[validate.Length(max=366), once_each],
        metadata={"description": description},
    )


class SettingsIn(ScopeIn):
    storm_tickets = fields.Integer(
        strict=True,
        validate=validate.Range(2, 1000),
        metadata={"description": "Tickets below one object that make a storm."},
    )
    storm_minutes = fields.Integer(
        strict=True,
        validate=validate.Range(1, 1440),
        metadata={"description": "Within this many minutes."},
    )
    time_zone = fields.String(
        validate=[validate.Length(1, 64), _time_zone],
        metadata={"description": "IANA name: the zone of the SLA's business hours."},
    )
    holidays = dates_field("Days off of every SLA policy with business hours.")
    auto_close_days = fields.Integer(
        strict=True,
        validate=validate.Range(0, 365),
        metadata={"description": "Resolved tickets close this many days later (0: at once)."},
    )
    staff_display_name = Text(
        single_line=True,
        validate=validate.Length(1, 100),
        metadata={"description": "The name subscribers see on every staff reply."},
    )

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not set(SETTINGS) & data.keys():
            raise ValidationError(f"Send at least one of {', '.join(SETTINGS)}.")


SETTINGS = (
    *("storm_tickets", "storm_minutes", "time_zone", "holidays", "auto_close_days"),
    "staff_display_name",
)


class TicketTypeIn(ScopeIn):
    key = Slug(required=True, metadata={"description": "Never changes once made."})
    name = title_field(required=True)
    default_priority = fields.Integer(strict=True, validate=priority_code, load_default=2)
    default_assignee_id = Id(allow_none=True)
    active = StrictBoolean(load_default=True)


TYPE_FIELDS = ("name", "default_priority", "default_assignee_id", "active")


class TicketTypeUpdateIn(ScopeIn):
    name = title_field()
    default_priority = fields.Integer(strict=True, validate=priority_code)
    default_assignee_id = Id(allow_none=True)
    active = StrictBoolean()

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not set(TYPE_FIELDS) & data.keys():
            raise ValidationError(f"Send at least one of {', '.join(TYPE_FIELDS)}.")


# A budget of minutes: at most a year.
MINUTES = validate.Range(0, 525_600)


def _schedule(value: dict) -> None:
    """A weekly schedule: {day: [[start, end], ...]}, HH:MM within 00:00-24:00, each period
    ending after it starts, a day's periods apart from each other, some time in the week."""
    unknown = set(value) - set(sla.DAYS)
    if unknown:
        raise ValidationError(f"Days are {', '.join(sla.DAYS)}.")
    total = 0
    for day, periods in value.items():
        if not isinstance(periods, list) or len(periods) > 12:
            raise ValidationError(f"{day}: give a list of at most 12 [start, end] periods.")
        parsed = []
        for period in periods:
            if not (isinstance(period, list) and len(period) == 2):
                raise ValidationError(f'{day}: each period is ["HH:MM", "HH:MM"].')
            try:
                start, end = (sla.minutes_of(moment) for moment in period)
            except (ValueError, TypeError, AttributeError):
                raise ValidationError(f"{day}: times are HH:MM, from 00:00 to 24:00.") from None
            if end <= start:
                raise ValidationError(f"{day}: a period ends after it starts.")
            parsed.append((start, end))
        parsed.sort()
        if any(later[0] < earlier[1] for earlier, later in pairwise(parsed)):
            raise ValidationError(f"{day}: periods overlap.")
        total += sum(end - start for start, end in parsed)
    if total == 0:
        raise ValidationError("Give some business hours in the week (or leave them out).")


class SlaPolicyIn(ScopeIn):
    first_response_minutes = fields.Integer(strict=True, required=True, validate=MINUTES)
    resolve_minutes = fields.Integer(strict=True, required=True, validate=MINUTES)
    business_hours = fields.Dict(
        keys=fields.String(),
        allow_none=True,
        validate=_schedule,
        metadata={
            "description": 'Weekly hours in the ISP\'s time zone: {"mon": [["08:00", "18:00"]], '
            "...}; without them, time counts round the clock."
        },
    )
    holidays = dates_field("Days off of this policy, besides the ISP's.")


class SlaPolicyArgs(Schema):
    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()
    type = Slug()


class TagArgs(Schema):
    isp_id = QueryId()
    branch_id = QueryId(metadata={"description": "One branch's tags (staff: their own)."})
    user_id = QueryId()
    q = fields.String(
        validate=[
            validate.Length(1, 40),
            validate.Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*-?$", error="Give the start of a tag."),
        ],
        metadata={"description": "Tags that start with this."},
    )


CANNED_SCOPES = ("isp", "branch", "personal")


class CannedReplyIn(ScopeIn):
    title = title_field(required=True)
    body = long_text_field(required=True)
    scope = fields.String(required=True, validate=validate.OneOf(CANNED_SCOPES))
    tags = tags_field()


class CannedReplyUpdateIn(ScopeIn):
    title = title_field()
    body = long_text_field()
    tags = tags_field()

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not {"title", "body", "tags"} & data.keys():
            raise ValidationError("Send at least one of title, body, tags.")


class CannedReplyArgs(PageArgs):
    q = Text(single_line=True, validate=validate.Length(1, 200))
    tag = Slug()
    scope = fields.String(validate=validate.OneOf(CANNED_SCOPES))


class AcceptIn(ScopeIn):
    title = title_field()
    public_message = long_text_field()


BULK_IDS = 1000


class BulkSetIn(Schema):
    status = fields.Integer(strict=True, validate=status_code)
    priority = fields.Integer(strict=True, validate=priority_code)
    assignee_id = Id(allow_none=True)


class BulkReplyIn(Schema):
    message = long_text_field(required=True)
    internal = StrictBoolean(load_default=False)


class BulkIn(ScopeIn):
    """One change to many tickets: those `ids` names, or those `filter` finds (the list's
    filters, written as its query string writes them: {"status": "0,1", "priority": 3})."""

    ids = fields.List(Id(), validate=validate.Length(1, BULK_IDS))
    filter_ = fields.Dict(keys=fields.String(), data_key="filter")
    set_ = fields.Nested(BulkSetIn, data_key="set")
    reply = fields.Nested(BulkReplyIn)

    @validates_schema
    def _one_target_and_a_change(self, data, **_kwargs):
        if ("ids" in data) == ("filter_" in data):
            raise ValidationError("Send ids or filter (one of them).", "ids")
        if len(set(data.get("ids", []))) != len(data.get("ids", [])):
            raise ValidationError("Name each ticket once.", "ids")
        if not data.get("set_") and "reply" not in data:
            raise ValidationError("Send set (status, priority, assignee_id) or reply.", "set")


class ParentIn(ScopeIn):
    incident_id = Id(required=True)


class ReplyIn(ScopeIn):
    message = long_text_field()
    internal = StrictBoolean(load_default=False)
    canned_reply_id = Id(
        metadata={"description": "Instead of message: a canned reply, rendered for the ticket."}
    )
    variables = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")),
        values=Text(validate=validate.Length(max=1000)),
        validate=validate.Length(max=20),
        metadata={"description": "Values of the canned reply's own variables."},
    )
    attachment_ids = attachment_ids_field()

    @validates_schema
    def _message_or_canned(self, data, **_kwargs):
        if ("message" in data) == ("canned_reply_id" in data):
            raise ValidationError("Send message or canned_reply_id (one of them).", "message")
        if "variables" in data and "canned_reply_id" not in data:
            raise ValidationError("Only a canned reply takes variables.", "variables")


class SubscriberLinkIn(ScopeIn):
    expires_at = Timestamp(
        metadata={
            "description": "When the link stops working: at most a year ahead (default: 30 days)."
        }
    )


class PublicReplyIn(Schema):
    message = long_text_field(required=True)
    attachment_ids = attachment_ids_field()


class StatsArgs(Schema):
    """Scope of the stats: the branch counted defaults to the caller's."""

    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()


class SearchPageArgs(PageArgs):
    q = Text(single_line=True, validate=validate.Length(1, 200))


class UserListArgs(PageArgs):
    """branch_id narrows the list to who can be assigned that branch's tickets."""

    role = fields.String(validate=validate.OneOf([r.value for r in Role]))


AUDIT_ACTOR = re.compile(r"(user|key):[1-9][0-9]{0,9}|system")


class AuditListArgs(Schema):
    """The audit trail's filters, and keyset paging: `cursor` is the previous page's
    meta.next_cursor (entries come newest first)."""

    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()
    actor = fields.String(
        validate=validate.Regexp(AUDIT_ACTOR, error='Use "user:<id>", "key:<id>" or "system".'),
        metadata={"description": 'who acted: "user:<id>", "key:<id>" or "system"'},
    )
    action = fields.String(validate=validate.OneOf(AUDIT_ACTIONS))
    object_type = fields.String(validate=validate.OneOf(AUDIT_OBJECT_TYPES))
    object_id = QueryId()
    from_ = QueryTimestamp(data_key="from")
    to = QueryTimestamp(upper=True)
    cursor = QueryId(metadata={"description": "the previous page's meta.next_cursor"})
    per_page = QueryInteger(load_default=DEFAULT_PER_PAGE, validate=validate.Range(1, MAX_PER_PAGE))

    @validates_schema
    def _bounds_in_order(self, data, **_kwargs):
        if "from_" in data and "to" in data and data["from_"] >= data["to"]:
            raise ValidationError({"to": ["Must be later than from."]})


class UserCreateIn(ScopeIn):
    """A new user of the admin's ISP; branch_id (defaults to the admin's) is the user's."""

    name = title_field(required=True)
    email = email_field(required=True)
    role = role_field(required=True)
    password = new_password_field(required=True)


class UserUpdateIn(ScopeIn):
    """branch_id, when given, moves the user to that branch of the ISP."""

    name = title_field()
    role = role_field()
    is_active = StrictBoolean()
    password = new_password_field()

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not {"name", "role", "is_active", "password", "branch_id"} & data.keys():
            raise ValidationError(
                "Send at least one of name, role, branch_id, is_active, password."
            )


SERVED_BY = "The network objects that serve the subscriber (its service, its CPE...); " + (
    "replaces the ones it had."
)


class SubscriberFieldsIn(ScopeIn):
    """What an admin may set on a subscriber; branch_id (defaults to the admin's) is its branch."""

    name = title_field()
    phone = phone_field()
    email = email_field(allow_none=True)
    external_id = external_id_field(allow_none=True)
    network = network_refs(SERVED_BY)


class SubscriberCreateIn(SubscriberFieldsIn):
    name = title_field(required=True)


class SubscriberUpdateIn(SubscriberFieldsIn):
    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not {"name", "phone", "email", "external_id", "branch_id", "network"} & data.keys():
            raise ValidationError(
                "Send at least one of name, phone, email, external_id, branch_id, network."
            )


class SubscriberSyncIn(ScopeIn):
    """The ISP platform's view of a subscriber it knows by external id."""

    name = title_field(required=True)
    phone = phone_field()
    email = email_field(allow_none=True)
    network = network_refs(SERVED_BY)


ATTRIBUTES_LIMIT = 4096


def _small_object(value: dict) -> None:
    if len(json.dumps(value, separators=(",", ":")).encode()) > ATTRIBUTES_LIMIT:
        raise ValidationError(f"At most {ATTRIBUTES_LIMIT} bytes of JSON.")


class NetworkObjectIn(ScopeIn):
    """A network object as the ISP platform knows it. parent: its uplink (null: a root; left
    out: a new object is a root, an existing one keeps its parent). branch_id is the
    object's branch, if it has one."""

    name = title_field(required=True)
    parent = fields.Nested(NetworkRefIn, allow_none=True)
    branch_id = Id(allow_none=True)
    attributes = fields.Dict(keys=fields.String(), allow_none=True, validate=_small_object)


class NetworkListArgs(PageArgs):
    kind = fields.String(validate=validate.OneOf(NETWORK_KINDS))
    parent = fields.String(
        validate=validate.Length(1, 300),
        metadata={"description": "kind:external_id: the children of that object."},
    )
    q = Text(single_line=True, validate=validate.Length(1, 200))


class ApiKeyIn(ScopeIn):
    """A new key of the admin's ISP. The body's own branch_id is the key's branch (without
    one, the key reaches the whole ISP); rate_limit is checked against the ISP's ceiling by
    the view."""

    name = title_field(required=True)
    scopes = fields.List(
        fields.String(validate=validate.OneOf(KEY_SCOPES)),
        required=True,
        validate=validate.Length(1, len(KEY_SCOPES)),
        metadata={"description": "What the key may do: " + ", ".join(KEY_SCOPES) + "."},
    )
    expires_at = Timestamp(allow_none=True)
    rate_limit = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(1, MAX_ID),
        metadata={
            "description": "Requests a minute (default RATE_LIMIT_PER_KEY), at most "
            "the ISP's ceiling."
        },
    )

    @validates_schema
    def scopes_once_each(self, data, **kwargs):
        if len(set(data.get("scopes", []))) != len(data.get("scopes", [])):
            raise ValidationError("Name each scope once.", "scopes")


class WebhookIn(ScopeIn):
    url = fields.String(required=True, validate=validate.Length(1, 2048))
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(1, len(EVENT_TYPES)),
    )

    @validates_schema
    def events_once_each(self, data, **kwargs):
        if len(set(data.get("events", []))) != len(data.get("events", [])):
            raise ValidationError("Name each event once.", "events")


class NoArgs(Schema):
    """The query string of a route that takes no parameters: any is 422 (unknown)."""


class LoginIn(Schema):
    email = Text(required=True, validate=validate.Length(1, 255))
    password = Password(required=True, validate=validate.Length(1, 1024))


class OutSchema(Schema):
    """A response: a dump writes every field (null where allowed), so each one is required in
    the published document and a generated client types none of them as optional."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.required = True


class UserOut(OutSchema):
    id = fields.Integer()
    name = fields.String()
    email = fields.String()
    role = fields.String()
    isp_id = fields.Integer()
    branch_id = fields.Integer()


class UserAccountOut(UserOut):
    """A user as the users endpoints show one: /auth/me's user, and whether it may log in."""

    is_active = fields.Boolean()


class NetworkRefOut(OutSchema):
    kind = fields.String()
    external_id = fields.String()


class NetworkObjectOut(OutSchema):
    id = fields.Integer()
    kind = fields.String()
    external_id = fields.String()
    name = fields.String()
    parent = fields.Nested(NetworkRefOut, allow_none=True)
    branch_id = fields.Integer(allow_none=True)
    attributes = fields.Dict(allow_none=True)
    depth = fields.Integer(metadata={"description": "1 for a root."})
    created_at = Timestamp()
    updated_at = Timestamp()


class NetworkObjectDetailOut(NetworkObjectOut):
    children_count = fields.Integer()
    subscribers_count = fields.Integer(
        metadata={"description": "Subscribers served at it or below it, within your reach."}
    )


class SubscriberOut(OutSchema):
    id = fields.Integer()
    isp_id = fields.Integer()
    branch_id = fields.Integer()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()
    network = fields.List(fields.Nested(NetworkRefOut), metadata={"description": "What serves it."})


class TokenOut(OutSchema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)


# Who did something, after the spec's user_id and user_name: an API key (user_id null, the
# key's name as user_name), or nobody (null).
ACTING_KEY = {"description": "The API key that did it (user_id is then null)."}


AUTHOR = {
    "description": "Who wrote it: the ISP's side (staff, a key, the service), or the "
    "subscriber through their link or a message (user_id null, their name as user_name)."
}


class AttachmentRefOut(OutSchema):
    """An attachment as a reply lists it."""

    id = fields.Integer()
    name = fields.String()
    size = fields.Integer()
    content_type = fields.String()


class AttachmentOut(AttachmentRefOut):
    sha256 = fields.String()
    created_at = Timestamp()
    reply_id = fields.Integer(allow_none=True)
    by_subscriber = fields.Boolean()


class ReplyOut(OutSchema):
    id = fields.Integer()
    message = fields.String()
    user_name = fields.String()
    created_at = Timestamp()
    user_id = fields.Integer(allow_none=True)
    internal = fields.Boolean()
    key_id = fields.Integer(allow_none=True, metadata=ACTING_KEY)
    author = fields.String(validate=validate.OneOf(["staff", "subscriber"]), metadata=AUTHOR)
    attachments = fields.List(fields.Nested(AttachmentRefOut))


class SubscriberLinkOut(OutSchema):
    token = fields.String(metadata={"description": "Shown once: only its hash is kept."})
    path = fields.String(metadata={"description": "The page the subscriber opens (GET)."})
    expires_at = Timestamp()


class PublicReplyOut(OutSchema):
    id = fields.Integer()
    message = fields.String()
    author = fields.String(validate=validate.OneOf(["staff", "subscriber"]))
    author_name = fields.String(
        metadata={"description": "The subscriber's name, or the ISP's staff_display_name."}
    )
    created_at = Timestamp()
    attachments = fields.List(fields.Nested(AttachmentRefOut))


class PublicTicketOut(OutSchema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    status = fields.Integer()
    created_at = Timestamp()
    updated_at = Timestamp()
    replies = fields.List(fields.Nested(PublicReplyOut))


class BreachedOut(OutSchema):
    """Whether a deadline of the SLA was missed (or, still running, has passed): false
    where there is none. A wait on the subscriber stops the clock."""

    response = fields.Boolean()
    resolution = fields.Boolean()


# Every field a ticket's answers show, defined once. Each answer lists its own, in its order:
# the spec's fields first (as the spec orders them), then the service's.
TICKET_FIELDS = {
    "id": fields.Integer,
    "title": fields.String,
    "description": fields.String,
    "subscriber_id": lambda: fields.Integer(allow_none=True),
    "subscriber_name": lambda: fields.String(allow_none=True),
    "priority": fields.Integer,
    "status": fields.Integer,
    "replies": lambda: fields.List(
        fields.Nested(ReplyOut), metadata={"description": "The first 100."}
    ),
    "created_at": Timestamp,
    "isp_id": fields.Integer,
    "branch_id": fields.Integer,
    "created_by": lambda: fields.Integer(allow_none=True),
    "updated_at": Timestamp,
    "assignee_id": lambda: fields.Integer(allow_none=True),
    "assignee_name": lambda: fields.String(allow_none=True),
    "due_at": lambda: Timestamp(allow_none=True),
    "first_response_at": lambda: Timestamp(allow_none=True),
    "resolved_at": lambda: Timestamp(allow_none=True),
    "closed_at": lambda: Timestamp(allow_none=True),
    "deleted_at": lambda: Timestamp(allow_none=True),
    "replies_total": fields.Integer,
    "created_by_key_id": lambda: fields.Integer(allow_none=True, metadata=ACTING_KEY),
    "kind": lambda: fields.String(metadata={"description": "ticket, or incident"}),
    "parent_id": lambda: fields.Integer(
        allow_none=True, metadata={"description": "The incident it hangs under."}
    ),
    "links": lambda: fields.List(
        fields.Nested(NetworkRefOut), metadata={"description": "The network objects it is about."}
    ),
    "type": lambda: fields.String(metadata={"description": "Its ticket type's key."}),
    "tags": lambda: fields.List(fields.String()),
    "response_due_at": lambda: Timestamp(
        allow_none=True, metadata={"description": "The SLA's first-response deadline."}
    ),
    "due_at_manual": lambda: fields.Boolean(
        metadata={"description": "due_at was set by hand (the SLA policy's does not apply)."}
    ),
    "breached": lambda: fields.Nested(BreachedOut),
}
# What the network adds to every ticket answer, after the rest.
_NETWORK = ("kind", "parent_id", "links")
# What the desk's rules add, last.
_RULES = ("type", "tags", "response_due_at", "due_at_manual", "breached")
# What the desk adds to every ticket answer, after the spec's fields.
_DESK = ("assignee_id", "assignee_name", "due_at", "first_response_at", "resolved_at", "closed_at")


def ticket_answer(name: str, *shown: str) -> type[OutSchema]:
    """An answer about a ticket: these fields of TICKET_FIELDS, in this order."""
    return OutSchema.from_dict({field: TICKET_FIELDS[field]() for field in shown}, name=name)


# A ticket in the list: never its description or its replies.
TicketSummaryOut = ticket_answer(
    "TicketSummaryOut",
    *("id", "title", "subscriber_id", "subscriber_name", "priority", "status", "created_at"),
    *("isp_id", "branch_id", "updated_at", *_DESK, "deleted_at", *_NETWORK, *_RULES),
)
# Fetch Ticket: with the description and the first replies.
TicketOut = ticket_answer(
    "TicketOut",
    *("id", "title", "description", "subscriber_id", "subscriber_name", "priority", "status"),
    *("replies", "created_at", "isp_id", "branch_id", "created_by", "updated_at", *_DESK),
    *("replies_total", "created_by_key_id", *_NETWORK, *_RULES),
)


class HistoryOut(OutSchema):
    id = fields.Integer()
    action = fields.String(validate=validate.OneOf([a.value for a in HistoryAction]))
    field = fields.String(allow_none=True)
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)
    user_id = fields.Integer(allow_none=True)
    user_name = fields.String()
    created_at = Timestamp()
    key_id = fields.Integer(allow_none=True, metadata=ACTING_KEY)
    author = fields.String(validate=validate.OneOf(["staff", "subscriber"]), metadata=AUTHOR)


def _counts(codes, what: str) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.OneOf([str(int(c)) for c in codes])),
        values=fields.Integer(),
        metadata={"description": f"Live tickets per {what} code (every code is present)."},
    )


class StatsOut(OutSchema):
    by_status = _counts(TicketStatus, "status")
    by_priority = _counts(TicketPriority, "priority")
    by_type = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "Live tickets per type key (every type of the catalogue)."},
    )
    unassigned_open = fields.Integer()
    overdue = fields.Integer()


class WebhookOut(OutSchema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    created_at = Timestamp()


class WebhookCreatedOut(WebhookOut):
    """The endpoint as created, with the secret its deliveries are signed with (shown once)."""

    secret = fields.String()


class AttemptOut(OutSchema):
    delivery_id = fields.String()
    event = fields.String()
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no answer"})
    attempted_at = Timestamp()
    next_attempt_at = Timestamp(allow_none=True)


class AuditEntryOut(OutSchema):
    id = fields.Integer()
    at = Timestamp()
    actor_type = fields.String(metadata={"description": "user, key or system"})
    actor_id = fields.Integer(allow_none=True)
    actor_name = fields.String()
    action = fields.String()
    object_type = fields.String()
    object_id = fields.Integer(allow_none=True)
    ip = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    changes = fields.Dict(
        allow_none=True,
        metadata={"description": "each changed field's [old, new]; secrets as [redacted]"},
    )


class ApiKeyOut(OutSchema):
    """A key as the list shows it: never the key itself, nor its hash."""

    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    scopes = fields.List(fields.String())
    branch_id = fields.Integer(allow_none=True)
    expires_at = Timestamp(allow_none=True)
    rate_limit = fields.Integer(allow_none=True)
    created_at = Timestamp()
    created_by = fields.Integer(metadata={"description": "The admin who made it."})
    last_used_at = Timestamp(allow_none=True)
    revoked_at = Timestamp(allow_none=True)


class ApiKeyCreatedOut(OutSchema):
    """The key as created, with the key itself: shown in this answer only."""

    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    key = fields.String(
        metadata={"description": "tsk_<prefix>_<secret>: keep it, it is not shown again."}
    )
    scopes = fields.List(fields.String())
    branch_id = fields.Integer(allow_none=True)
    expires_at = Timestamp(allow_none=True)
    rate_limit = fields.Integer(allow_none=True)
    created_at = Timestamp()


class AuditPageMeta(OutSchema):
    per_page = fields.Integer()
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "the next page's cursor; null on the last"}
    )


class RedeliveryOut(OutSchema):
    delivery_id = fields.String(metadata={"description": "The new delivery's id."})


class IncidentOut(OutSchema):
    """What an incident has beyond a ticket's fields (Fetch Ticket shows those)."""

    id = fields.Integer()
    title = fields.String()
    status = fields.Integer()
    priority = fields.Integer()
    branch_id = fields.Integer()
    starts_at = Timestamp()
    expected_end_at = Timestamp(allow_none=True)
    planned = fields.Boolean()
    public_message = fields.String()
    restored_at = Timestamp(allow_none=True)
    links = fields.List(fields.Nested(NetworkRefOut))
    affected_count = fields.Integer(metadata={"description": "Subscribers affected now."})
    children_count = fields.Integer()


class AffectedOut(OutSchema):
    subscriber_id = fields.Integer()
    external_id = fields.String(allow_none=True)
    name = fields.String()
    branch_id = fields.Integer()
    from_ = Timestamp(data_key="from")
    to = Timestamp(allow_none=True, metadata={"description": "null while still affected"})
    minutes = fields.Integer(metadata={"description": "Whole minutes affected (so far)."})


class ImpactOut(OutSchema):
    subscriber_id = fields.Integer()
    external_id = fields.String(allow_none=True)
    name = fields.String()
    from_ = Timestamp(data_key="from")
    to = Timestamp(allow_none=True, metadata={"description": "null while still affected"})
    minutes = fields.Integer(metadata={"description": "Whole minutes affected (so far)."})


class OutageOut(OutSchema):
    incident_id = fields.Integer()
    title = fields.String()
    from_ = Timestamp(data_key="from")
    to = Timestamp(allow_none=True)
    minutes = fields.Integer()


class OutagesOut(OutSchema):
    outages = fields.List(fields.Nested(OutageOut))
    total_minutes = fields.Integer(
        metadata={"description": "Minutes out of service in the period, overlaps counted once."}
    )


class OutageArgs(Schema):
    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()
    from_ = QueryTimestamp(data_key="from")
    to = QueryTimestamp(upper=True)


class SettingsOut(OutSchema):
    storm_tickets = fields.Integer()
    storm_minutes = fields.Integer()
    time_zone = fields.String()
    holidays = fields.List(fields.String())
    auto_close_days = fields.Integer()
    staff_display_name = fields.String()


class TicketTypeOut(OutSchema):
    id = fields.Integer()
    key = fields.String()
    name = fields.String()
    default_priority = fields.Integer()
    default_assignee_id = fields.Integer(allow_none=True)
    active = fields.Boolean()


class SlaPolicyOut(OutSchema):
    type = fields.String()
    priority = fields.Integer()
    first_response_minutes = fields.Integer()
    resolve_minutes = fields.Integer()
    business_hours = fields.Dict(allow_none=True)
    holidays = fields.List(fields.String())
    updated_at = Timestamp()


class TagOut(OutSchema):
    tag = fields.String()
    count = fields.Integer(metadata={"description": "Live tickets within your reach."})


class CannedReplyOut(OutSchema):
    id = fields.Integer()
    title = fields.String()
    body = fields.String()
    scope = fields.String(metadata={"description": "isp, branch or personal"})
    branch_id = fields.Integer(allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    tags = fields.List(fields.String())
    created_by = fields.Integer()
    created_at = Timestamp()
    updated_at = Timestamp()


class SuggestedObjectOut(NetworkRefOut):
    name = fields.String()


class SuggestionOut(OutSchema):
    id = fields.Integer()
    object = fields.Nested(SuggestedObjectOut)
    ticket_ids = fields.List(fields.Integer())
    first_at = Timestamp()
    last_at = Timestamp()
    count = fields.Integer()


class BulkResultOut(OutSchema):
    id = fields.Integer()
    status = fields.Integer(metadata={"description": "200, 404, 409, 412 or 422"})
    message = fields.String()


class BulkOut(OutSchema):
    results = fields.List(fields.Nested(BulkResultOut))


class CreatedOut(OutSchema):
    id = fields.Integer()


class PageMeta(OutSchema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


class TicketPageMeta(PageMeta):
    page = fields.Integer(allow_none=True, metadata={"description": "null when paging by cursor"})
    total_exact = fields.Boolean(
        metadata={"description": "false: more than total match (a filtered count stops there)"}
    )
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "the next page's cursor; null on the last"}
    )


class HealthOut(OutSchema):
    status = fields.String(validate=validate.Equal("ok"))


class ReadinessOut(OutSchema):
    status = fields.String(validate=validate.Equal("ready"))
    database = fields.String(validate=validate.Equal("ok"))


ticket_in = TicketIn()
ticket_type_in = TicketTypeIn()
ticket_type_update_in = TicketTypeUpdateIn()
sla_policy_in = SlaPolicyIn()
sla_policy_args = SlaPolicyArgs()
tag_args = TagArgs()
canned_reply_in = CannedReplyIn()
canned_reply_update_in = CannedReplyUpdateIn()
canned_reply_args = CannedReplyArgs()
ticket_update_in = TicketUpdateIn()
ticket_status_in = TicketStatusIn()
reply_in = ReplyIn()
subscriber_link_in = SubscriberLinkIn()
public_reply_in = PublicReplyIn()
ticket_list_args = TicketListArgs()
ticket_scope_args = TicketScopeArgs()
scope_in = ScopeIn()
login_in = LoginIn()
no_args = NoArgs()
user_out = UserOut()
subscriber_out = SubscriberOut()
reply_list_args = PageArgs()
stats_args = StatsArgs()
subscriber_list_args = SearchPageArgs()
subscriber_create_in = SubscriberCreateIn()
subscriber_update_in = SubscriberUpdateIn()
subscriber_sync_in = SubscriberSyncIn()
user_list_args = UserListArgs()
audit_list_args = AuditListArgs()
user_create_in = UserCreateIn()
user_update_in = UserUpdateIn()
webhook_in = WebhookIn()
api_key_in = ApiKeyIn()
network_object_in = NetworkObjectIn()
incident_in = IncidentIn()
incident_update_in = IncidentUpdateIn()
parent_in = ParentIn()
bulk_in = BulkIn()
settings_in = SettingsIn()
accept_in = AcceptIn()
outage_args = OutageArgs()
network_list_args = NetworkListArgs()

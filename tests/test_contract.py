"""The published contract: the OpenAPI document is generated from the routes' own declarations,
validates, describes every route, agrees with what each view declares, takes its constraints
from the schemas, and the docs page needs nothing from outside."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from marshmallow import ValidationError
from openapi_spec_validator import validate
from schemathesis import checks
from sqlalchemy import select, update
from support.client import PASSWORD, SCOPE, Account, scope_of
from support.database import app_config

from tickets_service import create_app, public, storage
from tickets_service.attachments import EXTENSIONS
from tickets_service.desk import ensure_catalogue
from tickets_service.extensions import db
from tickets_service.fields import Password, Text, Timestamp
from tickets_service.models import (
    MAX_ID,
    ApiKey,
    Attachment,
    AttachmentBlob,
    CannedReply,
    Incident,
    IncidentSuggestion,
    NetworkObject,
    SlaPolicy,
    SubscriberLink,
    Ticket,
    TicketHistory,
    TicketReply,
    TicketType,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from tickets_service.tokens import issue_token
from tickets_service.webhooks.events import new_delivery

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# Routes that are the documentation itself, not the API it documents.
UNDOCUMENTED_ENDPOINTS = {"static", "api-docs.openapi_json", "api-docs.openapi_swagger_ui"}
UNDOCUMENTED_ENDPOINTS.add("api-docs.swagger_ui_asset")
# The subscriber's page: HTML for a person, beside the API (tests/test_public_page.py).
UNDOCUMENTED_ENDPOINTS |= {"page.page", "page.page_reply", "page.page_file"}
TIMESTAMP = Timestamp().metadata["pattern"]
AN_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
SINGLE_LINE_TEXT = Text(single_line=True).metadata["pattern"]


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def described_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def openapi_path(rule) -> str:
    """The rule's path as OpenAPI writes it: <converter:name> is {name}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def routed_operations(app) -> set[tuple[str, str]]:
    """(method, OpenAPI path) for every route."""
    return {
        (method.lower(), openapi_path(rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in UNDOCUMENTED_ENDPOINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def operation(document: dict, method: str, path: str) -> dict:
    return document["paths"][path][method]


def ref(schema: str) -> dict:
    return {"$ref": f"#/components/schemas/{schema}"}


def resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        section, kind, name = node["$ref"].removeprefix("#/").split("/")
        node = document[section][kind][name]
    return node


# --- The document ---------------------------------------------------------------------------


def test_document_is_valid_openapi(document):
    assert document["openapi"].startswith("3.0.")
    validate(document)


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/docs"])
def test_the_document_and_the_docs_need_no_token(client, path):
    assert client.get(path, headers={"Authorization": "Bearer nonsense"}).status_code == 200


def test_every_route_is_described_and_every_described_operation_routed(app, document):
    missing = routed_operations(app) - described_operations(document)
    assert not missing, f"routes the OpenAPI document does not describe: {sorted(missing)}"
    phantom = described_operations(document) - routed_operations(app)
    assert not phantom, f"operations described but not routed: {sorted(phantom)}"


def test_the_route_check_sees_an_undescribed_route(make_app, document):
    """The coverage test above fails for a route added behind the Api's back."""
    other = make_app()
    archive = "/api/v1/tickets/<id:ticket_id>/archive"
    other.add_url_rule(archive, "archive", lambda: "", methods=["POST"])
    missing = routed_operations(other) - described_operations(document)
    assert missing == {("post", "/api/v1/tickets/{ticket_id}/archive")}


def test_operation_ids_are_unique(document):
    ids = [
        item["operationId"]
        for methods in document["paths"].values()
        for item in methods.values()
        if isinstance(item, dict) and "operationId" in item
    ]
    assert len(ids) == len(set(ids)) == len(described_operations(document))


def test_bearer_scheme(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert {name: scheme[name] for name in ("type", "scheme")} == {
        "type": "http",
        "scheme": "bearer",
    }
    assert "/api/v1/auth/login" in scheme["description"]
    assert "/api/v1/api-keys" in scheme["description"]


PUBLIC = {("post", "/api/v1/auth/login"), ("get", "/healthz"), ("get", "/readyz")}
# What a subscriber's link opens: the token in the path is the key.
LINK = "/api/v1/public/tickets/{token}"
PUBLIC |= {("get", LINK), ("post", f"{LINK}/reply"), ("post", f"{LINK}/attachments")}
PUBLIC |= {("get", f"{LINK}/attachments/{{attachment_id}}")}
# Downloads: the file's bytes, under the type sniffed when it was stored, not the envelope.
DOWNLOADS = {("get", "/api/v1/attachments/{attachment_id}")}
DOWNLOADS |= {("get", f"{LINK}/attachments/{{attachment_id}}")}


@pytest.mark.parametrize("method, path", sorted(PUBLIC))
def test_public_operations_ask_for_no_token(document, method, path):
    assert "security" not in operation(document, method, path)


def test_downloads_are_only_of_allowed_types_and_public_operations_say_when_links_end(document):
    for method, path in DOWNLOADS:
        assert set(operation(document, method, path)["responses"]["200"]["content"]) == {
            *EXTENSIONS
        }
    for method, path in (
        PUBLIC - {("post", "/api/v1/auth/login"), ("get", "/healthz")} - {("get", "/readyz")}
    ):
        assert {"404", "410", "429"} <= set(operation(document, method, path)["responses"])


def test_every_other_operation_asks_for_the_bearer_token_and_may_answer_401(document):
    for method, path in described_operations(document) - PUBLIC:
        item = operation(document, method, path)
        assert item["security"] == [{"bearerAuth": []}], (method, path)
        assert "401" in item["responses"], (method, path)


@pytest.mark.parametrize(
    "method, path, codes",
    [
        ("get", "/api/v1/tickets", {"200", "401", "403", "422"}),
        ("post", "/api/v1/tickets", {"201", "400", "401", "403", "413", "422"}),
        ("get", "/api/v1/tickets/{ticket_id}", {"200", "401", "403", "404", "422"}),
        ("put", "/api/v1/tickets/{ticket_id}", {"200", "400", "401", "403", "404", "413", "422"}),
        ("delete", "/api/v1/tickets/{ticket_id}", {"200", "401", "403", "404"}),
        ("post", "/api/v1/tickets/{ticket_id}/reply", {"201", "400", "404", "413", "422"}),
        ("put", "/api/v1/tickets/{ticket_id}/status", {"200", "400", "404", "413", "422"}),
        ("post", "/api/v1/auth/login", {"200", "400", "401", "413", "422", "429"}),
        ("get", "/api/v1/auth/me", {"200", "401"}),
        ("post", "/api/v1/auth/logout", {"200", "401"}),
        ("get", "/healthz", {"200"}),
        ("get", "/readyz", {"200", "503"}),
    ],
)
def test_status_codes_of_the_contract(document, method, path, codes):
    assert codes <= set(operation(document, method, path)["responses"])


def test_every_response_is_the_envelope(document):
    for method, path in described_operations(document):
        for status, response in operation(document, method, path)["responses"].items():
            if status == "304":  # Not Modified has no body
                continue
            if (method, path) in DOWNLOADS and status == "200":
                content = resolve(document, response)["content"]
                assert "application/json" not in content and "text/html" not in content
                assert set(content) <= {*EXTENSIONS}, (method, path)
                continue
            media = resolve(document, response)["content"]["application/json"]
            body = resolve(document, media["schema"])
            assert {"success"} <= set(body["required"]), (method, path, status)
            assert body["properties"]["success"]["enum"] == [status < "400"], (method, path)
            if status >= "400":
                assert "message" in body["required"], (method, path, status)
            if status == "422":
                errors = body["properties"]["errors"]["additionalProperties"]
                assert errors == {"type": "array", "items": {"type": "string"}}


def test_success_envelopes_wrap_the_data_schemas(document):
    schemas = document["components"]["schemas"]
    listing = schemas["ListTicketsResponse"]
    assert listing["properties"]["data"] == {"type": "array", "items": ref("TicketSummaryOut")}
    assert listing["properties"]["meta"] == ref("TicketPageMeta")
    assert schemas["GetTicketResponse"]["properties"]["data"] == ref("TicketOut")
    created = schemas["CreateTicketResponse"]
    assert set(created["required"]) == {"success", "message", "data"}
    assert schemas["LoginResponse"]["properties"]["data"] == ref("TokenOut")
    # Every field of a dumped schema is always written, null where the field allows it.
    ticket = schemas["TicketOut"]
    assert set(ticket["required"]) == set(ticket["properties"])
    assert ticket["properties"]["subscriber_id"] == {"type": "integer", "nullable": True}
    assert ticket["properties"]["replies"]["items"] == ref("ReplyOut")


def test_logout_takes_no_body_and_answers_a_message(document):
    """Its bearer security and 401 are checked with every other operation's."""
    logout = operation(document, "post", "/api/v1/auth/logout")
    ok = resolve(document, logout["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(ok["properties"]) == {"success", "message"}
    assert "requestBody" not in logout


def test_429_says_when_to_retry(document):
    login = operation(document, "post", "/api/v1/auth/login")
    assert "Retry-After" in resolve(document, login["responses"]["429"])["headers"]


# --- Each operation documents exactly what its view declares ---------------------------------


def _ref_name(node: dict) -> str:
    node = node.get("items", node)
    return node["$ref"].rsplit("/", 1)[1]


def declared(app) -> dict[tuple[str, str], dict]:
    """(method, path) -> the schemas the view's decorators declare: body, query, data."""
    found = {}
    for rule in app.url_map.iter_rules():
        apidoc = getattr(app.view_functions[rule.endpoint], "_apidoc", None)
        if apidoc is None:
            continue
        path = openapi_path(rule)
        arguments = {
            p["in"]: p["schema"] for p in apidoc.get("arguments", {}).get("parameters", [])
        }
        # The JSON answer (an operation may also answer its status in another type: CSV); a
        # download declares none.
        data = "a download"
        if "response" in apidoc:
            answers = apidoc["response"]["responses"][apidoc["success_status_codes"][0]]
            [success, *_] = [answer for answer in answers if hasattr(answer["schema"], "fields")]
            data = success["schema"].fields.get("data")
            data = type(data.schema).__name__ if data is not None else None
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found[(method.lower(), path)] = {
                "body": type(arguments["json"]).__name__ if "json" in arguments else None,
                "query": {
                    field.data_key or name for name, field in arguments["query"].fields.items()
                }
                if "query" in arguments
                else set(),
                "data": data,
            }
    return found


def documented(document: dict, method: str, path: str) -> dict:
    item = operation(document, method, path)
    body = item.get("requestBody", {}).get("content", {}).get("application/json")
    status = min(code for code in item["responses"] if code < "300")
    if (method, path) in DOWNLOADS:
        data = "a download"
    else:
        media = item["responses"][status]["content"]["application/json"]
        data = resolve(document, media["schema"])["properties"].get("data")
        data = _ref_name(data) if data else None
    return {
        "body": _ref_name(body["schema"]) if body else None,
        "query": {p["name"] for p in item.get("parameters", []) if p.get("in") == "query"},
        "data": data,
    }


def disagreements(app, document: dict) -> list:
    return [
        (key, schemas, documented(document, *key))
        for key, schemas in declared(app).items()
        if schemas != documented(document, *key)
    ]


def test_every_operation_documents_the_schemas_its_view_declares(app, document):
    assert declared(app).keys() == described_operations(document)
    assert not disagreements(app, document)


def test_the_agreement_check_sees_a_document_that_lies(app, document):
    """Point the documented body of Create Ticket at another schema: the check must object."""
    create = operation(document, "post", "/api/v1/tickets")
    create["requestBody"]["content"]["application/json"]["schema"] = ref("TicketUpdateIn")
    ((key, mine, theirs),) = disagreements(app, document)
    assert key == ("post", "/api/v1/tickets")
    assert (mine["body"], theirs["body"]) == ("TicketIn", "TicketUpdateIn")


# --- Constraints come from the schemas' validators ------------------------------------------


def test_ticket_id_path_parameter(document):
    for path in document["paths"]:
        if "{ticket_id}" not in path:
            continue
        (ticket_id,) = document["paths"][path]["parameters"]
        assert ticket_id["in"] == "path"
        assert ticket_id["name"] == "ticket_id" and ticket_id["required"] is True
        assert ticket_id["schema"] == AN_ID


def test_list_query_parameters_come_from_ticket_list_args(document):
    parameters = {p["name"]: p for p in operation(document, "get", "/api/v1/tickets")["parameters"]}
    assert set(parameters) == {
        *("isp_id", "branch_id", "user_id", "status", "priority", "page", "per_page"),
        *("subscriber_id", "assignee_id", "created_from", "created_to", "updated_since"),
        *("overdue", "q", "sort", "deleted", "cursor", "kind", "link", "under"),
        *("type", "tag", "tag_any"),
    }
    assert all(p["in"] == "query" for p in parameters.values())
    for name in ("isp_id", "branch_id", "user_id"):
        assert parameters[name]["required"] is True
        assert parameters[name]["schema"] == AN_ID
    assert "[0, 1, 2, 3, 4]" in parameters["status"]["description"]
    assert "[1, 2, 3]" in parameters["priority"]["description"]
    per_page = {"type": "integer", "default": 50, "minimum": 1, "maximum": 200}
    assert parameters["per_page"]["schema"] == per_page


def test_per_ticket_query_parameters_come_from_ticket_scope_args(document):
    parameters = operation(document, "delete", "/api/v1/tickets/{ticket_id}")["parameters"]
    query = {p["name"]: p for p in parameters if p.get("in") == "query"}
    assert set(query) == {"isp_id", "branch_id", "user_id"}
    assert not any(p["required"] for p in query.values())


def test_ticket_body_constraints(document):
    ticket_in = document["components"]["schemas"]["TicketIn"]
    assert set(ticket_in["required"]) == {"title", "description", "priority"}
    assert ticket_in["additionalProperties"] is False
    title = ticket_in["properties"]["title"]
    assert (title["type"], title["minLength"], title["maxLength"]) == ("string", 1, 255)
    assert title["pattern"] == SINGLE_LINE_TEXT
    assert ticket_in["properties"]["description"]["maxLength"] == 10_000
    assert ticket_in["properties"]["priority"] == {"type": "integer", "enum": [1, 2, 3]}
    assert ticket_in["properties"]["subscriber_id"] == {**AN_ID, "nullable": True}
    status_in = document["components"]["schemas"]["TicketStatusIn"]
    status = status_in["properties"]["status"]
    assert (status["type"], status["enum"]) == ("integer", [0, 1, 2, 3, 4])
    assert "4 Waiting on subscriber" in status["description"]


def test_timestamps_are_documented_with_their_format(document):
    created_at = document["components"]["schemas"]["TicketSummaryOut"]["properties"]["created_at"]
    assert created_at["type"] == "string"
    assert created_at["pattern"] == TIMESTAMP


# --- The patterns say what the custom fields do ----------------------------------------------


def _accepts(field, value: str) -> bool:
    try:
        field.deserialize(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "field", [Text(), Text(single_line=True), Password()], ids=["text", "single line", "password"]
)
def test_text_patterns_agree_with_the_fields(field):
    """Within a text (trimming aside), a character passes the pattern iff the field takes it."""
    pattern = field.metadata["pattern"]
    for code in [*range(0x00, 0xA0), 0x2028, 0xFEFF]:
        value = f"a{chr(code)}b"
        assert bool(re.fullmatch(pattern, value)) == _accepts(field, value), hex(code)


def test_timestamp_pattern_matches_what_the_field_writes():
    from datetime import UTC, datetime

    written = Timestamp().serialize("t", {"t": datetime(2024, 1, 15, 10, 30, tzinfo=UTC)})
    assert written == "2024-01-15 10:30:00"
    assert re.fullmatch(TIMESTAMP, written)


# --- The docs page --------------------------------------------------------------------------


class _AssetLinks(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


def test_docs_page_is_html_with_local_assets_only(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    links = _AssetLinks()
    links.feed(page)
    assert len(links.urls) >= 2  # at least the stylesheet and the script
    for url in links.urls:
        assert url.startswith("/") and not url.startswith("//"), url
    assert "http://" not in page and "https://" not in page
    assert '"/api/v1/openapi.json"' in page


def test_docs_assets_are_served_by_the_app(client):
    links = _AssetLinks()
    links.feed(client.get("/api/v1/docs").get_data(as_text=True))
    for url in links.urls:
        with client.get(url) as response:  # a file response: close it
            assert response.status_code == 200, url
            assert response.get_data(), url
            if url.endswith(".js"):
                assert response.mimetype == "text/javascript"
            if url.endswith(".css"):
                assert response.mimetype == "text/css"


@pytest.mark.parametrize(
    "path", ["/api/v1/docs/assets/nothing.js", "/api/v1/docs/assets/../../../etc/passwd"]
)
def test_unknown_assets_are_404_in_the_envelope(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json() == {"success": False, "message": "Not found."}


# --- Schemathesis: the app conforms to its document ------------------------------------------
# With a valid admin token, for every operation, generated requests (valid and invalid) never
# get a 5xx, and every response has a documented status code and content type and conforms to
# its documented schema. Seeded and bounded: Hypothesis is derandomized, without an example
# database, and capped in examples per operation, so a run sends the same requests on every
# machine and stays short; every request goes to the `app` fixture, on the suite's database.

CHECKS = [checks.not_a_server_error, checks.status_code_conformance]
CHECKS += [checks.content_type_conformance, checks.response_headers_conformance]
CHECKS += [checks.response_schema_conformance]
LOGOUT = "/api/v1/auth/logout"
HOOK = "https://hooks.example.test/tickets"

# Loaded at import, so that pytest collects one test per operation (the lazy
# `schemathesis.pytest.from_fixture` loader fails under pytest 9.2). The document depends on no
# database: an app on an in-memory one serves it.
DOCUMENT = create_app(app_config("sqlite://")).test_client().get("/api/v1/openapi.json").get_json()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {"generation": {"database": "none"}, "phases": {"stateful": {"enabled": False}}}
    ),
)


@dataclass
class Steering:
    """The seeded data the generation hooks may substitute, set for each test."""

    admin: Account | None = None
    tickets: list[int] = field(default_factory=list)
    subscriber: int | None = None
    staff: int | None = None
    webhook: int | None = None
    delivery: str | None = None
    api_key: int | None = None
    incident: int | None = None
    suggestion: int | None = None
    ticket_type: int | None = None
    canned: int | None = None
    attachment: int | None = None


# A subscriber's link to the first seeded ticket.
STEERED_TOKEN = "steered-token-0123456789abcdefghijklmnopqrstuv"
STEERED_FILE = b"Speed test: 3 Mbit/s down\n"


STEERING = Steering()
# A network object of the admin's ISP that paths may name.
STEERED_SITE = "steered-site"


@pytest.fixture
def steering(app, admin, make_user, make_subscriber, make_ticket, make_reply):
    """Tickets with and without subscriber and replies, in two branches of the admin's ISP,
    and a deleted one to restore; a staff user to manage; a webhook with a delivery."""
    subscriber = make_subscriber(isp_id=1, branch_id=1)
    staff = make_user(isp_id=1, branch_id=2, role="staff")
    tickets = [
        make_ticket(admin, subscriber_id=subscriber),
        make_ticket(admin),
        make_ticket(staff, branch_id=2, status=2, priority=3),
        make_ticket(admin, deleted_at=utcnow()),
    ]
    make_reply(tickets[0], admin)
    make_reply(tickets[0], staff)
    STEERING.admin, STEERING.tickets, STEERING.subscriber = admin, tickets, subscriber
    STEERING.staff = staff.id
    with app.app_context():
        endpoint = WebhookEndpoint(
            isp_id=1, url=HOOK, events=["ticket.created"], secret="s", created_by_id=admin.id
        )
        db.session.add(endpoint)
        db.session.flush()
        entry = TicketHistory(ticket_id=tickets[0], user_id=admin.id, action="created")
        db.session.add(entry)
        db.session.flush()
        db.session.add(new_delivery(endpoint.id, entry.id, "ticket.created", utcnow()))
        db.session.commit()
        STEERING.webhook = endpoint.id
        STEERING.delivery = db.session.scalar(select(WebhookDelivery.delivery_id))
        key = ApiKey(
            isp_id=1,
            name="Monitoring",
            prefix="0123456789ab",
            secret_hash="0" * 64,
            scopes=["tickets:read"],
            created_by_id=admin.id,
            created_at=utcnow(),
        )
        db.session.add(key)
        db.session.commit()
        STEERING.api_key = key.id
        site = NetworkObject(
            isp_id=1, kind="site", external_id=STEERED_SITE, name="Steered", path="/", depth=1
        )
        db.session.add(site)
        db.session.flush()
        site.path = f"/{site.id}/"
        # An incident over the first ticket, and a suggestion at the site.
        incident = Ticket(
            isp_id=1,
            branch_id=1,
            created_by_id=admin.id,
            kind="incident",
            title="Steered outage",
            description="The site is down",
            priority=3,
            status=0,
        )
        db.session.add(incident)
        db.session.flush()
        db.session.add(
            Incident(ticket_id=incident.id, isp_id=1, starts_at=utcnow(), public_message="Soon.")
        )
        db.session.execute(
            update(Ticket).where(Ticket.id == tickets[0]).values(parent_id=incident.id)
        )
        suggestion = IncidentSuggestion(
            isp_id=1,
            object_id=site.id,
            ticket_ids=[tickets[1]],
            first_at=utcnow(),
            last_at=utcnow(),
            status="open",
        )
        db.session.add(suggestion)
        # The catalogue, a policy of faults of high priority, a canned reply of branch 1.
        ensure_catalogue(1)
        db.session.add(
            SlaPolicy(
                isp_id=1, type="fault", priority=3, first_response_minutes=5, resolve_minutes=60
            )
        )
        canned = CannedReply(
            isp_id=1, scope="branch", branch_id=1, title="Hi", body="Hi", created_by_id=admin.id
        )
        db.session.add(canned)
        db.session.commit()
        STEERING.incident, STEERING.suggestion = incident.id, suggestion.id
        STEERING.ticket_type = db.session.scalar(
            select(TicketType.id).where(TicketType.isp_id == 1, TicketType.key == "fault")
        )
        STEERING.canned = canned.id
        STEERING.attachment = _steered_attachment(tickets[0], admin.id)
        db.session.remove()
    yield STEERING
    STEERING.admin, STEERING.tickets, STEERING.subscriber, STEERING.staff = None, [], None, None


def _steered_attachment(ticket_id: int, admin_id: int) -> int:
    """A link to the ticket, and a file on a public reply of it (stored, so it downloads)."""
    sha = hashlib.sha256(STEERED_FILE).hexdigest()
    storage.store().put(storage.object_name(1, sha), io.BytesIO(STEERED_FILE))
    db.session.add(AttachmentBlob(isp_id=1, sha256=sha, size=len(STEERED_FILE)))
    db.session.add(
        SubscriberLink(
            isp_id=1,
            ticket_id=ticket_id,
            token_hash=public.token_hash(STEERED_TOKEN),
            expires_at=utcnow() + timedelta(days=1),
            created_by_id=admin_id,
        )
    )
    reply = TicketReply(ticket_id=ticket_id, user_id=admin_id, message="The test", attachments=[])
    db.session.add(reply)
    db.session.flush()
    attachment = Attachment(
        isp_id=1,
        ticket_id=ticket_id,
        reply_id=reply.id,
        name="speed.txt",
        size=len(STEERED_FILE),
        content_type="text/plain",
        sha256=sha,
        uploaded_by_id=admin_id,
    )
    db.session.add(attachment)
    db.session.flush()
    reply.attachments = [{"id": attachment.id, "name": "speed.txt", "size": attachment.size}]
    reply.attachments[0]["content_type"] = "text/plain"
    db.session.commit()
    return attachment.id


# Random ids and scopes almost always meet 403 or 404. These hooks let Hypothesis also pick the
# admin's own scope, the seeded tickets and subscriber, and the admin's real credentials, so
# that success responses are generated and checked too. The steered value comes first: it is
# what Hypothesis draws when its data runs short (a large body can use it all up), so an
# operation with a big schema still meets a success.


def _in_own_scope(values):
    if not isinstance(values, dict) or STEERING.admin is None:
        return st.just(values)
    own = scope_of(STEERING.admin)
    steered = {**values, **{key: own[key] for key in SCOPE if key in values}}
    return st.sampled_from([steered, values])


# Operations whose successes need several steered parts at once: their query is mostly the
# caller's own scope too.
STEERED_OFTEN = {"/api/v1/tickets/{ticket_id}", "/api/v1/tickets/{ticket_id}/parent"}


@schema.hook
def flatmap_query(context, query):
    if context.operation.path in STEERED_OFTEN and isinstance(query, dict) and STEERING.admin:
        own = {k: v for k, v in scope_of(STEERING.admin).items() if k in query}
        return st.sampled_from([own, query, own])
    return _in_own_scope(query)


@schema.hook
def flatmap_body(context, body):
    if STEERING.admin is None:
        return st.just(body)
    if context.operation.path.endswith("/login"):
        real = {"email": STEERING.admin.email, "password": PASSWORD}
        return st.sampled_from([body, real])
    if isinstance(body, dict) and body.get("subscriber_id") is not None:
        body = {**body, "subscriber_id": STEERING.subscriber}
    if isinstance(body, dict) and "incident_id" in body:
        body = {**body, "incident_id": STEERING.incident}
    site = [{"kind": "site", "external_id": STEERED_SITE}]
    steered = {
        "/api/v1/incidents": {
            "title": "Down",
            "description": "No light",
            "priority": 3,
            "links": site,
            "public_message": "Soon.",
        },
        "/api/v1/incidents/{incident_id}": {"public_message": "Later."},
        "/api/v1/tickets/bulk": {"ids": STEERING.tickets[:2], "set": {"priority": 2}},
        "/api/v1/tickets/{ticket_id}": {"title": "Renamed"},
        "/api/v1/tickets/{ticket_id}/parent": {"incident_id": STEERING.incident},
        "/api/v1/ticket-types": {"key": "steered", "name": "Steered"},
        "/api/v1/ticket-types/{type_id}": {"name": "Renamed"},
        "/api/v1/sla-policies/{type_key}/{priority}": {
            "first_response_minutes": 30,
            "resolve_minutes": 240,
        },
        "/api/v1/canned-replies": {"title": "Hello", "body": "Hello", "scope": "personal"},
        "/api/v1/canned-replies/{reply_id}": {"title": "Renamed"},
        # Message or canned reply, never both: a random body is rarely either alone.
        "/api/v1/tickets/{ticket_id}/reply": {"message": "Hello."},
        "/api/v1/subscribers/{subscriber_id}": {"name": "Renamed"},
        "/api/v1/network/{kind}/{external_id}": {"name": "Renamed"},
        "/api/v1/settings": {"storm_tickets": 7, "auto_close_days": 3},
        "/api/v1/public/tickets/{token}/reply": {"message": "Thanks, it works."},
        "/api/v1/tickets/{ticket_id}/attachments": {"files": [STEERED_FILE]},
        "/api/v1/public/tickets/{token}/attachments": {"files": [STEERED_FILE]},
    }.get(context.operation.path)
    if isinstance(body, dict) and steered is not None:
        # Mostly the valid body: a success also needs a seeded id, the own scope, no If-Match.
        return st.sampled_from([steered, body, steered])
    if isinstance(body, dict) and (body.keys() & {"links", "network", "parent"}):
        # Random network objects are never the ISP's: also send the body without them.
        plain = {k: v for k, v in body.items() if k not in {"links", "network", "parent"}}
        return st.sampled_from([plain, body]).flatmap(_in_own_scope)
    if isinstance(body, dict) and body.get("assignee_id") is not None:
        body = {**body, "assignee_id": STEERING.admin.id}
    if isinstance(body, dict) and context.operation.path == "/api/v1/webhooks":
        return st.sampled_from([body, {"url": HOOK, "events": ["ticket.created"]}])
    if isinstance(body, dict) and context.operation.path == "/api/v1/api-keys":
        return st.sampled_from([body, {"name": "Billing export", "scopes": ["tickets:read"]}])
    return _in_own_scope(body)


@schema.hook
def flatmap_headers(context, headers):
    """Generated Idempotency-Key and If-Match values almost never fit: also send none."""
    if not isinstance(headers, dict):
        return st.just(headers)
    plain = {k: v for k, v in headers.items() if k not in {"Idempotency-Key", "If-Match"}}
    return st.sampled_from([plain, headers])


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    seeded = {
        "ticket_id": STEERING.tickets,
        "subscriber_id": [STEERING.subscriber],
        "user_id": [STEERING.staff],
        "webhook_id": [STEERING.webhook],
        "delivery_id": [STEERING.delivery],
        "key_id": [STEERING.api_key],
        "incident_id": [STEERING.incident],
        "suggestion_id": [STEERING.suggestion],
        "type_id": [STEERING.ticket_type],
        "reply_id": [STEERING.canned],
        "type_key": ["fault"],
        "priority": [3],
        "token": [STEERED_TOKEN],
        "attachment_id": [STEERING.attachment],
    }
    choices = [
        {**path_parameters, name: value}
        for name in path_parameters.keys() & seeded.keys()
        for value in seeded[name]
    ]
    if "kind" in path_parameters:
        choices.append({**path_parameters, "kind": "site", "external_id": STEERED_SITE})
    if "type_key" in path_parameters:  # a policy that exists
        choices.append({**path_parameters, "type_key": "fault", "priority": 3})
    if {"token", "attachment_id"} <= path_parameters.keys():  # a file the link shows
        choices.append(
            {**path_parameters, "token": STEERED_TOKEN, "attachment_id": STEERING.attachment}
        )
    return st.sampled_from([*choices, path_parameters])


@pytest.fixture
def token_headers(app, admin):
    """The admin's token, except for logout: each logout revokes a token of its own."""

    def headers_for(case) -> dict:
        if case.operation.path != LOGOUT:
            return admin.headers
        with app.app_context():
            token = issue_token(db.session.get(User, admin.id))["access_token"]
            db.session.remove()
        return {"Authorization": f"Bearer {token}"}

    return headers_for


@pytest.fixture
def exercised():
    """Status codes the operation answered to its own method (not to the TRACE or OPTIONS
    Schemathesis also tries): at the end it must have been called, and have succeeded."""
    seen: Counter = Counter()
    yield seen
    assert seen, "no request was sent for this operation"
    assert any(status < 300 for status in seen), f"never answered 2xx, only {dict(seen)}"


def test_every_operation_is_tested(client):
    """One generated test per operation, on the document the app serves."""
    assert client.get("/api/v1/openapi.json").get_json()["paths"] == DOCUMENT["paths"]
    labels = {operation.ok().label for operation in schema.get_all_operations()}
    assert labels == {f"{method.upper()} {path}" for method, path in described_operations(DOCUMENT)}


@schema.parametrize()
@hypothesis.settings(
    derandomize=True,
    database=None,
    max_examples=30,
    deadline=None,
    # The seeded data and token are meant to be shared by every example of an operation.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_conforms_to_its_document(case, app, steering, token_headers, exercised):
    headers = token_headers(case)
    response = case.call(app=app, headers=headers)
    if case.method.upper() == case.operation.method.upper():
        exercised[response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers, transport_kwargs={"app": app})


# --- A generated client is typed -------------------------------------------------------------


@pytest.mark.slow
def test_a_generated_client_gets_a_typed_body_for_every_answer(tmp_path):
    """openapi-python-client turns every documented answer, success or error, into a model."""
    generator = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable))
    assert generator, "openapi-python-client is a dev dependency"
    (tmp_path / "openapi.json").write_text(json.dumps(DOCUMENT))
    subprocess.run(
        [generator, "generate", "--path", "openapi.json", "--output-path", "client"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    for method, path in described_operations(DOCUMENT):
        item = operation(DOCUMENT, method, path)
        (module,) = (tmp_path / "client").glob(f"*/api/*/{item['operationId']}.py")
        code = module.read_text()
        for status in item["responses"].keys() - {"304"}:  # Not Modified has no body
            if (method, path) in DOWNLOADS and status == "200":  # the file's bytes
                assert re.search(r"response_200 = File\(", code), (module, status)
                continue
            assert re.search(rf"response_{status} = \w+\.from_dict\(", code), (module, status)

"""The published contract: flask-smorest configured for this API.

Each route declares its arguments and its answer once, on the view (`@bp.arguments`,
`@bp.response`, `@bp.errors`, `@token_required`); those declarations validate, serialise and
document it. This module adds what every route shares: the envelope around each answer, the
error responses, the bearer scheme, and the docs page with its assets served from the installed
swagger-ui-bundle (never a CDN).
"""

import re
from functools import wraps
from http import HTTPStatus

import flask_smorest
from flask import Flask, Response, send_from_directory
from flask_smorest.utils import prepare_response
from marshmallow import Schema
from swagger_ui_bundle import swagger_ui_path

from .fastpath import answer, dumper
from .models import MAX_ID
from .parsing import StrictParser
from .responses import ErrorResponse, Page, ValidationErrorResponse, envelope_schema, success
from .scope import SCOPE_FIELDS, current_scope
from .transport import IdConverter

BEARER = "bearerAuth"
# The API key scope an operation needs, on each operation that takes a token.
KEY_SCOPE = "x-api-key-scope"
DOCS_ASSETS = "/api/v1/docs/assets/"

# Every error status a route may document, and what it means here.
ERRORS = {
    400: "The body is not valid JSON, or not a JSON object; or the request is not valid HTTP.",
    401: "Missing, malformed, expired, revoked or not genuine token; or, on login, wrong "
    "credentials.",
    403: "isp_id, branch_id or user_id disagree with the token, or the role may not do this; "
    "for an API key, it lacks the scope the operation needs (x-api-key-scope), or only a "
    "person may do this.",
    404: "No such object within the caller's reach.",
    408: "The request's head or body took too long to arrive.",
    409: "The request conflicts with the current state (see message).",
    412: "If-Match does not match: the resource changed since it was read (ETag: the current).",
    410: "What this request's Idempotency-Key answered with is gone (see message).",
    413: "The body is larger than the limit ({limit} bytes; 4096 for login).",
    414: "The request line is longer than 4094 bytes.",
    417: "An Expect header other than 100-continue.",
    422: "A parameter or body field is invalid: see errors.",
    429: "Too many requests (failed logins, redeliveries, or, unless RATE_LIMITS is off, the "
    "caller's or its ISP's requests this minute): retry after Retry-After seconds.",
    431: "A header is longer than 8190 bytes, or the request head longer than 64 KiB.",
    501: "A Transfer-Encoding the server does not know.",
    503: "The database is unreachable: retry shortly.",
}
# What the server answers itself, before any route (gunicorn, serving.BufferingWorker), on
# every operation alike: each is documented on each operation, as a shared response.
SERVER_ANSWERS = (400, 408, 413, 414, 417, 431, 501)
ETAG = {
    "description": "The resource's version; send it back in If-Match or If-None-Match.",
    "schema": {"type": "string"},
}
CONDITIONS = {
    "read": {
        "in": "header",
        "name": "If-None-Match",
        "required": False,
        "schema": {"type": "string"},
        "description": "An ETag you hold: 304 without a body when it is still current.",
    },
    "write": {
        "in": "header",
        "name": "If-Match",
        "required": False,
        "schema": {"type": "string"},
        "description": "The ETag you read: 412 and nothing changed if the resource has "
        "changed since (without it, the write applies to whatever is current).",
    },
}
IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    "description": "Retry safely: the same key, user and request within 24 hours replay the "
    "first answer (with Idempotent-Replayed: true) instead of doing it again; the same key "
    "with another request is 422; while the first is still running, 409.",
}
REPLAYED = {
    "description": "true when this is the stored answer to an earlier request with the key.",
    "schema": {"type": "string", "enum": ["true"]},
}
# On every answer to a token's or a key's request, unless RATE_LIMITS is off (ratelimits.py).
RATE_LIMIT_HEADERS = {
    name: {"description": description, "schema": {"type": "integer", "minimum": 0}}
    for name, description in (
        ("RateLimit-Limit", "Requests a minute the caller may make (unless RATE_LIMITS is off)."),
        ("RateLimit-Remaining", "Requests left this minute, the ISP's ceiling counted."),
        ("RateLimit-Reset", "Seconds until the minute's counts start again."),
    )
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before the next attempt.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}


class Blueprint(flask_smorest.Blueprint):
    """A smorest blueprint whose answers are the envelope and whose errors are documented.

    `key_scopes` are the API key scopes its routes need: (to read, to write), the first for
    GET and HEAD, the second for every other method; None where only a person may call them
    (the default: a route is closed to keys unless its blueprint opens it)."""

    ARGUMENTS_PARSER = StrictParser()

    def __init__(self, *args, key_scopes: tuple[str | None, str | None] = (None, None), **kwargs):
        super().__init__(*args, **kwargs)
        self.key_scopes = key_scopes
        self._prepare_doc_cbks.append(self._prepare_errors_doc)

    def key_scope(self, method: str) -> str | None:
        """The scope a key needs for this method of the blueprint's routes (None: refused)."""
        return self.key_scopes[0 if method in ("GET", "HEAD") else 1]

    def arguments(self, schema, *args, **kwargs):
        """smorest's arguments; those that can name an isp_id, branch_id or user_id are held
        to the caller's scope once loaded (403), the one place the API checks them."""
        declare = super().arguments(schema, *args, **kwargs)
        if not set(SCOPE_FIELDS) & set(schema.fields):
            return declare

        def decorator(view):
            @wraps(view)
            def within_scope(*view_args, **view_kwargs):
                current_scope().check(view_args[-1])  # smorest passes the loaded ones last
                return view(*view_args, **view_kwargs)

            return declare(within_scope)

        return decorator

    def response(self, status_code, schema=None, *, message=None, meta=None, also=(), **kwargs):
        """The success answer: `schema` dumps the envelope's data, `message` is fixed text,
        `meta` the schema of a Page's meta, `also` other success codes the view may return
        (as `data, code`). The view returns the data (or a Page)."""

        def decorator(view):
            name = _camel(view.__name__) + "Response" if schema is not None else "MessageResponse"
            data = type(schema) if isinstance(schema, Schema) else schema
            many = isinstance(schema, Schema) and schema.many
            envelope = envelope_schema(
                name, data, many=many, message=message is not None, meta=meta
            )
            dump = dumper(data, many) if data is not None else None

            @wraps(view)
            def enveloped(*args, **kwargs):
                result = view(*args, **kwargs)
                if isinstance(result, Response):
                    return result
                body, *rest = result if type(result) is tuple else (result,)
                status, headers = status_code, None
                for part in rest:
                    if isinstance(part, int):
                        status = part
                    else:
                        headers = part
                if isinstance(body, Page):
                    body = success(dump(body.items), message, body.meta)
                else:
                    body = success(dump(body) if dump is not None else None, message)
                return answer(body, status, headers)

            declared = super(Blueprint, self).response(status_code, envelope, **kwargs)(enveloped)
            for code in also:
                declared = self.alt_response(code, schema=envelope, success=True)(declared)
            return declared

        return decorator

    @staticmethod
    def errors(*codes: int):
        """Document error statuses the view answers beyond those its declarations imply."""

        def decorator(view):
            view._apidoc = {**getattr(view, "_apidoc", {}), "errors": codes}
            return view

        return decorator

    @staticmethod
    def versioned(kind: str):
        """The view reads (`"read"`: If-None-Match, 304), writes (`"write"`: If-Match, 412) or
        creates (`"created"`) a versioned resource, and answers with its ETag."""

        def decorator(view):
            view._apidoc = {**getattr(view, "_apidoc", {}), "versioned": kind}
            return view

        return decorator

    def _prepare_errors_doc(self, doc, doc_info, *, method: str, **kwargs):
        """What the server answers itself goes on every operation (SERVER_ANSWERS); a token
        implies 401 and 503 (the user is read), 403 and the API key scope the operation needs
        (x-api-key-scope: null when only a person may call it), a versioned resource its
        conditional header, ETag and 304 or 412."""
        codes = set(doc_info.get("errors", ())) | set(SERVER_ANSWERS)
        responses = doc.setdefault("responses", {})
        if doc_info.get("token"):
            codes |= {401, 403, 429, 503}
            doc["security"] = [{BEARER: []}]
            doc[KEY_SCOPE] = self.key_scope(method.upper())
            for response in responses.values():
                if isinstance(response, dict):
                    response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
        if doc_info.get("idempotent"):
            doc.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
            codes |= {409, 422}
            for response in responses.values():
                if isinstance(response, dict):
                    response.setdefault("headers", {})["Idempotent-Replayed"] = REPLAYED
        kind = doc_info.get("versioned")
        if kind:
            for response in responses.values():
                if isinstance(response, dict):
                    response.setdefault("headers", {})["ETag"] = ETAG
            if kind in CONDITIONS:
                doc.setdefault("parameters", []).append(CONDITIONS[kind])
            if kind == "read":
                responses[304] = {"description": "Not modified.", "headers": {"ETag": ETAG}}
            if kind == "write":
                codes.add(412)
        for code in sorted(codes):
            responses.setdefault(code, HTTPStatus(code).name)
        return doc

    def _store_endpoint_docs(self, endpoint, obj, parameters, tags, **options):
        """Name each operation after its view, so generated clients get readable methods."""
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        for method, doc in self._docs[endpoint].items():
            if method != "parameters":
                doc.setdefault("manual_doc", {})["operationId"] = endpoint


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


class Api(flask_smorest.Api):
    """The smorest Api, answering errors through errors.py and documenting them as ours."""

    DEFAULT_ERROR_RESPONSE_NAME = None  # every error a route answers is listed on it

    def _register_error_handlers(self) -> None:
        """errors.py registers every handler, so all failures share one envelope."""

    def _register_responses(self) -> None:
        limit = self._app.config["MAX_CONTENT_LENGTH"]
        for code, description in ERRORS.items():
            response = {
                "description": description.format(limit=limit),
                "schema": ValidationErrorResponse if code == 422 else ErrorResponse,
            }
            if code == 429:
                response["headers"] = RETRY_AFTER
            if code == 412:
                response["headers"] = {"ETag": ETAG}
            prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(HTTPStatus(code).name, response, lazy=True)

    def _register_swagger_ui_rule(self, blueprint) -> None:
        super()._register_swagger_ui_rule(blueprint)
        blueprint.add_url_rule(
            "/docs/assets/<path:filename>", endpoint="swagger_ui_asset", view_func=_docs_asset
        )


def _docs_asset(filename: str):
    """Swagger UI's JavaScript, CSS and icons, from the installed swagger-ui-bundle."""
    return send_from_directory(str(swagger_ui_path), filename)


def init_app(app: Flask) -> Api:
    """The Api for this app: settings, the bearer scheme and the id converter's type."""
    app.config.update(
        API_TITLE="Tickets API",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_ASSETS,
        # The online validator would send the document to a third party.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None, "deepLinking": True},
    )
    api = Api(app, spec_kwargs={"info": {"description": _description(app.config)}})
    api.spec.components.security_scheme(
        BEARER,
        {
            "type": "http",
            "scheme": "bearer",
            "description": "The access_token from POST /api/v1/auth/login, or an API key "
            "(tsk_...) from POST /api/v1/api-keys, which needs the operation's "
            "x-api-key-scope.",
        },
    )
    api.register_converter(
        IdConverter, lambda _converter: {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    )
    return api


def _description(config) -> str:
    def per(name: str) -> str:
        return config[f"LOGIN_RATE_LIMIT_PER_{name}"]

    return re.sub(
        r"\s+",
        " ",
        f"""Support tickets of an ISP management platform.
        Every response is JSON in one envelope: `{{success: true, message?, data?, meta?}}` on
        success, `{{success: false, message, errors?}}` on failure (`errors` lists messages per
        field on 422). Send `Authorization: Bearer <access_token>` from `POST
        /api/v1/auth/login` to every endpoint but login and the health probes.
        Limits: request bodies up to {config["MAX_CONTENT_LENGTH"]} bytes (413 beyond); failed
        logins limited to {per("EMAIL_ADDRESS")} per email and client
        address, {per("ADDRESS")} per client address and
        {per("EMAIL")} per email (429 with Retry-After beyond).""",
    ).strip()

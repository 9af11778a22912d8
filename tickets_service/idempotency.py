"""Idempotency-Key: a POST retried with the same key, by the same user, with the same request,
within a day, is answered with the first response instead of being done twice.

The key is claimed by a row inserted in the request's own transaction, and the answer is stored
in that row before the transaction commits: the change, the key and its answer commit together
or not at all. A concurrent duplicate waits on the row's unique key, then replays the answer.
"""

import hashlib
import json
import re
import time
from datetime import timedelta
from functools import wraps

from flask import Response, abort, request
from marshmallow import ValidationError
from sqlalchemy import delete, select, update

from .extensions import db, insert
from .models import IdempotencyKey, utcnow
from .scope import current_scope
from .transactions import hold_commit

HEADER = "Idempotency-Key"
LIFETIME = timedelta(hours=24)
_PRINTABLE = re.compile(r"[\x20-\x7e]{1,255}")
# A duplicate finds the first request's answer committed with it; should it ever find the key
# without one, it looks again briefly before answering 409.
_PATIENCE_SECONDS = 2.0


def idempotent(view=None, *, recheck=None):
    """Honour Idempotency-Key on this POST (the document lists the header, 409 and 422).

    Declared below the route's arguments, so a replay's query and body pass the same checks
    as the first request did (the caller's scope among them). `recheck(answer, **path)` runs
    before a replay with the stored answer's data and the path's values: it raises (403,
    404, 410...) when the caller may no longer do what the request asks, or when what the
    answer shows is gone, so a replay never outlives the caller's right or the object (a
    webhook's secret, shown once) that it answered with.
    """
    if view is None:
        return lambda view: idempotent(view, recheck=recheck)

    @wraps(view)
    def guarded(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not _PRINTABLE.fullmatch(key):
            raise ValidationError({HEADER: ["Use 1 to 255 printable ASCII characters."]})
        fingerprint = _fingerprint()
        if not _claim(key, fingerprint):
            return _replay(key, fingerprint, recheck, kwargs)
        with hold_commit():
            response = view(*args, **kwargs)
        if isinstance(response, Response) and response.status_code < 500:
            _store(key, response)
        return response

    guarded._apidoc = {**getattr(view, "_apidoc", {}), "idempotent": True}
    return guarded


def _fingerprint() -> str:
    """The request the key stands for: method, path, query and body, and the API key that sent
    it (a key's requests are kept under its creator's id, so no other key, nor the person,
    can replay them: the same Idempotency-Key from them is 422)."""
    digest = hashlib.sha256()
    sender = str(current_scope().key_id or "")
    for part in (request.method, request.path, request.query_string, request.get_data(), sender):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _claim(key: str, fingerprint: str) -> bool:
    """Insert the key's row in this transaction; False when the key is already taken."""
    now = utcnow()
    db.session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.user_id == current_scope().actor.user_id,
            IdempotencyKey.created_at < now - LIFETIME,
        )
    )
    claimed = db.session.execute(
        insert(IdempotencyKey)
        .values(
            user_id=current_scope().actor.user_id, key=key, fingerprint=fingerprint, created_at=now
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IdempotencyKey.key)
    ).first()
    return claimed is not None


def _replay(key: str, fingerprint: str, recheck, path: dict) -> Response:
    """The first request's stored answer, marked as replayed, if the caller may still have it
    (see idempotent)."""
    deadline = time.monotonic() + _PATIENCE_SECONDS
    while True:
        # Each look is its own short transaction: never hold a lock the first request needs
        # to store its answer.
        db.session.rollback()
        stored = db.session.execute(
            select(
                IdempotencyKey.fingerprint,
                IdempotencyKey.status_code,
                IdempotencyKey.body,
                IdempotencyKey.etag,
            ).where(
                IdempotencyKey.user_id == current_scope().actor.user_id, IdempotencyKey.key == key
            )
        ).first()
        db.session.rollback()
        if stored is None:
            abort(409, "A request with this Idempotency-Key did not finish; retry.")
        if stored.fingerprint != fingerprint:
            raise ValidationError(
                {HEADER: ["This key was used for a different request; use a new key."]}
            )
        if stored.status_code is not None:
            break
        if time.monotonic() > deadline:
            abort(409, "A request with this Idempotency-Key is still in progress; retry.")
        time.sleep(0.05)
    if recheck is not None:
        recheck(json.loads(stored.body).get("data") or {}, **path)
    headers = {"Idempotent-Replayed": "true"}
    if stored.etag:
        headers["ETag"] = stored.etag
    return Response(
        stored.body, status=stored.status_code, mimetype="application/json", headers=headers
    )


def _store(key: str, response: Response) -> None:
    """Keep the answer for replays, and commit it with the change it answers."""
    db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == current_scope().actor.user_id, IdempotencyKey.key == key)
        .values(
            status_code=response.status_code,
            body=response.get_data(as_text=True),
            etag=response.headers.get("ETag"),
        )
    )
    db.session.commit()

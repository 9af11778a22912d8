"""The private parts of the libraries this service leans on, named in one place.

Each is something a library does not promise to keep: an underscored method the service
overrides or calls, an attribute it reads or appends to. A library upgrade that moves one
breaks the service quietly, so tests/test_internals.py resolves every name here against the
installed versions and fails, naming it, when one is gone. Add an entry before leaning on
another.
"""

# name -> what the service does with it, and where
PRIVATE = {
    # flask-smorest (openapi.py): the document and the error handling are ours.
    "flask_smorest.Blueprint._prepare_doc_cbks": "openapi.Blueprint adds its error docs to it",
    "flask_smorest.Blueprint._store_endpoint_docs": "openapi.Blueprint names operations",
    "flask_smorest.Blueprint._docs": "read there, per endpoint and method",
    "flask_smorest.Api._register_error_handlers": "openapi.Api: errors.py handles all",
    "flask_smorest.Api._register_responses": "openapi.Api registers our error responses",
    "flask_smorest.Api._register_swagger_ui_rule": "openapi.Api serves the docs' assets",
    # (and the _apidoc dict smorest keeps on view functions, which openapi.Blueprint, tokens
    # and idempotency add to: the contract tests see what it documents.)
    # flask-jwt-extended (extensions.py): each distinct token is verified once per process.
    "flask_jwt_extended.JWTManager._decode_jwt_from_config": "extensions.VerifiedTokens",
    # SQLAlchemy (queries.fetch_rows): hot reads run on the DBAPI cursor, and tell listeners.
    "sqlalchemy.engine.Connection.dispatch": "fetch_rows fires before_cursor_execute",
    # gunicorn (serving.py): the threaded worker that reads requests in full.
    "gunicorn.workers.gthread._DEFER": "handle() returns it to park a connection in the poller",
    "gunicorn.workers.gthread.TConn": "a connection: sock, parser, initialized, init()",
    "gunicorn.workers.gthread.ThreadWorker.handle": "runs in a thread for each readable conn",
    "gunicorn.workers.gthread.ThreadWorker.handle_request": "serves one parsed request",
    "gunicorn.workers.gthread.ThreadWorker.accept": "makes a TConn for each new connection",
    "gunicorn.workers.gthread.ThreadWorker.enqueue_req": "hands a connection to a thread",
    "gunicorn.workers.gthread.ThreadWorker.finish_request": "runs when the thread is done",
    "gunicorn.workers.gthread.ThreadWorker.murder_pending": "closes expired pending_conns",
    "gunicorn.workers.gthread.ThreadWorker.murder_keepalived": "closes expired keepalived_conns",
    "gunicorn.workers.gthread.ThreadWorker.set_accept_enabled": "the run loop toggles accept",
    "gunicorn.workers.gthread.ThreadWorker.wait_for_and_dispatch_events": "one loop turn",
    "gunicorn.workers.gthread.PollableMethodQueue.fileno": "threads report back through it",
    "gunicorn.workers.gthread.PollableMethodQueue.run_callbacks": "runs what they reported",
    "gunicorn.http.unreader.Unreader.take_buffered": "what the parser read ahead",
    "gunicorn.http.unreader.Unreader.unread": "hands the buffered bytes to the parser",
    "gunicorn.http.unreader.SocketUnreader.chunk": "serving.SpooledUnreader: an upload's spool",
    # (and a parser's `unreader`, which serving.py replaces for an upload before parsing)
    "gunicorn.http.message.Message.should_close": "reads must_close, set for an upload",
    "gunicorn.util.write_error": "gunicorn.conf.py answers gunicorn's own errors in JSON",
}
# Attributes set on instances (checked on one): class name -> attributes.
ON_INSTANCES = {
    "flask_smorest.Blueprint": ("_prepare_doc_cbks", "_docs"),
}

"""Entry point for gunicorn (`wsgi:app`) and the flask CLI (`flask --app wsgi ...`)."""

from tickets_service import create_app
from tickets_service.config import ConfigError

try:
    app = create_app()
except ConfigError as err:
    # One line that says what is wrong, instead of a traceback.
    raise SystemExit(f"tickets-service: configuration error: {err}") from None

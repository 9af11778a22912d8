"""Failed-login limits that stop guessing without locking out the owner.

Three counts per fixed window, kept in the database so every worker and instance shares them:
per (email, address), per address, and a slow ceiling per email. An attempt is counted before
its password is checked, atomically, so N parallel guesses cannot slip past the limit; a
successful login takes its count back.
"""

import hashlib
import math
import time

from flask import current_app, request
from sqlalchemy import delete, update
from werkzeug.exceptions import TooManyRequests

from .config import parse_limit
from .extensions import db, first_statement, insert
from .models import LoginAttempt

TOO_MANY_ATTEMPTS = "Too many failed login attempts; retry after the Retry-After delay."


class TooManyAttempts(TooManyRequests):
    def __init__(self, retry_after: int):
        super().__init__(TOO_MANY_ATTEMPTS, retry_after=retry_after)


def _counts(email: str) -> list[tuple[str, str]]:
    """The counts an attempt for this email, from this address, belongs to."""
    config = current_app.config
    address = request.remote_addr or "unknown"
    email = email.strip().lower()
    return [
        (f"email+address:{email}|{address}", config["LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS"]),
        (f"address:{address}", config["LOGIN_RATE_LIMIT_PER_ADDRESS"]),
        (f"email:{email}", config["LOGIN_RATE_LIMIT_PER_EMAIL"]),
    ]


def _rows(email: str, now: float) -> list[dict]:
    rows = []
    for name, setting in _counts(email):
        limit = parse_limit(setting)
        start = int(now // limit.seconds * limit.seconds)
        rows.append(
            {
                # Hashed: the table holds no email address or client address in clear.
                "key": hashlib.sha256(f"{limit.seconds}:{name}".encode()).hexdigest(),
                "window_start": start,
                "window_end": start + limit.seconds,
                "amount": limit.amount,
            }
        )
    return sorted(rows, key=lambda row: row["key"])  # one lock order for every attempt


def count_attempt(email: str) -> list[dict]:
    """Count this attempt in its own committed transaction; 429 (Retry-After) when any count
    is now over its limit. Returns the rows counted, for give_back."""
    now = time.time()
    rows = _rows(email, now)
    first_statement(
        lambda: db.session.execute(delete(LoginAttempt).where(LoginAttempt.window_end < int(now)))
    )
    windows = [{name: row[name] for name in ("key", "window_start", "window_end")} for row in rows]
    statement = insert(LoginAttempt).values(windows)
    statement = statement.on_conflict_do_update(
        index_elements=["key", "window_start"], set_={"attempts": LoginAttempt.attempts + 1}
    ).returning(LoginAttempt.key, LoginAttempt.attempts)
    counted = dict(db.session.execute(statement).all())
    db.session.commit()
    over = [row for row in rows if counted[row["key"]] > row["amount"]]
    if over:
        raise TooManyAttempts(max(math.ceil(row["window_end"] - now) for row in over))
    return rows


def give_back(rows: list[dict]) -> None:
    """A successful login does not count against the limits."""
    for row in rows:
        db.session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.key == row["key"], LoginAttempt.window_start == row["window_start"])
            .values(attempts=LoginAttempt.attempts - 1)
        )

"""Failed-login limits that stop guessing without locking out the owner.

Three counts per fixed window, kept in the database so every worker and instance shares them:
per (email, address), per address, and a slow ceiling per email. An attempt is counted before
its password is checked, atomically, so N parallel guesses cannot slip past the limit; a
successful login takes its count back.

The counts are taken in that order, and an attempt refused by one is counted by none after it:
a guesser throttled for an email at one address uses up neither that address's allowance nor
the email's hourly ceiling, so the owner elsewhere still logs in.
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


def _rows(counts: list[tuple[str, str]], now: float) -> list[dict]:
    """The rows of the counts (name, limit) a request takes, in the order it takes them."""
    rows = []
    for name, setting in counts:
        limit = parse_limit(setting)
        start = int(now // limit.seconds * limit.seconds)
        rows.append(
            {
                # Hashed: the table holds no email address or client address in clear.
                "key": hashlib.sha256(f"{limit.seconds}:{name}".encode()).hexdigest(),
                "window_start": start,
                "window_end": start + limit.seconds,
                "capacity": limit.amount,
            }
        )
    return rows


def count_attempt(email: str) -> list[dict]:
    """Count this attempt, in its own committed transaction, in each count that still has
    room; 429 (Retry-After) when one has none. Returns the rows counted, for give_back."""
    return count(_counts(email), TooManyAttempts)


def count(counts: list[tuple[str, str]], refusal) -> list[dict]:
    """Count a request in each of `counts` (name, limit such as "5 per minute") that still
    has room, in its own committed transaction; `refusal(retry_after)` is raised when one has
    none. Returns the rows counted."""
    now = time.time()
    first_statement(
        lambda: db.session.execute(delete(LoginAttempt).where(LoginAttempt.window_end < int(now)))
    )
    counted: list[dict] = []
    for row in _rows(counts, now):
        if not _take(row):
            db.session.commit()
            raise refusal(math.ceil(row["window_end"] - now))
        counted.append(row)
    db.session.commit()
    return counted


def _take(row: dict) -> bool:
    """Add one attempt to a count if it has room left (atomically); whether it took it."""
    statement = insert(LoginAttempt).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=["key", "window_start"],
        set_={"attempts": LoginAttempt.attempts + 1},
        where=LoginAttempt.attempts < LoginAttempt.capacity,
    ).returning(LoginAttempt.key)
    return db.session.execute(statement).first() is not None


def give_back(rows: list[dict]) -> None:
    """A successful login does not count against the limits."""
    for row in rows:
        db.session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.key == row["key"], LoginAttempt.window_start == row["window_start"])
            .values(attempts=LoginAttempt.attempts - 1)
        )

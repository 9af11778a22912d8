"""Data to look at and data to measure with: `flask --app wsgi seed-demo` (a demo ISP with a
desk's worth of tickets, safe to run twice) and `flask --app wsgi seed-bulk` (N tickets loaded
by COPY into one branch, for benchmarks)."""

import json
import time
from datetime import timedelta

import click
from flask.cli import with_appcontext
from sqlalchemy import insert, select, update

from . import desk, sla
from .cli import fail, find_user, plain_database_errors
from .extensions import db
from .models import (
    MAX_ID,
    CannedReply,
    CannedScope,
    Role,
    SlaPolicy,
    Subscriber,
    Ticket,
    TicketPriority,
    TicketReply,
    TicketStatus,
    User,
    utcnow,
)

# --- Demo data ------------------------------------------------------------------------------

DEMO_ISP = 1
DEMO_USERS = [
    # email, name, role, branch, password
    ("admin@demo.example", "Demo Admin", Role.ADMIN, 1, "demo-admin-password"),
    ("staff@demo.example", "Demo Staff", Role.STAFF, 1, "demo-staff-password"),
]
DEMO_SUBSCRIBERS = [
    # name, branch, phone
    ("John Doe", 1, "+15550100"),
    ("Jane Roe", 1, "+15550101"),
    ("Ali Khan", 2, None),
]
DEMO_TICKETS = [
    # title, description, subscriber, priority, days old, assignee, due in days, status,
    # and what happened since: (author, message, internal)
    (
        "Connection Issue",
        "Cannot connect to internet",
        "John Doe",
        TicketPriority.MEDIUM,
        4,
        "staff@demo.example",
        2,
        TicketStatus.OPEN,
        [("admin@demo.example", "We are looking into this.", False)],
    ),
    (
        "Slow speeds in the evening",
        "Speed drops below 5 Mbps after 8 pm",
        "Jane Roe",
        TicketPriority.HIGH,
        3,
        "admin@demo.example",
        -1,  # overdue
        TicketStatus.IN_PROGRESS,
        [
            ("staff@demo.example", "Line test scheduled.", False),
            ("admin@demo.example", "Probably the street cabinet; ask the field team.", True),
        ],
    ),
    (
        "Router replacement",
        "Router power supply failed",
        None,
        TicketPriority.LOW,
        2,
        "staff@demo.example",
        None,
        TicketStatus.RESOLVED,
        [("staff@demo.example", "New router delivered.", False)],
    ),
    (
        "No signal after storm",
        "Whole street offline since last night",
        "John Doe",
        TicketPriority.HIGH,
        1,
        None,  # unassigned: waiting for someone to pick it up
        None,
        TicketStatus.OPEN,
        [],
    ),
    (
        "Billing address change",
        "Subscriber moved house",
        "Ali Khan",
        TicketPriority.LOW,
        1,
        None,
        None,
        TicketStatus.CLOSED,
        [],
    ),
]


# Each demo ticket's type and tags, by title.
DEMO_TYPES = {
    "Connection Issue": ("fault", ["fibre"]),
    "Slow speeds in the evening": ("fault", ["speed", "evening"]),
    "Router replacement": ("installation", ["cpe"]),
    "No signal after storm": ("fault", ["fibre", "weather"]),
    "Billing address change": ("billing", []),
}
# The demo ISP's policy for faults of high priority (round the clock), and a canned reply.
DEMO_POLICY = {"first_response_minutes": 60, "resolve_minutes": 480}
DEMO_CANNED = (
    "Ask for the router's serial",
    'Hello {{ subscriber.name }}, to look into "{{ ticket.title }}" we need your router\'s '
    "serial number (on the sticker underneath). Thank you, {{ agent.name }}",
)


@click.command("seed-demo")
@with_appcontext
@plain_database_errors
def seed_demo():
    """Create a demo ISP with users, subscribers and a desk's worth of tickets: assigned and
    unassigned, notes, a resolved ticket with its history, an overdue one. Safe to run again."""
    people = {}
    for email, name, role, branch, password in DEMO_USERS:
        user = find_user(email)
        if user is None:
            user = User(isp_id=DEMO_ISP, branch_id=branch, name=name, email=email, role=role)
            user.set_password(password)
            db.session.add(user)
        people[email] = user

    customers = {}
    for name, branch, phone in DEMO_SUBSCRIBERS:
        subscriber = db.session.scalar(
            select(Subscriber).where(Subscriber.isp_id == DEMO_ISP, Subscriber.name == name)
        )
        if subscriber is None:
            subscriber = Subscriber(isp_id=DEMO_ISP, branch_id=branch, name=name, phone=phone)
            db.session.add(subscriber)
        customers[name] = subscriber
    db.session.flush()

    created = 0
    admin = people["admin@demo.example"]
    _demo_rules(admin)
    for title, description, customer, priority, age, assignee, due, status, events in DEMO_TICKETS:
        exists = db.session.scalar(
            select(Ticket.id).where(Ticket.isp_id == DEMO_ISP, Ticket.title == title)
        )
        if exists is not None:
            continue
        subscriber = customers.get(customer)
        now = utcnow().replace(microsecond=0)
        ticket = Ticket.open(
            admin.actor,
            isp_id=DEMO_ISP,
            branch_id=subscriber.branch_id if subscriber else 1,
            subscriber_id=subscriber.id if subscriber else None,
            title=title,
            description=description,
            priority=priority,
            assignee_id=people[assignee].id if assignee else None,
            due_at=now + timedelta(days=due) if due is not None else None,
            due_at_manual=due is not None,
            type=DEMO_TYPES[title][0],
        )
        # Spread the demo over the last days so the list's order is visible.
        ticket.created_at = ticket.updated_at = now - timedelta(days=age)
        ticket.tags = DEMO_TYPES[title][1]
        ticket.retag([], ticket.tags)
        sla.set_deadlines(ticket, *sla.policy_for(DEMO_ISP, ticket.type, ticket.priority))
        for author, message, internal in events:
            ticket.add_reply(message, internal, people[author].actor)
        ticket.change_status(status, (people[assignee] if assignee else admin).actor)
        created += 1
    db.session.commit()

    click.echo(f"Demo ISP {DEMO_ISP}: {created} new tickets ({len(DEMO_TICKETS)} in the demo).")
    for email, _name, role, branch, password in DEMO_USERS:
        click.echo(
            f"Log in as {role.value} (branch {branch}): POST /api/v1/auth/login "
            f'{{"email": "{email}", "password": "{password}"}}'
        )


def _demo_rules(admin: User) -> None:
    """The demo ISP's catalogue, its policy for high-priority faults and a canned reply."""
    desk.ensure_catalogue(DEMO_ISP)
    if db.session.get(SlaPolicy, (DEMO_ISP, "fault", int(TicketPriority.HIGH))) is None:
        db.session.add(
            SlaPolicy(isp_id=DEMO_ISP, type="fault", priority=TicketPriority.HIGH, **DEMO_POLICY)
        )
    title, body = DEMO_CANNED
    found = select(CannedReply.id).where(CannedReply.isp_id == DEMO_ISP, CannedReply.title == title)
    if db.session.scalar(found) is None:
        db.session.add(
            CannedReply(
                isp_id=DEMO_ISP,
                scope=CannedScope.ISP,
                title=title,
                body=body,
                tags=["cpe"],
                created_by_id=admin.id,
            )
        )
    db.session.flush()


# --- Bulk data for benchmarks ---------------------------------------------------------------

BULK_SUBSCRIBERS = 1000


@click.command("seed-bulk")
@click.option("--isp-id", type=click.IntRange(1, MAX_ID), required=True)
@click.option("--branch-id", type=click.IntRange(1, MAX_ID), required=True)
@click.option("--tickets", type=click.IntRange(1, 50_000_000), required=True)
@click.option("--replies", type=click.IntRange(0, 1_000_000), default=0, show_default=True)
@with_appcontext
@plain_database_errors
def seed_bulk(isp_id, branch_id, tickets, replies):
    """Load TICKETS tickets into a branch, one second apart going back from now, spread over
    its subscribers, statuses and priorities, and REPLIES replies on the newest. The database
    counts them and starts their history, as for any ticket."""
    author = db.session.scalar(
        select(User.id).where(User.isp_id == isp_id).order_by(User.role, User.id).limit(1)
    )
    if author is None:
        fail(f"ISP {isp_id} has no user to author the tickets; create one first")
    subscribers = _bulk_subscribers(isp_id, branch_id)
    started = time.perf_counter()
    newest = _copy_tickets(isp_id, branch_id, author, subscribers, tickets)
    if replies:
        _bulk_replies(newest, author, replies)
    db.session.commit()
    seconds = time.perf_counter() - started
    click.echo(f"Loaded {tickets} tickets into ISP {isp_id} branch {branch_id} in {seconds:.1f} s")
    click.echo(json.dumps({"newest_ticket_id": newest, "replies": replies}))


def _bulk_subscribers(isp_id: int, branch_id: int) -> list[int]:
    """The branch's subscribers; a thousand are made when it has none."""
    in_branch = select(Subscriber.id).where(
        Subscriber.isp_id == isp_id, Subscriber.branch_id == branch_id
    )
    if db.session.scalar(in_branch.limit(1)) is None:
        now = utcnow()
        names = (f"Subscriber {n}" for n in range(1, BULK_SUBSCRIBERS + 1))
        rows = [
            dict(isp_id=isp_id, branch_id=branch_id, name=name, created_at=now, updated_at=now)
            for name in names
        ]
        db.session.execute(insert(Subscriber), rows)
    return list(db.session.scalars(in_branch))


_BULK_COLUMNS = (
    "isp_id, branch_id, subscriber_id, created_by_id, title, description, priority, status, "
    "reply_count, version, created_at, updated_at"
)


def _copy_tickets(isp_id, branch_id, author, subscribers, count) -> int:
    """COPY on PostgreSQL, executemany on SQLite; returns the newest ticket's id."""
    now = utcnow().replace(microsecond=0)

    def rows():
        for n in range(count):
            created = now - timedelta(seconds=n)
            yield (
                isp_id,
                branch_id,
                subscribers[n % len(subscribers)],
                author,
                f"Ticket {n + 1}",
                f"Cannot connect to internet, case {n + 1}",
                1 + n % 3,
                n % 4,
                0,
                1,
                created,
                created,
            )

    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")  # a long load, on purpose
        cursor = connection.connection.cursor()
        with cursor.copy(f"COPY tickets ({_BULK_COLUMNS}) FROM STDIN") as copy:
            for row in rows():
                copy.write_row(row)
    else:
        marks = ", ".join("?" * len(_BULK_COLUMNS.split(",")))
        connection.exec_driver_sql(
            f"INSERT INTO tickets ({_BULK_COLUMNS}) VALUES ({marks})", list(rows())
        )
    return db.session.scalar(
        select(Ticket.id)
        .where(Ticket.isp_id == isp_id, Ticket.branch_id == branch_id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )


def _bulk_replies(ticket_id: int, author: int, count: int) -> None:
    now = utcnow()
    rows = [
        dict(
            ticket_id=ticket_id,
            user_id=author,
            message=f"Reply {n + 1}",
            internal=False,
            created_at=now + timedelta(seconds=n),
        )
        for n in range(count)
    ]
    db.session.execute(insert(TicketReply), rows)
    db.session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(reply_count=Ticket.reply_count + count, version=Ticket.version + 1)
    )

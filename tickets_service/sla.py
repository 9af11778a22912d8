"""The SLA clock: the calendar deadlines are counted in, and what sets and moves a ticket's
deadlines (its policy, a wait on the subscriber).

A policy (SlaPolicy) gives a type and priority of tickets two budgets, minutes to the first
response and to the resolution, counted round the clock or within its business hours: a weekly
schedule in the ISP's time zone, less the ISP's and the policy's holidays. A ticket's
deadlines are its creation plus its budget plus the time it spent waiting on the subscriber
(waited_seconds, counted by the same calendar), so a new type or priority sets them again
from the start, and a wait moves them by what it lasted.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Integer, String, bindparam, select

from .extensions import db
from .models import (
    LAST_MOMENT,
    Actor,
    HistoryAction,
    IspSettings,
    SlaEvent,
    SlaPolicy,
    Ticket,
    as_utc,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The share of a deadline's time after which the sweep warns that it is near.
WARNING_SHARE = 0.8
# The furthest a deadline is looked for (a budget that a sparse schedule cannot fit in
# ends at the latest moment: never).
HORIZON_DAYS = 366 * 30
DAY = 86_400


def minutes_of(text: str) -> int:
    """ "08:30" as minutes past midnight ("24:00" is the end of the day); ValueError if not."""
    hours, colon, minutes = text.partition(":")
    if not (colon and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isdigit()):
        raise ValueError(text)
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise ValueError(text)
    return value


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone of this name, or None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Calendar:
    """Where time counts: round the clock (hours None), or within weekly hours in a zone, less
    holidays. Hours: per weekday (0 is Monday), sorted (start, end) minutes past midnight."""

    tz: ZoneInfo
    hours: tuple[tuple[tuple[int, int], ...], ...] | None = None
    holidays: frozenset[date] = frozenset()

    @classmethod
    def of(cls, time_zone: str, schedule: dict | None, holidays: Iterable[str] = ()) -> "Calendar":
        """A calendar from the stored forms (a policy's schedule, the ISP's zone and days)."""
        if not schedule:
            return cls(zone(time_zone) or ZoneInfo("UTC"))
        hours = tuple(
            tuple(sorted((minutes_of(a), minutes_of(b)) for a, b in schedule.get(day, ())))
            for day in DAYS
        )
        days = frozenset(date.fromisoformat(day) for day in holidays)
        return cls(zone(time_zone) or ZoneInfo("UTC"), hours, days)

    def _periods(self, start: datetime) -> Iterable[tuple[datetime, datetime]]:
        """The business periods (UTC) that end after `start`, in order, until the horizon."""
        try:
            local_day = start.astimezone(self.tz).date() - timedelta(days=1)
            for _ in range(HORIZON_DAYS):
                if local_day not in self.holidays:
                    for period in _day_periods(self.tz, self.hours[local_day.weekday()], local_day):
                        if period[1] > start:
                            yield max(period[0], start), period[1]
                local_day += timedelta(days=1)
        except OverflowError:  # the end of the calendar (year 9999): no time after it
            return

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment `seconds` of counted time after `start`."""
        start = as_utc(start)
        if self.hours is None:
            try:
                return start + timedelta(seconds=seconds)
            except OverflowError:
                return LAST_MOMENT
        left = seconds
        for begin, end in self._periods(start):
            length = (end - begin).total_seconds()
            if left <= length:
                return begin + timedelta(seconds=left)
            left -= length
        return LAST_MOMENT

    def between(self, start: datetime, end: datetime) -> float:
        """Counted seconds from `start` to `end` (0 when end is not after start)."""
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return 0.0
        if self.hours is None:
            return (end - start).total_seconds()
        total = 0.0
        for begin, finish in self._periods(start):
            if begin >= end:
                break
            total += (min(finish, end) - begin).total_seconds()
        return total


@lru_cache(maxsize=4096)
def _day_periods(tz: ZoneInfo, hours: tuple, day: date) -> tuple:
    """One local day's business periods in UTC, worked out once (every create counts its
    deadlines over the same few days of its ISP's calendar)."""
    return tuple((_moment(tz, day, begin), _moment(tz, day, end)) for begin, end in hours)


def _moment(tz: ZoneInfo, day: date, minutes: int) -> datetime:
    """Wall-clock minutes of that day, in UTC (a DST change within it moves its hours)."""
    local = datetime.combine(day + timedelta(days=minutes // 1440), time(), tz)
    local = local.replace(hour=minutes % 1440 // 60, minute=minutes % 60)
    return local.astimezone(UTC)


@dataclass(frozen=True)
class Policy:
    first_response_minutes: int
    resolve_minutes: int


def calendar_of(time_zone, isp_holidays, schedule, policy_holidays) -> Calendar:
    """The calendar of a policy read with its ISP's settings (any of them None: not set)."""
    days = [*(isp_holidays or ()), *(policy_holidays or ())]
    return Calendar.of(time_zone or "UTC", schedule, days)


def policy_columns(isp_id, type_key, priority) -> list:
    """What policy_for reads, as columns any statement can carry (one scalar subquery each,
    run once per statement): the ISP's time zone and holidays, and the policy of the type and
    priority, each None where it is not set."""

    def setting(column):
        return select(column).where(IspSettings.isp_id == isp_id).scalar_subquery()

    def policy(column):
        found = (SlaPolicy.isp_id == isp_id, SlaPolicy.type == type_key)
        return select(column).where(*found, SlaPolicy.priority == priority).scalar_subquery()

    return [
        setting(IspSettings.time_zone).label("time_zone"),
        setting(IspSettings.holidays).label("isp_holidays"),
        policy(SlaPolicy.first_response_minutes).label("first_response_minutes"),
        policy(SlaPolicy.resolve_minutes).label("resolve_minutes"),
        policy(SlaPolicy.business_hours).label("business_hours"),
        policy(SlaPolicy.holidays).label("policy_holidays"),
    ]


@cache
def _policy_statement():
    return select(
        *policy_columns(
            bindparam("isp_id", type_=Integer),
            bindparam("type", type_=String),
            bindparam("priority", type_=Integer),
        )
    )


def policy_for(isp_id: int, type_key: str, priority: int) -> tuple[Policy | None, Calendar]:
    """The policy of a type and priority of the ISP's tickets (None: it has none), and the
    calendar its deadlines are counted in (round the clock without a policy)."""
    params = {"isp_id": isp_id, "type": type_key, "priority": int(priority)}
    # Read in the middle of a change: the ticket is written once, with all of it (one version).
    with db.session.no_autoflush:
        found = db.session.execute(_policy_statement(), params).one()
    return from_row(tuple(found))


def from_row(row: tuple) -> tuple[Policy | None, Calendar]:
    """policy_for's answer from the values of policy_columns, in their order."""
    time_zone, holidays, first, resolve, schedule, own = row
    calendar = calendar_of(time_zone, holidays, schedule, own)
    if first is None:
        return None, Calendar(calendar.tz)
    return Policy(first, resolve), calendar


# --- A ticket's deadlines ---------------------------------------------------------------------


def set_deadlines(ticket: Ticket, policy: Policy | None, calendar: Calendar) -> None:
    """The policy's deadlines for the ticket, from its creation plus the time it waited
    (a due_at set by hand stays), with their warnings; then its next SLA event."""
    start, waited = as_utc(ticket.created_at), ticket.waited_seconds or 0
    response = due = response_warn = due_warn = None
    if policy is not None:
        response = calendar.add(start, policy.first_response_minutes * 60 + waited)
        response_warn = calendar.add(
            start, policy.first_response_minutes * 60 * WARNING_SHARE + waited
        )
        due = calendar.add(start, policy.resolve_minutes * 60 + waited)
        due_warn = calendar.add(start, policy.resolve_minutes * 60 * WARNING_SHARE + waited)
    if ticket.due_at_manual and ticket.due_at is not None:
        due = as_utc(ticket.due_at)
        spent = calendar.between(start, due) - waited
        due_warn = calendar.add(start, max(spent, 0) * WARNING_SHARE + waited)
    _renew(
        ticket, "response_due_at", response, SlaEvent.RESPONSE_WARNED | SlaEvent.RESPONSE_BREACHED
    )
    _renew(ticket, "due_at", due, SlaEvent.RESOLUTION_WARNED | SlaEvent.RESOLUTION_BREACHED)
    ticket.response_warn_at, ticket.due_warn_at = response_warn, due_warn
    ticket.plan_sla_events()


def _renew(ticket: Ticket, name: str, moment: datetime | None, events: SlaEvent) -> None:
    """A deadline set anew: its events may be sent again (once each) for the new time."""
    old = getattr(ticket, name)
    if (old and as_utc(old)) != moment:
        setattr(ticket, name, moment)
        ticket.sla_sent = (ticket.sla_sent or 0) & ~events


def replan(ticket: Ticket, by: Actor) -> None:
    """After a change of type, priority or due_at: the deadlines of the policy that now
    applies, each change recorded (a due_at set by hand is already)."""
    before = {name: getattr(ticket, name) for name in ("response_due_at", "due_at")}
    policy, calendar = policy_for(ticket.isp_id, ticket.type, ticket.priority)
    set_deadlines(ticket, policy, calendar)
    for name, old in before.items():
        new = getattr(ticket, name)
        if (old and as_utc(old)) != (new and as_utc(new)):
            ticket.record(HistoryAction.UPDATED, by, name, old, new)


def resume(ticket: Ticket, now: datetime, by: Actor) -> None:
    """The ticket stops waiting on the subscriber: the deadlines still running move on by the
    time it waited, counted by its policy's calendar (each move recorded)."""
    since, ticket.waiting_since = ticket.waiting_since, None
    if since is None:
        return
    _, calendar = policy_for(ticket.isp_id, ticket.type, ticket.priority)
    waited = calendar.between(since, now)
    ticket.waited_seconds = (ticket.waited_seconds or 0) + round(waited)
    moved = ["due_at", "due_warn_at"]
    if ticket.first_response_at is None:
        moved += ["response_due_at", "response_warn_at"]
    for name in moved:
        old = getattr(ticket, name)
        if old is None:
            continue
        new = calendar.add(old, waited) if calendar.hours else as_utc(old) + (now - as_utc(since))
        setattr(ticket, name, new)
        if name in ("due_at", "response_due_at") and new != as_utc(old):
            ticket.record(HistoryAction.UPDATED, by.as_system(), name, old, new)

"""The SLA: policies (PUT / GET / DELETE /api/v1/sla-policies/{type}/{priority} and the list,
admins write, each ISP its own), the deadlines they give tickets (response_due_at, due_at,
round the clock or in business hours in the ISP's time zone less its and the policy's
holidays; a due_at set by hand wins), whether they were missed (breached), and the wait on
the subscriber (status 4), which stops the clock and moves the deadlines on when it ends.

The calendar's arithmetic is tested on tickets_service.sla.Calendar itself (a DST change day
among them); the rest through the API, with times moved in the database where a test stands
in for the passing of time.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.client import (
    assert_error,
    assert_success,
    call,
    create_ticket,
    get,
    ids,
    list_tickets,
    reply,
)
from support.client import set_status as put_status
from support.database import TIMESTAMP, as_utc, now, set_columns, stamp
from support.urls import STATS, ticket_url

from tickets_service.models import LAST_MOMENT, IspSettings, SlaPolicy, Ticket, TicketHistory
from tickets_service.sla import Calendar

POLICIES, SETTINGS, TYPES = "/api/v1/sla-policies", "/api/v1/settings", "/api/v1/ticket-types"
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
EVERY_DAY = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
BUDGETS = {"first_response_minutes": 30, "resolve_minutes": 240}
SYSTEM = "Network operations"


def policy_url(type_key: str, priority) -> str:
    return f"{POLICIES}/{type_key}/{priority}"


def put_policy(client, admin, type_key="other", priority=2, status=None, **body) -> dict:
    """Save a policy (the BUDGETS unless the body says otherwise); its answer (201 when it
    made the policy, 200 when it replaced it: `status` says which, where it matters)."""
    response = call(client, admin, "PUT", policy_url(type_key, priority), {**BUDGETS, **body})
    expected = status or (201 if response.status_code == 201 else 200)
    return assert_success(response, expected, "SLA policy saved successfully")["data"]


def put_settings(client, admin, **values) -> dict:
    response = call(client, admin, "PUT", SETTINGS, values)
    return assert_success(response, 200, "Settings updated successfully")["data"]


def shown(client, account, ticket_id: int) -> dict:
    return assert_success(get(client, account, ticket_url(ticket_id)), 200)["data"]


def listed(client, account, ticket_id: int, **query) -> dict:
    body = assert_success(list_tickets(client, account, **query), 200)
    [found] = [t for t in body["data"] if t["id"] == ticket_id]
    return found


def update(client, account, ticket_id: int, **changes):
    return call(client, account, "PUT", ticket_url(ticket_id), changes)


def api_history(client, account, ticket_id: int) -> list[dict]:
    response = get(client, account, ticket_url(ticket_id, "/history"), per_page=100)
    return assert_success(response, 200)["data"]


def local(text: str, zone=BERLIN) -> datetime:
    """A wall-clock time of a zone ("2025-03-07 19:30") as an aware UTC moment."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def midnight(day: date, zone=BERLIN) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def deadlines(row: dict) -> tuple:
    """A ticket row's two deadlines, aware (None where there is none)."""
    return tuple(row[name] and as_utc(row[name]) for name in ("response_due_at", "due_at"))


# --- Policies -----------------------------------------------------------------------------------


def test_put_saves_a_round_the_clock_policy(client, admin, rows):
    data = put_policy(
        client, admin, "fault", 3, status=201, first_response_minutes=15, resolve_minutes=0
    )

    assert TIMESTAMP.match(data.pop("updated_at"))
    assert data == {
        "type": "fault",
        "priority": 3,
        "first_response_minutes": 15,
        "resolve_minutes": 0,
        "business_hours": None,
        "holidays": [],
    }
    [stored] = rows(SlaPolicy)
    assert (stored["isp_id"], stored["type"], stored["priority"]) == (1, "fault", 3)
    assert (stored["first_response_minutes"], stored["resolve_minutes"]) == (15, 0)
    assert (stored["business_hours"], stored["holidays"]) == (None, [])


def test_put_stores_business_hours_and_holidays(client, admin, rows):
    hours = {"mon": [["13:00", "18:00"], ["08:00", "12:00"]], "sat": [["00:00", "24:00"]]}
    holidays = ["2025-12-26", "2025-12-25"]

    data = put_policy(client, admin, "billing", 1, business_hours=hours, holidays=holidays)

    assert (data["business_hours"], data["holidays"]) == (hours, sorted(holidays))
    [stored] = rows(SlaPolicy)
    assert (stored["business_hours"], stored["holidays"]) == (hours, sorted(holidays))


def test_put_again_replaces_the_whole_policy(client, admin, rows):
    put_policy(client, admin, status=201, business_hours=WEEKDAYS, holidays=["2025-12-25"])

    data = put_policy(client, admin, status=200, first_response_minutes=60, resolve_minutes=525_600)

    assert (data["business_hours"], data["holidays"]) == (None, [])
    [stored] = rows(SlaPolicy)
    assert (stored["first_response_minutes"], stored["resolve_minutes"]) == (60, 525_600)
    assert (stored["business_hours"], stored["holidays"]) == (None, [])


def test_get_answers_the_policy_or_404(client, admin, staff):
    saved = put_policy(client, admin, "installation", 2, business_hours=WEEKDAYS)

    for account in (admin, staff):
        response = get(client, account, policy_url("installation", 2))
        assert assert_success(response, 200)["data"] == saved
    assert_error(get(client, admin, policy_url("installation", 3)), 404)


def test_delete_removes_the_policy_and_then_it_is_404(client, admin, rows):
    put_policy(client, admin, "fault", 3)
    put_policy(client, admin, "fault", 2)

    response = call(client, admin, "DELETE", policy_url("fault", 3))

    assert_success(response, 200, "SLA policy deleted successfully")
    assert [(p["type"], p["priority"]) for p in rows(SlaPolicy)] == [("fault", 2)]
    assert_error(call(client, admin, "DELETE", policy_url("fault", 3)), 404)
    assert_success(get(client, admin, policy_url("fault", 2)), 200)


def test_the_list_is_by_type_and_priority_and_takes_a_type(client, admin):
    for type_key, priority in (("other", 1), ("fault", 3), ("billing", 2), ("fault", 1)):
        put_policy(client, admin, type_key, priority)

    every = assert_success(get(client, admin, POLICIES), 200)["data"]
    faults = assert_success(get(client, admin, POLICIES, type="fault"), 200)["data"]

    keys = [("billing", 2), ("fault", 1), ("fault", 3), ("other", 1)]
    assert [(p["type"], p["priority"]) for p in every] == keys
    assert [(p["type"], p["priority"]) for p in faults] == keys[1:3]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_staff_may_not_write_policies(client, admin, staff, assert_refused, method):
    put_policy(client, admin, "fault", 3)
    body = {**BUDGETS, "first_response_minutes": 1} if method == "PUT" else None

    assert_refused(lambda: call(client, staff, method, policy_url("fault", 3), body), 403)


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
@pytest.mark.parametrize(
    ("type_key", "priority"),
    [
        ("no-such-type", 2),
        ("fault", 0),
        ("fault", 4),
        ("fault", 60081077),  # past a SMALLINT: never reaches SQL
        ("Ó¿q*¨k", 2),
        ("x" * 41, 2),
    ],
    ids=["unknown-type", "priority-0", "priority-4", "priority-huge", "no-key", "key-41"],
)
def test_a_path_naming_no_type_or_priority_is_404(
    client, admin, assert_refused, method, type_key, priority
):
    assert_success(get(client, admin, TYPES), 200)  # the ISP's catalogue exists
    put_policy(client, admin, "fault", 2)
    body = BUDGETS if method == "PUT" else None

    assert_refused(lambda: call(client, admin, method, policy_url(type_key, priority), body), 404)


def test_another_isp_never_sees_or_changes_the_policies(client, admin, other_admin, rows):
    put_policy(client, admin, "fault", 3)
    [mine] = rows(SlaPolicy)

    assert assert_success(get(client, other_admin, POLICIES), 200)["data"] == []
    for method in ("GET", "DELETE"):
        assert_error(call(client, other_admin, method, policy_url("fault", 3)), 404)
    theirs = put_policy(client, other_admin, "fault", 3, first_response_minutes=5)

    assert theirs["first_response_minutes"] == 5
    assert [p for p in rows(SlaPolicy) if p["isp_id"] == 1] == [mine]
    [seen] = assert_success(get(client, admin, POLICIES), 200)["data"]
    assert seen["first_response_minutes"] == BUDGETS["first_response_minutes"]


BAD_POLICIES = [
    ({"first_response_minutes": -1}, "first_response_minutes", "negative-response"),
    ({"resolve_minutes": -1}, "resolve_minutes", "negative-resolve"),
    ({"first_response_minutes": 525_601}, "first_response_minutes", "response-over-a-year"),
    ({"resolve_minutes": 525_601}, "resolve_minutes", "resolve-over-a-year"),
    ({"first_response_minutes": "30"}, "first_response_minutes", "response-string"),
    ({"resolve_minutes": "240"}, "resolve_minutes", "resolve-string"),
    ({"first_response_minutes": True}, "first_response_minutes", "response-boolean"),
    ({"resolve_minutes": False}, "resolve_minutes", "resolve-boolean"),
    ({"resolve_minutes": 2.5}, "resolve_minutes", "resolve-fraction"),
    ({"first_response_minutes": None}, "first_response_minutes", "response-null"),
    (
        {"business_hours": {"mon": [["08:00", "12:00"], ["11:00", "14:00"]]}},
        "business_hours",
        "overlapping",
    ),
    (
        {"business_hours": {"tue": [["08:00", "18:00"], ["08:00", "18:00"]]}},
        "business_hours",
        "same-period-twice",
    ),
    ({"business_hours": {"mon": [["18:00", "08:00"]]}}, "business_hours", "ends-before-start"),
    ({"business_hours": {"mon": [["08:00", "08:00"]]}}, "business_hours", "empty-period"),
    ({"business_hours": {"mon": [["08:00", "24:30"]]}}, "business_hours", "past-24:00"),
    ({"business_hours": {"mon": [["7:00", "18:00"]]}}, "business_hours", "one-digit-hour"),
    ({"business_hours": {"mon": [["08:60", "18:00"]]}}, "business_hours", "minute-60"),
    ({"business_hours": {"mon": [["-01:00", "18:00"]]}}, "business_hours", "negative-time"),
    ({"business_hours": {"mon": [["08:00"]]}}, "business_hours", "half-a-period"),
    ({"business_hours": {"mon": [[480, 1080]]}}, "business_hours", "minutes-not-text"),
    ({"business_hours": {"monday": [["08:00", "18:00"]]}}, "business_hours", "day-name-long"),
    ({"business_hours": {"Mon": [["08:00", "18:00"]]}}, "business_hours", "day-name-capital"),
    ({"business_hours": {}}, "business_hours", "empty-week"),
    ({"business_hours": {"mon": [], "sun": []}}, "business_hours", "days-without-hours"),
    ({"business_hours": [["08:00", "18:00"]]}, "business_hours", "not-a-week"),
    ({"holidays": ["2025-13-01"]}, "holidays.0", "month-13"),
    ({"holidays": ["christmas"]}, "holidays.0", "not-a-date"),
    ({"holidays": ["2025-12-25 00:00:00"]}, "holidays.0", "a-timestamp"),
    ({"holidays": [20251225]}, "holidays.0", "a-number"),
    ({"holidays": "2025-12-25"}, "holidays", "not-a-list"),
    ({"holidays": ["2025-12-25", "2025-12-25"]}, "holidays", "repeated"),
]


@pytest.mark.parametrize(
    ("change", "field"),
    [case[:2] for case in BAD_POLICIES],
    ids=[case[2] for case in BAD_POLICIES],
)
def test_a_bad_policy_is_422_and_stores_nothing(client, admin, assert_refused, change, field):
    put_policy(client, admin, "fault", 3, business_hours=WEEKDAYS)  # stays as it is
    body = {**BUDGETS, **change}

    assert_refused(lambda: call(client, admin, "PUT", policy_url("fault", 3), body), 422, field)


@pytest.mark.parametrize("missing", ["first_response_minutes", "resolve_minutes"])
def test_a_policy_without_a_budget_is_422(client, admin, assert_refused, missing):
    body = {name: value for name, value in BUDGETS.items() if name != missing}

    assert_refused(lambda: call(client, admin, "PUT", policy_url("fault", 3), body), 422, missing)


def test_settings_take_a_time_zone_holidays_and_auto_close_days(client, admin, rows):
    data = put_settings(
        client, admin, time_zone="Europe/Berlin", holidays=["2025-12-26", "2025-12-25"]
    )
    assert (data["time_zone"], data["holidays"]) == ("Europe/Berlin", ["2025-12-25", "2025-12-26"])
    put_settings(client, admin, auto_close_days=0)

    shown_settings = assert_success(get(client, admin, SETTINGS), 200)["data"]
    assert shown_settings["auto_close_days"] == 0
    [stored] = rows(IspSettings)
    assert (stored["time_zone"], stored["holidays"]) == ("Europe/Berlin", data["holidays"])
    assert stored["auto_close_days"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": "../etc"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"auto_close_days": -1}, "auto_close_days"),
        ({"auto_close_days": 366}, "auto_close_days"),
        ({"auto_close_days": "7"}, "auto_close_days"),
        ({"holidays": ["2025-02-30"]}, "holidays.0"),
        ({"holidays": ["2025-12-25", "2025-12-25"]}, "holidays"),
    ],
    ids=[
        *("zone-unknown", "zone-empty", "zone-path", "zone-deep-path", "zone-null"),
        *("auto-close-negative", "auto-close-366", "auto-close-string"),
        *("holiday-not-a-date", "holiday-repeated"),
    ],
)
def test_bad_desk_settings_are_422_and_store_nothing(client, admin, assert_refused, body, field):
    put_settings(client, admin, time_zone="Europe/Berlin", auto_close_days=3)  # stays

    assert_refused(lambda: call(client, admin, "PUT", SETTINGS, body), 422, field)


# --- The calendar ---------------------------------------------------------------------------------


ROUND_THE_CLOCK = Calendar(ZoneInfo("UTC"))
OFFICE = Calendar.of("Europe/Berlin", WEEKDAYS)


@pytest.mark.parametrize(
    "seconds", [0, 1, 59.5, 3600, 86_400 * 400], ids=["zero", "second", "fraction", "hour", "long"]
)
def test_round_the_clock_adds_and_counts_wall_time(seconds):
    start = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # across Berlin's change: no matter
    end = start + timedelta(seconds=seconds)

    assert ROUND_THE_CLOCK.add(start, seconds) == end
    assert ROUND_THE_CLOCK.between(start, end) == seconds
    assert ROUND_THE_CLOCK.between(end, start) == 0


# (start, counted seconds, end): wall-clock times in Berlin.
OFFICE_ADDS = [
    ("2025-03-05 10:00", 3600, "2025-03-05 11:00", "within-a-day"),
    ("2025-03-05 17:00", 3600, "2025-03-05 18:00", "to-the-close"),
    ("2025-03-05 17:00", 7200, "2025-03-06 09:00", "overnight"),
    ("2025-03-05 06:00", 1800, "2025-03-05 08:30", "before-opening"),
    ("2025-03-07 17:00", 7200, "2025-03-10 09:00", "friday-to-monday"),
    ("2025-03-07 19:30", 3600, "2025-03-10 09:00", "friday-evening"),
    ("2025-03-08 12:00", 0, "2025-03-10 08:00", "weekend-zero"),
    ("2025-03-07 17:00", 36_000 * 5 + 7200, "2025-03-17 09:00", "a-whole-week"),
    ("2025-03-28 17:00", 7200, "2025-03-31 09:00", "over-the-spring-change"),
    ("2025-10-24 17:00", 7200, "2025-10-27 09:00", "over-the-autumn-change"),
]


@pytest.mark.parametrize(
    ("start", "seconds", "end"),
    [case[:3] for case in OFFICE_ADDS],
    ids=[case[3] for case in OFFICE_ADDS],
)
def test_business_hours_add_in_wall_clock_hours_of_the_zone(start, seconds, end):
    assert OFFICE.add(local(start), seconds) == local(end)
    if seconds:
        assert OFFICE.between(local(start), local(end)) == seconds


def test_the_spring_change_is_seen_in_utc():
    # Monday 08:00 is 07:00 UTC in winter and 06:00 UTC in summer: the hours stay on the wall.
    assert OFFICE.add(local("2025-03-24 07:00"), 0) == datetime(2025, 3, 24, 7, tzinfo=UTC)
    assert OFFICE.add(local("2025-03-31 07:00"), 0) == datetime(2025, 3, 31, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "hours", "counted", "last"),
    [
        ("2025-03-30", ["00:00", "24:00"], 23 * 3600, "2025-03-31 00:00"),
        ("2025-10-26", ["00:00", "24:00"], 25 * 3600, "2025-10-27 00:00"),
        ("2025-03-30", ["01:00", "04:00"], 2 * 3600, "2025-03-30 04:00"),
        ("2025-10-26", ["01:00", "04:00"], 4 * 3600, "2025-10-26 04:00"),
        ("2025-03-23", ["00:00", "24:00"], 24 * 3600, "2025-03-24 00:00"),
    ],
    ids=["spring-day", "autumn-day", "spring-night", "autumn-night", "ordinary-sunday"],
)
def test_a_dst_change_day_counts_its_real_length(day, hours, counted, last):
    sundays = Calendar.of("Europe/Berlin", {"sun": [hours]})
    start = midnight(date.fromisoformat(day))
    end = midnight(date.fromisoformat(day) + timedelta(days=1))

    assert sundays.between(start, end) == counted
    # The whole of the day's hours, counted from its midnight, ends when they end.
    assert sundays.add(start, counted) == local(last)


def test_holidays_are_skipped_by_add_and_between():
    off = Calendar.of("Europe/Berlin", WEEKDAYS, ["2025-03-10", "2025-03-11"])
    friday = local("2025-03-07 17:00")

    assert off.add(friday, 7200) == local("2025-03-12 09:00")
    assert off.between(friday, local("2025-03-12 09:00")) == 7200
    assert off.between(local("2025-03-10 09:00"), local("2025-03-11 17:00")) == 0


def test_between_counts_only_the_hours_in_the_range():
    # Wednesday 12:00 to Thursday 10:00: 6 hours on Wednesday, 2 on Thursday.
    assert OFFICE.between(local("2025-03-05 12:00"), local("2025-03-06 10:00")) == 8 * 3600
    assert OFFICE.between(local("2025-03-06 10:00"), local("2025-03-05 12:00")) == 0
    assert OFFICE.between(local("2025-03-08 10:00"), local("2025-03-09 20:00")) == 0


# --- Deadlines --------------------------------------------------------------------------------


def test_round_the_clock_deadlines_are_creation_plus_the_budgets(client, admin, fetch):
    put_policy(client, admin, "fault", 3, first_response_minutes=30, resolve_minutes=240)

    ticket_id = create_ticket(client, admin, type="fault", priority=3)

    row = fetch(Ticket, ticket_id)
    created = as_utc(row["created_at"])
    assert deadlines(row) == (created + timedelta(minutes=30), created + timedelta(minutes=240))
    assert row["due_at_manual"] is False
    for answer in (shown(client, admin, ticket_id), listed(client, admin, ticket_id)):
        assert (answer["response_due_at"], answer["due_at"]) == tuple(map(stamp, deadlines(row)))
        assert answer["due_at_manual"] is False
        assert answer["breached"] == {"response": False, "resolution": False}


def test_without_a_policy_the_deadlines_are_null(client, admin, fetch):
    put_policy(client, admin, "fault", 2)  # another type's
    put_policy(client, admin, "other", 3)  # another priority's

    ticket_id = create_ticket(client, admin, type="other", priority=2)

    row = fetch(Ticket, ticket_id)
    assert (deadlines(row), row["due_at_manual"]) == ((None, None), False)
    answer = shown(client, admin, ticket_id)
    assert (answer["response_due_at"], answer["due_at"], answer["due_at_manual"]) == (
        None,
        None,
        False,
    )
    assert answer["breached"] == {"response": False, "resolution": False}


# Friday 19:30 in Berlin, an hour to respond, 12 to resolve, Monday to Friday 08:00-18:00:
# (Friday, the ISP's holidays, the policy's, response due, resolution due; wall clock).
FRIDAY_EVENINGS = [
    ("2025-03-07", [], [], "2025-03-10 09:00", "2025-03-11 10:00", "plain"),
    ("2025-03-28", [], [], "2025-03-31 09:00", "2025-04-01 10:00", "spring-change-weekend"),
    ("2025-03-07", ["2025-03-10"], [], "2025-03-11 09:00", "2025-03-12 10:00", "isp-holiday"),
    ("2025-03-07", [], ["2025-03-10"], "2025-03-11 09:00", "2025-03-12 10:00", "policy-holiday"),
    (
        "2025-03-07",
        ["2025-03-10"],
        ["2025-03-11"],
        "2025-03-12 09:00",
        "2025-03-13 10:00",
        "both-holidays",
    ),
]


@pytest.mark.parametrize(
    ("friday", "isp_days", "policy_days", "response", "due"),
    [case[:5] for case in FRIDAY_EVENINGS],
    ids=[case[5] for case in FRIDAY_EVENINGS],
)
def test_a_ticket_of_friday_evening_is_due_in_the_next_business_hours(
    client, admin, fetch, app, friday, isp_days, policy_days, response, due
):
    put_settings(client, admin, time_zone="Europe/Berlin", holidays=isp_days)
    hours = {"business_hours": WEEKDAYS, "holidays": policy_days}
    put_policy(client, admin, "other", 3, first_response_minutes=60, resolve_minutes=720, **hours)
    ticket_id = create_ticket(client, admin, priority=2)  # no policy yet
    set_columns(app, Ticket, ticket_id, created_at=local(f"{friday} 19:30"))

    # The priority that has a policy sets its deadlines, counted from the creation.
    assert_success(update(client, admin, ticket_id, priority=3), 200, "Ticket updated successfully")

    row = fetch(Ticket, ticket_id)
    assert deadlines(row) == (local(response), local(due))
    answer = shown(client, admin, ticket_id)
    assert (answer["response_due_at"], answer["due_at"]) == (
        stamp(local(response)),
        stamp(local(due)),
    )


def test_on_create_business_hours_skip_the_isp_and_policy_holidays(client, admin, fetch):
    # Round the clock every day but today (the ISP's day off) and tomorrow (the policy's), in
    # Berlin: whenever the test runs, the clock starts the day after tomorrow at midnight.
    today = now().astimezone(BERLIN).date()
    tomorrow = today + timedelta(days=1)
    put_settings(client, admin, time_zone="Europe/Berlin", holidays=[today.isoformat()])
    put_policy(
        client,
        admin,
        "fault",
        3,
        first_response_minutes=60,
        resolve_minutes=120,
        business_hours=EVERY_DAY,
        holidays=[tomorrow.isoformat()],
    )

    ticket_id = create_ticket(client, admin, type="fault", priority=3)

    start = midnight(today + timedelta(days=2))
    row = fetch(Ticket, ticket_id)
    assert deadlines(row) == (start + timedelta(hours=1), start + timedelta(hours=2))
    assert shown(client, admin, ticket_id)["response_due_at"] == stamp(start + timedelta(hours=1))


def test_a_due_at_set_by_hand_on_create_wins(client, admin, fetch):
    put_policy(client, admin, "fault", 3)

    ticket_id = create_ticket(client, admin, type="fault", priority=3, due_at="2031-05-06 07:08:09")

    row = fetch(Ticket, ticket_id)
    created = as_utc(row["created_at"])
    assert deadlines(row) == (
        created + timedelta(minutes=30),
        datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC),
    )
    assert row["due_at_manual"] is True
    for answer in (shown(client, admin, ticket_id), listed(client, admin, ticket_id)):
        assert (answer["due_at"], answer["due_at_manual"]) == ("2031-05-06 07:08:09", True)


def test_a_due_at_set_by_hand_on_update_wins_until_null_gives_it_back(client, admin, fetch):
    put_policy(client, admin, "other", 2)
    put_policy(client, admin, "other", 3, first_response_minutes=10, resolve_minutes=60)
    ticket_id = create_ticket(client, admin, priority=2)
    created = as_utc(fetch(Ticket, ticket_id)["created_at"])
    by_hand = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)

    assert_success(update(client, admin, ticket_id, due_at=stamp(by_hand)), 200)
    row = fetch(Ticket, ticket_id)
    assert (deadlines(row), row["due_at_manual"]) == (
        (created + timedelta(minutes=30), by_hand),
        True,
    )

    # A new priority sets the response deadline again; the due time by hand stays.
    assert_success(update(client, admin, ticket_id, priority=3), 200)
    row = fetch(Ticket, ticket_id)
    assert (deadlines(row), row["due_at_manual"]) == (
        (created + timedelta(minutes=10), by_hand),
        True,
    )
    assert shown(client, admin, ticket_id)["due_at_manual"] is True

    assert_success(update(client, admin, ticket_id, due_at=None), 200)
    row = fetch(Ticket, ticket_id)
    assert (deadlines(row), row["due_at_manual"]) == (
        (created + timedelta(minutes=10), created + timedelta(minutes=60)),
        False,
    )
    answer = shown(client, admin, ticket_id)
    assert (answer["due_at"], answer["due_at_manual"]) == (stamp(row["due_at"]), False)


@pytest.mark.parametrize(
    ("change", "policy_key"),
    [({"priority": 3}, ("other", 3)), ({"type": "fault"}, ("fault", 2))],
    ids=["priority", "type"],
)
def test_a_priority_or_type_change_sets_the_deadlines_again_with_history(
    client, admin, fetch, rows, change, policy_key
):
    put_policy(client, admin, "other", 2)
    put_policy(client, admin, *policy_key, first_response_minutes=60, resolve_minutes=480)
    ticket_id = create_ticket(client, admin, priority=2)
    before = fetch(Ticket, ticket_id)
    created = as_utc(before["created_at"])

    assert_success(update(client, admin, ticket_id, **change), 200, "Ticket updated successfully")

    after = fetch(Ticket, ticket_id)
    assert deadlines(after) == (created + timedelta(minutes=60), created + timedelta(minutes=480))
    [field] = change
    moved = [
        (h["action"], h["field"], h["old"], h["new"], h["user_id"], h["system"])
        for h in rows(TicketHistory)
        if h["ticket_id"] == ticket_id and h["field"] in (field, "response_due_at", "due_at")
    ]
    assert moved == [
        ("updated", field, before[field], change[field], admin.id, False),
        *(
            ("updated", name, stamp(before[name]), stamp(after[name]), admin.id, False)
            for name in ("response_due_at", "due_at")
        ),
    ]
    seen = [(h["field"], h["old"], h["new"]) for h in api_history(client, admin, ticket_id)]
    assert ("due_at", stamp(before["due_at"]), stamp(after["due_at"])) in seen
    assert (
        "response_due_at",
        stamp(before["response_due_at"]),
        stamp(after["response_due_at"]),
    ) in (seen)


def test_a_change_to_a_priority_without_a_policy_clears_the_deadlines(client, admin, fetch, rows):
    put_policy(client, admin, "other", 2)
    ticket_id = create_ticket(client, admin, priority=2)
    before = fetch(Ticket, ticket_id)

    assert_success(update(client, admin, ticket_id, priority=1), 200)

    assert deadlines(fetch(Ticket, ticket_id)) == (None, None)
    cleared = [
        (h["field"], h["old"], h["new"])
        for h in rows(TicketHistory)
        if h["ticket_id"] == ticket_id and h["field"] in ("response_due_at", "due_at")
    ]
    assert cleared == [
        ("response_due_at", stamp(before["response_due_at"]), None),
        ("due_at", stamp(before["due_at"]), None),
    ]


def test_a_policy_of_zero_minutes_is_breached_at_once(client, admin, fetch):
    put_policy(client, admin, "fault", 3, first_response_minutes=0, resolve_minutes=0)

    ticket_id = create_ticket(client, admin, type="fault", priority=3)

    row = fetch(Ticket, ticket_id)
    assert deadlines(row) == (as_utc(row["created_at"]), as_utc(row["created_at"]))
    for answer in (shown(client, admin, ticket_id), listed(client, admin, ticket_id)):
        assert answer["breached"] == {"response": True, "resolution": True}


HOUR = timedelta(hours=1)
# A ticket's columns relative to now (hours; None: not set), and what breached says.
BREACHES = [
    ({"status": 1, "response": -1, "due": -1}, (True, True), "both-missed"),
    ({"status": 0, "response": 1, "due": 2}, (False, False), "both-ahead"),
    ({"status": 1, "response": -1, "due": 2}, (True, False), "response-missed"),
    ({"status": 1, "answered": -2, "response": -1, "due": -1}, (False, True), "answered-in-time"),
    ({"status": 1, "answered": -0.5, "response": -1, "due": 2}, (True, False), "answered-late"),
    ({"status": 2, "resolved": -2, "response": -1, "due": -1}, (False, False), "resolved-in-time"),
    ({"status": 2, "resolved": -0.5, "response": -3, "due": -1}, (True, True), "resolved-late"),
    ({"status": 3, "closed": -2, "due": -1}, (False, False), "closed-in-time"),
    ({"status": 1}, (False, False), "no-deadlines"),
]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [case[:2] for case in BREACHES],
    ids=[case[2] for case in BREACHES],
)
def test_breached_says_which_deadlines_were_missed(client, admin, make_ticket, columns, expected):
    names = {
        "response": "response_due_at",
        "due": "due_at",
        "answered": "first_response_at",
        "resolved": "resolved_at",
        "closed": "closed_at",
    }
    values = {names[k]: now() + v * HOUR for k, v in columns.items() if k != "status"}
    ticket_id = make_ticket(admin, age=3 * HOUR, status=columns["status"], **values)

    wanted = {"response": expected[0], "resolution": expected[1]}
    assert shown(client, admin, ticket_id)["breached"] == wanted
    assert listed(client, admin, ticket_id)["breached"] == wanted


# --- Waiting on the subscriber ------------------------------------------------------------------


def test_status_4_is_accepted_and_starts_the_wait(client, staff, fetch, rows):
    ticket_id = create_ticket(client, staff)
    before = now()

    response = put_status(client, staff, ticket_id, 4)

    assert_success(response, 200, "Ticket status updated successfully")
    row = fetch(Ticket, ticket_id)
    assert row["status"] == 4
    assert before <= as_utc(row["waiting_since"]) <= now()
    assert shown(client, staff, ticket_id)["status"] == 4
    changes = [
        (h["action"], h["old"], h["new"], h["user_id"])
        for h in rows(TicketHistory)
        if h["ticket_id"] == ticket_id and h["field"] == "status"
    ]
    assert changes == [("status_changed", 0, 4, staff.id)]


@pytest.mark.parametrize("status", [5, -1, "4", 4.5, None], ids=["5", "-1", "text", "half", "null"])
def test_a_status_beyond_4_is_422_and_changes_nothing(
    client, staff, make_ticket, assert_refused, status
):
    ticket_id = make_ticket(staff, status=1)

    assert_refused(lambda: put_status(client, staff, ticket_id, status), 422, "status")


@pytest.mark.parametrize(
    ("since", "breached"),
    [(-3, False), (-0.5, True)],
    ids=["waiting-since-before-the-deadlines", "waiting-since-after-them"],
)
def test_while_it_waits_the_time_that_passes_does_not_breach(
    client, admin, app, fetch, since, breached
):
    put_policy(client, admin, "other", 2, first_response_minutes=60, resolve_minutes=120)
    ticket_id = create_ticket(client, admin, priority=2)
    assert_success(put_status(client, admin, ticket_id, 4), 200)
    # Created four hours ago, due two and one hour ago: now is past both deadlines.
    set_columns(
        app,
        Ticket,
        ticket_id,
        created_at=now() - 4 * HOUR,
        response_due_at=now() - 2 * HOUR,
        due_at=now() - HOUR,
        waiting_since=now() + since * HOUR,
    )

    row = fetch(Ticket, ticket_id)
    assert row["status"] == 4
    assert as_utc(row["due_at"]) < now()
    wanted = {"response": breached, "resolution": breached}
    assert shown(client, admin, ticket_id)["breached"] == wanted
    assert listed(client, admin, ticket_id)["breached"] == wanted


@pytest.mark.parametrize("to", [0, 1, 2, 3])
def test_leaving_4_moves_the_deadlines_on_by_the_wait(client, admin, app, fetch, rows, to):
    put_policy(client, admin, "other", 2)
    ticket_id = create_ticket(client, admin, priority=2)
    assert_success(put_status(client, admin, ticket_id, 4), 200)
    since = now() - 2 * HOUR  # the wait began two hours ago
    set_columns(app, Ticket, ticket_id, waiting_since=since)
    before = fetch(Ticket, ticket_id)
    start = now()

    assert_success(put_status(client, admin, ticket_id, to), 200)

    end = now()
    after = fetch(Ticket, ticket_id)
    assert (after["status"], after["waiting_since"]) == (to, None)
    low, high = start - since - timedelta(seconds=1), end - since + timedelta(seconds=1)
    for name in ("response_due_at", "due_at"):
        assert low <= as_utc(after[name]) - as_utc(before[name]) <= high, name
    assert low.total_seconds() <= after["waited_seconds"] <= high.total_seconds()
    moves = [
        (h["action"], h["field"], h["old"], h["new"], h["user_id"], h["system"])
        for h in rows(TicketHistory)
        if h["ticket_id"] == ticket_id and h["field"] in ("response_due_at", "due_at")
    ]
    assert moves == [
        ("updated", name, stamp(before[name]), stamp(after[name]), admin.id, True)
        for name in ("due_at", "response_due_at")
    ]
    seen = [
        (h["field"], h["user_id"], h["user_name"])
        for h in api_history(client, admin, ticket_id)
        if h["field"] in ("response_due_at", "due_at")
    ]
    assert seen == [("due_at", None, SYSTEM), ("response_due_at", None, SYSTEM)]
    answer = shown(client, admin, ticket_id)
    assert (answer["response_due_at"], answer["due_at"]) == (
        stamp(after["response_due_at"]),
        stamp(after["due_at"]),
    )


def test_once_answered_only_the_resolution_deadline_moves_after_a_wait(
    client, admin, staff, app, fetch
):
    put_policy(client, admin, "other", 2)
    ticket_id = create_ticket(client, staff, priority=2)
    assert_success(reply(client, staff, ticket_id), 201)
    assert_success(put_status(client, staff, ticket_id, 4), 200)
    since = now() - 2 * HOUR
    set_columns(app, Ticket, ticket_id, waiting_since=since)
    before = fetch(Ticket, ticket_id)

    assert_success(put_status(client, staff, ticket_id, 1), 200)

    after = fetch(Ticket, ticket_id)
    assert after["response_due_at"] == before["response_due_at"]
    moved = as_utc(after["due_at"]) - as_utc(before["due_at"])
    assert 2 * HOUR - timedelta(seconds=1) <= moved <= now() - since + timedelta(seconds=1)


def test_a_wait_on_days_off_moves_nothing(client, admin, app, fetch, rows):
    # Business hours every day, but yesterday, today and tomorrow (Berlin) are days off: a wait
    # of the last two hours counted nothing.
    today = now().astimezone(BERLIN).date()
    off = [(today + timedelta(days=n)).isoformat() for n in (-1, 0, 1)]
    put_settings(client, admin, time_zone="Europe/Berlin", holidays=off)
    put_policy(client, admin, "other", 2, business_hours=EVERY_DAY)
    ticket_id = create_ticket(client, admin, priority=2)
    assert_success(put_status(client, admin, ticket_id, 4), 200)
    set_columns(app, Ticket, ticket_id, waiting_since=now() - 2 * HOUR)
    before = fetch(Ticket, ticket_id)

    assert_success(put_status(client, admin, ticket_id, 1), 200)

    after = fetch(Ticket, ticket_id)
    assert deadlines(after) == deadlines(before)
    assert (after["waiting_since"], after["waited_seconds"]) == (None, 0)
    fields = {h["field"] for h in rows(TicketHistory) if h["ticket_id"] == ticket_id}
    assert not fields & {"response_due_at", "due_at"}


def test_a_staff_reply_keeps_status_4(client, staff, fetch):
    ticket_id = create_ticket(client, staff)
    assert_success(put_status(client, staff, ticket_id, 4), 200)
    waiting = fetch(Ticket, ticket_id)["waiting_since"]

    assert_success(reply(client, staff, ticket_id), 201, "Reply added successfully")

    row = fetch(Ticket, ticket_id)
    assert (row["status"], row["waiting_since"]) == (4, waiting)
    assert row["first_response_at"] is not None
    assert shown(client, staff, ticket_id)["status"] == 4


def test_a_waiting_ticket_counts_as_open_in_overdue_and_stats(client, staff, make_ticket):
    late = now() - HOUR
    waiting = make_ticket(staff, status=4, waiting_since=now() - 2 * HOUR, due_at=late)
    make_ticket(staff, status=2, due_at=late)  # late but resolved: not open
    make_ticket(staff, status=1, due_at=now() + HOUR, assignee_id=staff.id)

    body = assert_success(list_tickets(client, staff, overdue="true"), 200)
    assert (ids(body), body["meta"]["total"]) == ([waiting], 1)

    stats = assert_success(get(client, staff, STATS), 200)["data"]
    assert stats["by_status"] == {"0": 0, "1": 1, "2": 1, "3": 0, "4": 1}
    assert (stats["unassigned_open"], stats["overdue"]) == (1, 1)


def test_the_status_filter_takes_4_and_the_spec_codes_leave_it_out(client, staff, make_ticket):
    made = {status: make_ticket(staff, status=status) for status in range(5)}

    spec = assert_success(list_tickets(client, staff, status="0,1,2,3"), 200)
    waiting = assert_success(list_tickets(client, staff, status="4"), 200)
    both = assert_success(list_tickets(client, staff, status="1,4"), 200)

    assert sorted(ids(spec)) == sorted(made[s] for s in range(4))
    assert (ids(waiting), waiting["meta"]["total"]) == ([made[4]], 1)
    assert sorted(ids(both)) == sorted([made[1], made[4]])


def test_a_client_of_the_spec_alone_never_meets_status_4(client, admin, staff, fetch, rows):
    put_policy(client, admin, "other", 2)
    ticket_id = create_ticket(client, staff, priority=2)
    seen = [shown(client, staff, ticket_id)["status"]]
    assert_success(reply(client, staff, ticket_id), 201)
    seen.append(shown(client, staff, ticket_id)["status"])
    for status in (1, 2, 0, 1, 3):
        assert_success(put_status(client, staff, ticket_id, status), 200)
        seen.append(shown(client, staff, ticket_id)["status"])
        seen += [t["status"] for t in assert_success(list_tickets(client, staff), 200)["data"]]

    assert 4 not in seen
    assert fetch(Ticket, ticket_id)["waiting_since"] is None
    statuses = [
        (h["old"], h["new"])
        for h in rows(TicketHistory)
        if h["ticket_id"] == ticket_id and h["field"] == "status"
    ]
    assert statuses == [(0, 1), (1, 2), (2, 0), (0, 1), (1, 3)]


# --- The end of the calendar -------------------------------------------------------------------


def test_a_budget_the_calendar_cannot_fit_ends_at_the_last_moment():
    """An hour a week cannot fit a year of minutes before the calendar's horizon, and no time
    follows the last moment a timestamp holds: both are "never", not an error."""
    sparse = Calendar.of("Europe/Berlin", {"mon": [["08:00", "09:00"]]})
    start = datetime(2026, 12, 7, tzinfo=UTC)

    assert sparse.add(start, 525_600 * 60) == LAST_MOMENT
    assert sparse.add(LAST_MOMENT - timedelta(days=2), 7200) == LAST_MOMENT
    assert sparse.between(LAST_MOMENT - timedelta(days=2), LAST_MOMENT) == 0.0
    assert Calendar(ZoneInfo("UTC")).add(LAST_MOMENT, 60) == LAST_MOMENT


def test_a_wait_on_a_ticket_due_at_the_end_of_time_moves_nothing(client, admin, fetch):
    put_policy(client, admin, "other", 2, business_hours=WEEKDAYS)
    ticket_id = create_ticket(client, admin, due_at="9999-12-31 23:59:59")

    for status in (4, 1):
        assert_success(put_status(client, admin, ticket_id, status), 200)

    row = fetch(Ticket, ticket_id)
    assert (stamp(row["due_at"]), row["due_at_manual"], row["status"]) == (
        "9999-12-31 23:59:59",
        True,
        1,
    )

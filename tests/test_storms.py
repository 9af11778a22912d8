"""Storms: storm_tickets new tickets within storm_minutes from subscribers served below one
network object, with no open incident covering them, make one suggestion at the lowest object
covering them (GET /api/v1/incidents/suggestions); accepting it opens the incident, dismissing
it keeps the object quiet. The ISP sets N and M (GET / PUT /api/v1/settings, admins only), and
nothing of one ISP counts towards, or is seen by, another."""

from datetime import timedelta

import pytest
from support.client import assert_success, call, create_ticket, get
from support.database import as_utc, now, saved, session, set_columns, stamp
from support.urls import SUBSCRIBERS

from tickets_service.models import (
    KEY_SCOPES,
    Incident,
    IncidentSuggestion,
    IspSettings,
    NetworkObject,
    StormHit,
    Ticket,
    TicketHistory,
    TicketLink,
    WebhookDelivery,
    WebhookEndpoint,
)
from tickets_service.storms import DEFAULT_MESSAGE
from tickets_service.webhooks.worker import dispatch

SETTINGS = "/api/v1/settings"
SUGGESTIONS = "/api/v1/incidents/suggestions"
DEFAULTS = {
    **{"storm_tickets": 5, "storm_minutes": 15},
    # The desk rules' settings (test_desk_rules.py).
    **{"time_zone": "UTC", "holidays": [], "auto_close_days": 7, "staff_display_name": "Support"},
}
SUGGESTION_KEYS = ["id", "object", "ticket_ids", "first_at", "last_at", "count"]

# One ISP's network: two services under node n1, one under node n2, all under site s1.
TREE = [
    ("site:s1", None),
    ("node:n1", "site:s1"),
    ("service:svc1", "node:n1"),
    ("service:svc2", "node:n1"),
    ("node:n2", "site:s1"),
    ("service:svc3", "node:n2"),
]


def ref(target: str) -> dict:
    kind, external_id = target.split(":", 1)
    return {"kind": kind, "external_id": external_id}


def build_tree(client, admin) -> None:
    for target, parent in TREE:
        body = {"name": f"The {target}", **({"parent": ref(parent)} if parent else {})}
        url = f"/api/v1/network/{target.replace(':', '/', 1)}"
        assert_success(call(client, admin, "PUT", url, body), 201)


@pytest.fixture
def serve(client, make_subscriber):
    """serve(admin, target) -> a new subscriber of the admin's ISP served by `target`
    (None: by nothing)."""

    def factory(admin, target: str | None) -> int:
        subscriber_id = make_subscriber(isp_id=admin.isp_id, branch_id=admin.branch_id)
        if target is not None:
            body = {"network": [ref(target)]}
            response = call(client, admin, "PUT", f"{SUBSCRIBERS}/{subscriber_id}", body)
            assert_success(response, 200)
        return subscriber_id

    return factory


@pytest.fixture
def storm(client, admin, serve):
    """storm(*targets, by=admin) -> the ids of new tickets, one per target, each from a new
    subscriber served by it, created through the API in this order."""

    def create(*targets: str | None, by=admin) -> list[int]:
        return [create_ticket(client, by, subscriber_id=serve(by, target)) for target in targets]

    return create


@pytest.fixture
def tree(client, admin):
    build_tree(client, admin)


def suggestions(client, admin) -> list[dict]:
    return assert_success(get(client, admin, SUGGESTIONS), 200)["data"]


def put_settings(client, admin, **values) -> dict:
    response = call(client, admin, "PUT", SETTINGS, values)
    return assert_success(response, 200, "Settings updated successfully")["data"]


# --- Settings -----------------------------------------------------------------------------------


def test_an_isp_that_never_set_anything_has_the_defaults(client, admin, rows):
    body = assert_success(get(client, admin, SETTINGS), 200)

    assert body["data"] == DEFAULTS
    assert rows(IspSettings) == []


def test_put_changes_only_the_settings_it_names(client, admin, rows):
    assert put_settings(client, admin, storm_tickets=3) == {**DEFAULTS, "storm_tickets": 3}
    later = put_settings(client, admin, storm_minutes=1440)
    assert later == {**DEFAULTS, "storm_tickets": 3, "storm_minutes": 1440}

    [stored] = rows(IspSettings)
    assert (stored["isp_id"], stored["storm_tickets"], stored["storm_minutes"]) == (1, 3, 1440)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"storm_tickets": 1}, "storm_tickets"),
        ({"storm_tickets": 1001}, "storm_tickets"),
        ({"storm_minutes": 0}, "storm_minutes"),
        ({"storm_minutes": 1441}, "storm_minutes"),
        ({"storm_tickets": "5"}, "storm_tickets"),
        ({"storm_tickets": 2.5}, "storm_tickets"),
        ({"storm_minutes": None}, "storm_minutes"),
        ({"storm_minutes": True}, "storm_minutes"),
        ({"storm_tickets": 3, "storm_minutes": 0}, "storm_minutes"),
        ({}, None),
    ],
)
def test_bad_settings_are_422_and_store_nothing(client, admin, assert_refused, body, field):
    put_settings(client, admin, storm_tickets=7, storm_minutes=20)  # a row that stays as it is

    assert_refused(lambda: call(client, admin, "PUT", SETTINGS, body), 422, field)


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("caller", ["staff", "key"])
def test_settings_are_for_admins_only(
    request, client, admin, make_key, assert_refused, method, caller
):
    # A key is refused whatever its scopes: the blueprint is closed to keys.
    who = request.getfixturevalue(caller) if caller == "staff" else make_key(admin, KEY_SCOPES)
    body = {"storm_tickets": 3} if method == "PUT" else None

    assert_refused(lambda: call(client, who, method, SETTINGS, body), 403)


def test_one_isps_settings_never_affect_anothers(client, admin, other_admin, tree, storm, rows):
    put_settings(client, admin, storm_tickets=2, storm_minutes=60)
    build_tree(client, other_admin)

    storm("service:svc1", "service:svc1", by=other_admin)

    assert assert_success(get(client, other_admin, SETTINGS), 200)["data"] == DEFAULTS
    assert rows(IncidentSuggestion) == []


# --- When a storm is on -------------------------------------------------------------------------


@pytest.mark.parametrize("storm_tickets", [None, 3])
def test_the_nth_ticket_makes_one_suggestion_and_not_before(
    client, admin, tree, storm, rows, storm_tickets
):
    if storm_tickets is not None:
        put_settings(client, admin, storm_tickets=storm_tickets)
    n = storm_tickets or DEFAULTS["storm_tickets"]

    before = storm(*["service:svc1"] * (n - 1))
    assert suggestions(client, admin) == []
    assert rows(IncidentSuggestion) == []
    tickets = [*before, *storm("service:svc1")]

    [shown] = suggestions(client, admin)
    assert list(shown) == SUGGESTION_KEYS
    [stored] = rows(IncidentSuggestion)
    assert shown == {
        "id": stored["id"],
        "object": {"kind": "service", "external_id": "svc1", "name": "The service:svc1"},
        "ticket_ids": tickets,
        "first_at": stamp(stored["first_at"]),
        "last_at": stamp(stored["last_at"]),
        "count": n,
    }
    hits = {r["ticket_id"]: r["at"] for r in rows(StormHit)}
    assert stored["first_at"] == hits[tickets[0]]
    assert stored["last_at"] == hits[tickets[-1]]


@pytest.mark.parametrize(
    ("served_by", "suggested_at"),
    [
        (["service:svc1"] * 5, "service:svc1"),
        (["service:svc1", "service:svc2"] * 2 + ["service:svc1"], "node:n1"),
        (["service:svc1"] * 4 + ["node:n1"], "node:n1"),
        (["service:svc1", "service:svc3"] * 2 + ["service:svc2"], "site:s1"),
    ],
)
def test_the_suggestion_is_at_the_lowest_object_covering_the_storm(
    client, admin, tree, storm, served_by, suggested_at
):
    storm(*served_by)

    [shown] = suggestions(client, admin)
    assert shown["object"] == {**ref(suggested_at), "name": f"The {suggested_at}"}


def test_tickets_of_subscribers_the_network_does_not_serve_never_storm(
    client, admin, tree, storm, rows
):
    storm(*[None] * 6)
    for _ in range(5):
        create_ticket(client, admin)  # no subscriber at all

    assert suggestions(client, admin) == []
    assert (rows(StormHit), rows(IncidentSuggestion)) == ([], [])


def test_a_ticket_that_joins_an_open_incident_does_not_count(
    client, admin, tree, serve, fetch, rows
):
    subscribers = [serve(admin, "service:svc1") for _ in range(4)] + [serve(admin, "service:svc2")]
    body = {"title": "Svc2 down", "description": "Port dead", "priority": 3}
    body |= {"links": [ref("service:svc2")], "public_message": "We are on it."}
    opened = assert_success(call(client, admin, "POST", "/api/v1/incidents", body), 201)

    *counted, joined = [create_ticket(client, admin, subscriber_id=s) for s in subscribers]

    assert fetch(Ticket, joined)["parent_id"] == opened["data"]["id"]
    assert {r["ticket_id"] for r in rows(StormHit)} == set(counted)
    assert suggestions(client, admin) == []


@pytest.mark.parametrize("resolved", [False, True], ids=["open", "resolved"])
def test_tickets_an_incident_gathered_no_longer_count_higher_up(
    client, admin, tree, storm, fetch, rows, resolved
):
    gathered = storm(*["service:svc1"] * 3)  # counted at svc1, n1 and s1 when they came
    body = {"title": "N1 down", "description": "Uplink", "priority": 3}
    body |= {"links": [ref("node:n1")], "public_message": "We are on it."}
    incident = assert_success(call(client, admin, "POST", "/api/v1/incidents", body), 201)
    incident_id = incident["data"]["id"]
    if resolved:
        status = f"/api/v1/tickets/{incident_id}/status"
        assert_success(call(client, admin, "PUT", status, {"status": 2}), 200)

    later = storm(*["service:svc3"] * 2)  # with the gathered three, five hits at s1

    assert [fetch(Ticket, t)["parent_id"] for t in gathered] == [incident_id] * 3
    site = next(r["id"] for r in rows(NetworkObject) if r["external_id"] == "s1")
    assert {r["ticket_id"] for r in rows(StormHit) if r["object_id"] == site} == {
        *gathered,
        *later,
    }
    assert suggestions(client, admin) == []
    assert rows(IncidentSuggestion) == []

    storm(*["service:svc3"] * 3)  # five of its own: the storm at svc3 is suggested

    [shown] = suggestions(client, admin)
    assert shown["object"]["external_id"] == "svc3"
    assert set(shown["ticket_ids"]).isdisjoint(gathered)


@pytest.mark.parametrize("then", ["service:svc1", "service:svc2"], ids=["same", "sibling"])
def test_further_tickets_of_the_storm_join_its_open_suggestion(
    client, admin, tree, storm, rows, then
):
    first = storm(*["service:svc1"] * 5)
    [opened] = suggestions(client, admin)

    more = storm(then, then)

    shown = suggestions(client, admin)
    assert [s["id"] for s in shown] == [opened["id"]]
    [grown] = shown
    assert (grown["ticket_ids"], grown["count"]) == ([*first, *more], 7)
    assert grown["last_at"] >= opened["last_at"]
    assert len(rows(IncidentSuggestion)) == 1


def test_the_nth_ticket_records_the_suggestion_an_incident_suggested_event(
    app, client, admin, tree, storm, rows
):
    hook = {"url": "https://93.184.216.34/hook", "secret": "whsec_storm"}
    hook |= {"events": ["incident.suggested"], "created_at": now() - timedelta(minutes=1)}
    saved(app, WebhookEndpoint(isp_id=1, created_by_id=admin.id, **hook))

    tickets = storm(*["service:svc1"] * 5)

    suggested = [
        (r["ticket_id"], r["new"], r["system"])
        for r in rows(TicketHistory)
        if r["action"] == "incident_suggested"
    ]
    [stored] = rows(IncidentSuggestion)
    [(ticket_id, new, by_system)] = suggested
    assert (ticket_id, by_system) == (tickets[-1], True)
    assert new == {
        "suggestion_id": stored["id"],
        "object": {"kind": "service", "external_id": "svc1", "name": "The service:svc1"},
        "ticket_ids": tickets,
        "first_at": stamp(stored["first_at"]),
        "last_at": stamp(stored["last_at"]),
        "count": 5,
    }
    with session(app):
        while dispatch():
            pass
    entry = next(r["id"] for r in rows(TicketHistory) if r["action"] == "incident_suggested")
    assert [(d["history_id"], d["event"]) for d in rows(WebhookDelivery)] == [
        (entry, "incident.suggested")
    ]


@pytest.mark.parametrize(
    ("minutes_ago", "storm_minutes", "suggested"),
    [(14, None, True), (16, None, False), (25, 30, True), (31, 30, False)],
)
def test_only_hits_within_storm_minutes_count(
    app, client, admin, tree, storm, minutes_ago, storm_minutes, suggested
):
    if storm_minutes is not None:
        put_settings(client, admin, storm_minutes=storm_minutes)
    storm(*["service:svc1"] * 4)
    set_columns(app, StormHit, StormHit.isp_id == 1, at=now() - timedelta(minutes=minutes_ago))

    storm("service:svc1")

    assert len(suggestions(client, admin)) == int(suggested)


def test_another_isps_tickets_never_count_towards_a_storm(
    client, admin, other_admin, tree, storm, rows
):
    build_tree(client, other_admin)  # the same kinds and external ids, in ISP 2

    storm(*["service:svc1"] * 4)
    storm(*["service:svc1"] * 4, by=other_admin)

    assert rows(IncidentSuggestion) == []
    assert {r["isp_id"] for r in rows(StormHit)} == {1, 2}


# --- Accepting and dismissing -------------------------------------------------------------------


@pytest.fixture
def suggested(client, admin, tree, storm) -> tuple[int, list[int]]:
    """An open suggestion at service:svc1 and its tickets."""
    tickets = storm(*["service:svc1"] * 5)
    [shown] = suggestions(client, admin)
    return shown["id"], tickets


@pytest.mark.parametrize(
    ("body", "title", "message"),
    [
        ({}, "Outage at service The service:svc1", DEFAULT_MESSAGE),
        ({"title": "Svc1 dark", "public_message": "Fixing it."}, "Svc1 dark", "Fixing it."),
    ],
)
def test_accepting_opens_the_incident_with_the_storms_tickets_as_children(
    client, admin, suggested, fetch, rows, body, title, message
):
    suggestion_id, tickets = suggested

    response = call(client, admin, "POST", f"{SUGGESTIONS}/{suggestion_id}/accept", body)

    data = assert_success(response, 201, "Incident opened successfully")["data"]
    incident_id = data["id"]
    assert data == {"id": incident_id}
    incident = fetch(Ticket, incident_id)
    assert (incident["kind"], incident["title"]) == ("incident", title)
    info = fetch(Incident, incident_id)
    stored = fetch(IncidentSuggestion, suggestion_id)
    assert (info["public_message"], info["starts_at"]) == (message, stored["first_at"])
    [link] = [r["object_id"] for r in rows(TicketLink) if r["ticket_id"] == incident_id]
    linked = fetch(NetworkObject, link)
    assert (linked["isp_id"], linked["kind"], linked["external_id"]) == (1, "service", "svc1")
    assert {fetch(Ticket, t)["parent_id"] for t in tickets} == {incident_id}
    assert (stored["status"], stored["incident_id"]) == ("accepted", incident_id)
    assert suggestions(client, admin) == []


def test_dismissing_keeps_its_object_quiet(client, admin, suggested, storm, fetch, rows):
    suggestion_id, _ = suggested

    response = call(client, admin, "DELETE", f"{SUGGESTIONS}/{suggestion_id}")

    assert_success(response, 200, "Suggestion dismissed")
    assert fetch(IncidentSuggestion, suggestion_id)["status"] == "dismissed"
    assert as_utc(fetch(IncidentSuggestion, suggestion_id)["quiet_until"]) > now()
    storm(*["service:svc1"] * 3)
    assert suggestions(client, admin) == []
    assert [r["id"] for r in rows(IncidentSuggestion)] == [suggestion_id]


ACTIONS = {
    "list": ("GET", "", None),
    "accept": ("POST", "/{id}/accept", {}),
    "dismiss": ("DELETE", "/{id}", None),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_staff_may_not_see_accept_or_dismiss_suggestions(
    client, staff, suggested, assert_refused, action
):
    method, path, body = ACTIONS[action]
    url = SUGGESTIONS + path.format(id=suggested[0])

    assert_refused(lambda: call(client, staff, method, url, body), 403)


@pytest.mark.parametrize("action", ["accept", "dismiss"])
@pytest.mark.parametrize("which", ["unknown", "accepted", "dismissed"])
def test_a_suggestion_that_is_not_open_is_404(
    client, admin, suggested, assert_refused, action, which
):
    suggestion_id = suggested[0]
    if which == "unknown":
        suggestion_id += 1000
    elif which == "accepted":
        accept = call(client, admin, "POST", f"{SUGGESTIONS}/{suggestion_id}/accept", {})
        assert_success(accept, 201)
    else:
        assert_success(call(client, admin, "DELETE", f"{SUGGESTIONS}/{suggestion_id}"), 200)
    method, path, body = ACTIONS[action]
    url = SUGGESTIONS + path.format(id=suggestion_id)

    assert_refused(lambda: call(client, admin, method, url, body), 404)


@pytest.mark.parametrize("action", list(ACTIONS))
def test_another_isps_admin_sees_none_of_the_suggestions(
    client, other_admin, suggested, assert_refused, action
):
    method, path, body = ACTIONS[action]
    url = SUGGESTIONS + path.format(id=suggested[0])

    if action == "list":
        shown = assert_success(call(client, other_admin, method, url), 200)
        assert (shown["data"], shown["meta"]["total"]) == ([], 0)
    else:
        assert_refused(lambda: call(client, other_admin, method, url, body), 404)

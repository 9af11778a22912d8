"""Outage minutes: who an incident took out of service, from when to when, for how many minutes
(GET /api/v1/incidents/{id}/impact, a page at a time or every row as CSV), and one subscriber's
outages in a period (GET /api/v1/subscribers/{id}/outages), where overlapping incidents count
once. Staff see their branch's subscribers only; another ISP's are not there at all."""

import csv
import io
from datetime import timedelta

import pytest
from support.client import assert_success, call, get
from support.database import as_utc, at, now, stamp
from support.urls import SUBSCRIBERS, ticket_url

from tickets_service.models import AffectedSubscriber, Ticket

INCIDENTS = "/api/v1/incidents"
IMPACT_KEYS = ["subscriber_id", "external_id", "name", "from", "to", "minutes"]
OUTAGE_KEYS = ["incident_id", "title", "from", "to", "minutes"]


@pytest.fixture
def ago():
    """ago(minutes) -> a timestamp that many minutes before the test began, as the API writes
    one: made from one moment, any two differ by whole minutes exactly."""
    base = now()
    return lambda minutes: stamp(base - timedelta(minutes=minutes))


@pytest.fixture
def network(client, admin):
    """site:s1 > node:n1 > service:svc1 in ISP 1."""
    tree = [("site", "s1", None), ("node", "n1", "site:s1"), ("service", "svc1", "node:n1")]
    for kind, external_id, parent in tree:
        body = {"name": f"{kind} {external_id}"}
        if parent:
            body["parent"] = dict(zip(("kind", "external_id"), parent.split(":"), strict=True))
        url = f"/api/v1/network/{kind}/{external_id}"
        assert_success(call(client, admin, "PUT", url, body), 201)


@pytest.fixture
def serve(client, admin, network, make_subscriber):
    """serve(name, branch_id=1) -> a subscriber of ISP 1 served by service:svc1, its external
    id crm-<n>."""
    made = iter(range(1, 1000))

    def factory(name: str = "Ann Lee", branch_id: int = 1) -> int:
        subscriber_id = make_subscriber(branch_id=branch_id, name=name)
        body = {"external_id": f"crm-{next(made)}"}
        body["network"] = [{"kind": "service", "external_id": "svc1"}]
        assert_success(call(client, admin, "PUT", f"{SUBSCRIBERS}/{subscriber_id}", body), 200)
        return subscriber_id

    return factory


def outage(client, admin, starts_at: str, restored_at: str | None, link="node:n1", title="Cut"):
    """An incident opened at `starts_at` and resolved with `restored_at` (None: still open);
    its id."""
    kind, external_id = link.split(":")
    body = {"title": title, "description": "No light", "priority": 3, "starts_at": starts_at}
    body |= {"links": [{"kind": kind, "external_id": external_id}], "public_message": "On it."}
    response = call(client, admin, "POST", INCIDENTS, body)
    incident_id = assert_success(response, 201, "Incident opened successfully")["data"]["id"]
    if restored_at is not None:
        body = {"status": 2, "restored_at": restored_at}
        response = call(client, admin, "PUT", ticket_url(incident_id, "/status"), body)
        assert_success(response, 200)
    return incident_id


def impact(client, account, incident_id: int, **query) -> dict:
    return assert_success(get(client, account, f"{INCIDENTS}/{incident_id}/impact", **query), 200)


def impact_csv(client, account, incident_id: int, **query) -> list[list[str]]:
    url = f"{INCIDENTS}/{incident_id}/impact"
    response = call(client, account, "GET", url, query=query, headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def span(begins: str, ends: str | None, minutes: int) -> dict:
    return {"from": begins, "to": ends, "minutes": minutes}


def outages(client, account, subscriber_id: int, **query):
    return get(client, account, f"{SUBSCRIBERS}/{subscriber_id}/outages", **query)


# --- An incident's impact -----------------------------------------------------------------------


def test_resolving_at_restored_at_ends_each_outage_then(client, ago, admin, serve, rows):
    ann = serve("Ann Lee")
    incident_id = outage(client, admin, ago(90), ago(30))

    body = impact(client, admin, incident_id)

    assert [list(row) for row in body["data"]] == [IMPACT_KEYS]
    assert body["data"] == [
        {
            "subscriber_id": ann,
            "external_id": "crm-1",
            "name": "Ann Lee",
            "from": ago(90),
            "to": ago(30),
            "minutes": 60,
        }
    ]
    [stored] = rows(AffectedSubscriber)
    assert (stamp(stored["affected_from"]), stamp(stored["affected_until"])) == (ago(90), ago(30))


def test_an_open_incidents_impact_runs_until_now(client, ago, admin, serve):
    serve()
    incident_id = outage(client, admin, ago(45), None)

    [row] = impact(client, admin, incident_id)["data"]

    assert (row["from"], row["to"], row["minutes"]) == (ago(45), None, 45)


def test_the_impact_comes_a_page_at_a_time(client, ago, admin, serve):
    subscribers = [serve(f"Subscriber {n}") for n in range(3)]
    incident_id = outage(client, admin, ago(90), ago(30))

    first = impact(client, admin, incident_id, per_page=2)
    second = impact(client, admin, incident_id, per_page=2, page=2)

    assert [row["subscriber_id"] for row in first["data"] + second["data"]] == subscribers
    assert (first["meta"]["total"], second["meta"]["total"]) == (3, 3)


@pytest.mark.parametrize("sign", ["=", "+", "-", "@"])
def test_as_csv_every_row_comes_and_a_formula_is_defused(client, ago, admin, serve, sign):
    names = ["Ann Lee", f'{sign}HYPERLINK("http://x.test")', "Bob, Jr."]
    subscribers = [serve(name) for name in names]
    incident_id = outage(client, admin, ago(90), ago(30))

    table = impact_csv(client, admin, incident_id, per_page=1)  # every row, whatever the page

    assert table[0] == IMPACT_KEYS
    assert table[1:] == [
        [str(s), f"crm-{n}", name if n != 2 else "'" + name, ago(90), ago(30), "60"]
        for n, (s, name) in enumerate(zip(subscribers, names, strict=True), start=1)
    ]


@pytest.mark.parametrize("answer", ["json", "csv"])
def test_staff_see_only_their_branchs_subscribers_in_the_impact(
    client, ago, admin, staff, serve, answer
):
    ann, _bob = serve("Ann Lee", branch_id=1), serve("Bob Roe", branch_id=2)
    incident_id = outage(client, admin, ago(90), ago(30))
    assert impact(client, admin, incident_id)["meta"]["total"] == 2

    if answer == "json":
        body = impact(client, staff, incident_id)
        assert ([row["subscriber_id"] for row in body["data"]], body["meta"]["total"]) == ([ann], 1)
    else:
        assert [row[0] for row in impact_csv(client, staff, incident_id)[1:]] == [str(ann)]


# --- A subscriber's outages ---------------------------------------------------------------------


@pytest.fixture
def overlapping(client, ago, admin, serve) -> tuple[int, int, int]:
    """A subscriber, out from 90 to 30 minutes ago (node:n1) and from 60 to 10 minutes ago
    (service:svc1): the subscriber and the two incidents."""
    ann = serve()
    first = outage(client, admin, ago(90), ago(30), link="node:n1", title="OLT down")
    second = outage(client, admin, ago(60), ago(10), link="service:svc1", title="VLAN broken")
    return ann, first, second


def test_overlapping_incidents_count_once(client, ago, admin, overlapping):
    ann, first, second = overlapping

    body = assert_success(outages(client, admin, ann), 200)

    assert list(body["data"]) == ["outages", "total_minutes"]
    assert [list(item) for item in body["data"]["outages"]] == [OUTAGE_KEYS] * 2
    assert body["data"] == {
        "outages": [
            {"incident_id": first, "title": "OLT down"} | span(ago(90), ago(30), 60),
            {"incident_id": second, "title": "VLAN broken"} | span(ago(60), ago(10), 50),
        ],
        "total_minutes": 80,
    }


# The overlapping outages in a period (from, to: minutes ago), each cut to it: which incident
# (0: 90 -> 30, 1: 60 -> 10), from, to ("end": the period's, the moment just past `to`, as a
# query's upper bound always is) and minutes; and the minutes out in the period.
@pytest.mark.parametrize(
    ("period", "cut", "total"),
    [
        ((80, 20), [(0, 80, 30, 50), (1, 60, "end", 40)], 60),
        ((120, 40), [(0, 90, "end", 50), (1, 60, "end", 20)], 50),
        ((25, 15), [(1, 25, "end", 10)], 10),
        ((35, 5), [(0, 35, 30, 5), (1, 35, 10, 25)], 25),
        ((200, 100), [], 0),
    ],
)
def test_the_period_cuts_the_outages(client, ago, admin, overlapping, period, cut, total):
    ann, *incidents = overlapping
    start, end = period

    query = {"from": ago(start), "to": ago(end)}
    body = assert_success(outages(client, admin, ann, **query), 200)

    just_past_end = stamp(at(ago(end)) + timedelta(seconds=1))
    expected = [
        (incidents[n], ago(f), just_past_end if t == "end" else ago(t), m) for n, f, t, m in cut
    ]
    shown = body["data"]["outages"]
    assert [(o["incident_id"], o["from"], o["to"], o["minutes"]) for o in shown] == expected
    assert body["data"]["total_minutes"] == total


def test_an_open_incident_counts_up_to_now(client, ago, admin, serve):
    ann = serve()
    incident_id = outage(client, admin, ago(45), None)

    body = assert_success(outages(client, admin, ann), 200)

    [item] = body["data"]["outages"]
    assert (item["incident_id"], item["to"], item["minutes"]) == (incident_id, None, 45)
    assert body["data"]["total_minutes"] == 45


# `to` takes its whole second (as the list's created_to does): from == to is that one second.
@pytest.mark.parametrize(("start", "end"), [(10, 30), (10, 11)])
def test_a_period_that_does_not_end_after_it_starts_is_422(
    client, ago, admin, serve, assert_refused, start, end
):
    ann = serve()

    query = {"from": ago(start), "to": ago(end)}
    assert_refused(lambda: outages(client, admin, ann, **query), 422, "to")


@pytest.mark.parametrize("caller", ["staff_branch2", "other_admin", "other_staff"])
def test_a_subscriber_out_of_reach_is_404(request, client, overlapping, assert_refused, caller):
    who = request.getfixturevalue(caller)

    assert_refused(lambda: outages(client, who, overlapping[0]), 404)


def test_a_subscriber_served_below_an_open_incident_later_is_affected_from_then(
    client, admin, network, make_subscriber, make_ticket, fetch, rows
):
    incident_id = outage(client, admin, stamp(now() - timedelta(minutes=30)), None)
    late = make_subscriber(name="Late Comer")
    ticket_id = make_ticket(admin, subscriber_id=late)
    served = {"network": [{"kind": "service", "external_id": "svc1"}]}

    assert_success(call(client, admin, "PUT", f"{SUBSCRIBERS}/{late}", served), 200)
    [row] = [r for r in rows(AffectedSubscriber) if r["subscriber_id"] == late]
    assert (row["incident_id"], row["affected_until"]) == (incident_id, None)
    assert as_utc(row["affected_from"]) >= now() - timedelta(minutes=1)  # then, not its start
    assert fetch(Ticket, ticket_id)["parent_id"] == incident_id

    moved = {"network": []}
    assert_success(call(client, admin, "PUT", f"{SUBSCRIBERS}/{late}", moved), 200)
    [row] = [r for r in rows(AffectedSubscriber) if r["subscriber_id"] == late]
    assert row["affected_until"] is not None

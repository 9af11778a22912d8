"""Admins register where their ISP's ticket events go. The secret is shown once; only https to
public hosts, or http/https to private, loopback and link-local hosts when WEBHOOK_ALLOW_PRIVATE
is on, are accepted. Staff's 403 and another ISP's 404 on every webhook route are the catalogue's
(test_tenancy.py)."""

import uuid

import pytest
from support.catalogue import cases
from support.client import assert_success, call, create_ticket
from support.database import read_rows
from support.urls import DELIVERIES, WEBHOOKS

from tickets_service.models import WebhookDelivery, WebhookEndpoint
from tickets_service.webhooks import worker
from tickets_service.webhooks.events import EVENT_TYPES

PUBLIC = "https://93.184.216.34/hooks/tickets"
EVENTS = ["ticket.created", "ticket.status_changed"]


@pytest.fixture(params=[False, True], ids=["default", "allow private"])
def any_client(request, client, make_app):
    """A client of the app as configured, then of one with WEBHOOK_ALLOW_PRIVATE on."""
    return make_app(WEBHOOK_ALLOW_PRIVATE=True).test_client() if request.param else client


def register(client, admin, url=PUBLIC, events=EVENTS):
    return call(client, admin, "POST", WEBHOOKS, {"url": url, "events": events})


@pytest.fixture
def endpoint_with_delivery(app, client, admin):
    """One of ISP 1's endpoints, registered through the API, with one delivery; its id."""
    created = assert_success(register(client, admin), 201)["data"]
    create_ticket(client, admin)
    with app.app_context():
        assert worker.dispatch() == 1
    assert len(read_rows(app, WebhookDelivery)) == 1
    return created["id"]


# --- Registering, listing, the secret ---------------------------------------------------------


def test_an_admin_registers_an_endpoint_and_is_shown_its_secret(app, client, admin):
    response = register(client, admin)

    data = assert_success(response, 201, "Webhook created successfully")["data"]
    assert set(data) == {"id", "url", "events", "created_at", "secret"}
    assert (data["url"], data["events"]) == (PUBLIC, EVENTS)
    assert data["secret"].startswith("whsec_") and len(data["secret"]) >= 32
    (row,) = read_rows(app, WebhookEndpoint)
    assert (row["id"], row["isp_id"], row["secret"]) == (data["id"], admin.isp_id, data["secret"])
    assert row["created_by_id"] == admin.id


def test_each_endpoint_gets_its_own_secret(client, admin):
    first = assert_success(register(client, admin), 201)["data"]["secret"]
    second = assert_success(register(client, admin), 201)["data"]["secret"]

    assert first != second


def test_the_list_never_shows_a_secret(client, admin, endpoint_with_delivery):
    secret = assert_success(register(client, admin, url=PUBLIC + "/2"), 201)["data"]["secret"]

    for url in (WEBHOOKS, f"{WEBHOOKS}/{endpoint_with_delivery}/deliveries"):
        response = call(client, admin, "GET", url)
        assert_success(response, 200)
        assert secret not in response.get_data(as_text=True)
        assert "secret" not in response.get_data(as_text=True)
    listed = call(client, admin, "GET", WEBHOOKS).get_json()
    assert [set(item) for item in listed["data"]] == [{"id", "url", "events", "created_at"}] * 2
    assert listed["meta"]["total"] == 2


def test_the_list_shows_only_the_callers_isp(client, admin, other_admin):
    mine = assert_success(register(client, admin), 201)["data"]["id"]
    assert_success(register(client, other_admin, url=PUBLIC + "/other"), 201)

    body = assert_success(call(client, admin, "GET", WEBHOOKS), 200)

    assert [item["id"] for item in body["data"]] == [mine]


def test_an_admin_deletes_an_endpoint_with_its_deliveries(
    app, client, admin, assert_refused, endpoint_with_delivery
):
    response = call(client, admin, "DELETE", f"{WEBHOOKS}/{endpoint_with_delivery}")

    assert_success(response, 200, "Webhook deleted successfully")
    assert read_rows(app, WebhookEndpoint) == read_rows(app, WebhookDelivery) == []
    url = f"{WEBHOOKS}/{endpoint_with_delivery}/deliveries"
    assert_refused(lambda: call(client, admin, "GET", url), 404)


@pytest.mark.parametrize(
    "url",
    [
        f"{WEBHOOKS}/999999/deliveries",
        f"{DELIVERIES}/{uuid.UUID(int=7)}/redeliver",
        f"{DELIVERIES}/not-a-delivery-id/redeliver",
    ],
    ids=["unknown webhook", "unknown delivery", "not a uuid"],
)
def test_an_unknown_endpoint_or_delivery_is_404(client, admin, assert_refused, url):
    method = "POST" if "redeliver" in url else "GET"
    assert_refused(lambda: call(client, admin, method, url), 404)


# --- Where events may go ----------------------------------------------------------------------

ALWAYS_OK = ["https://93.184.216.34/hook", "https://example.com/hook", "HTTPS://93.184.216.34/h"]
ALWAYS_OK += ["https://[64:ff9b::5db8:d822]/hook"]  # NAT64 to 93.184.216.34, a public host
# IPv6 forms that carry a public IPv4 address are judged by it.
ALWAYS_OK += [
    "https://[::ffff:93.184.216.34]/hook",  # IPv4-mapped
    "https://[64:ff9b:1::5db8:d822]/hook",  # local-use NAT64 (RFC 8215), /96 layout
    "https://[2002:5db8:d822::1]/hook",  # 6to4
]
PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "https://127.0.0.1/hook",
    "http://10.1.2.3/hook",
    "https://10.200.0.9:8443/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://192.168.1.10/hook",
    "http://172.16.5.4/hook",
    "http://localhost:8000/hook",
    "https://[fe80::1]/hook",
    "https://[fd00::5]/hook",
    # IPv6 addresses that carry an internal IPv4 one to its host.
    "https://[::ffff:127.0.0.1]/hook",
    "https://[64:ff9b::7f00:1]/hook",  # NAT64 to 127.0.0.1
    "https://[64:ff9b::a01:203]/hook",  # NAT64 to 10.1.2.3
    "https://[2002:7f00:1::]/hook",  # 6to4 from 127.0.0.1
    "https://[2002:c0a8:10a::1]/hook",  # 6to4 from 192.168.1.10
    "https://[::127.0.0.1]/hook",  # IPv4-compatible
    "https://[::10.1.2.3]/hook",
    "https://[::ffff:0:7f00:1]/hook",  # SIIT (RFC 2765) to 127.0.0.1
    "https://[::ffff:0:a9fe:a9fe]/hook",  # SIIT to the metadata service
    "https://[64:ff9b:1::a9fe:a9fe]/hook",  # local-use NAT64 to 169.254.169.254
    "https://[64:ff9b:1:a9fe:a9:fe00::]/hook",  # the same, /48 layout
    "https://[64:ff9b:1:7f:0:100::]/hook",  # local-use NAT64 /56 layout to 127.0.0.1
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
    "https://[2001:0:a01:203:8000:63bf:a2c7:d8bb]/hook",  # Teredo, server 10.1.2.3
]
SHARED = ["https://100.64.0.1/hook", "https://100.127.255.254/hook"]  # an ISP's CGNAT space
NEVER = [
    "http://93.184.216.34/hook",  # http to a public host
    "http://example.com/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1/",
    "https:///hook",  # no host
    "https://",
    "not a url",
    "https://user:secret@example.com/hook",
    "https://user@example.com/hook",
    "http://0.0.0.0/hook",
    "https://224.0.0.1/hook",
]
INVALID = [
    "https://example.com:99999/hook",
    "https://example.com:0/hook",
    "https://example.com:port/hook",
    "https://exa mple.com/hook",
    # URLs the parser cannot take apart (were a 500).
    "https://[::1/",
    "https://[abc]/",
    "https://]/",
    "https://[::1]]/hook",
    "https://[]/hook",
    "https://[10.0.0.1]/hook",  # brackets hold IPv6 addresses only
    "https://[::1%25eth0]/hook",
    "http://[::ffff:127.0.0.1/hook",
]


@pytest.mark.parametrize("url", ALWAYS_OK)
def test_https_to_a_public_host_is_accepted(any_client, admin, url):
    assert_success(register(any_client, admin, url=url), 201)


@pytest.mark.parametrize("url", [*PRIVATE, *SHARED])
def test_a_private_loopback_link_local_or_shared_host_is_422_by_default(
    client, admin, assert_refused, url
):
    assert_refused(lambda: register(client, admin, url=url), 422, "url")


@pytest.mark.parametrize("url", [*PRIVATE, "http://[::1]:8080/hook"])
def test_a_private_loopback_or_link_local_host_is_accepted_when_allowed(app, make_app, admin, url):
    allowed = make_app(WEBHOOK_ALLOW_PRIVATE=True).test_client()
    data = assert_success(register(allowed, admin, url=url), 201)["data"]

    assert [row["url"] for row in read_rows(app, WebhookEndpoint)] == [data["url"]] == [url]


@pytest.mark.parametrize("url", [*NEVER, *INVALID])
def test_other_urls_are_422_whatever_the_setting(any_client, admin, assert_refused, url):
    assert_refused(lambda: register(any_client, admin, url=url), 422, "url")


BAD_REGISTRATIONS = {
    "unknown event": ({"url": PUBLIC, "events": ["ticket.exploded"]}, "events.0"),
    "no events": ({"url": PUBLIC, "events": []}, "events"),
    "duplicate event": ({"url": PUBLIC, "events": ["ticket.created"] * 2}, "events"),
    "events not a list": ({"url": PUBLIC, "events": "ticket.created"}, "events"),
    "too many events": ({"url": PUBLIC, "events": [*EVENT_TYPES, "ticket.created"]}, "events"),
    "events missing": ({"url": PUBLIC}, "events"),
    "url missing": ({"events": EVENTS}, "url"),
    "url too long": ({"url": "https://example.com/" + "a" * 2048, "events": EVENTS}, "url"),
    "secret chosen by client": ({"url": PUBLIC, "events": EVENTS, "secret": "mine"}, "secret"),
}


@pytest.mark.parametrize("case", cases(BAD_REGISTRATIONS))
def test_a_bad_registration_is_422_on_that_field(client, admin, assert_refused, case):
    body, field = case
    assert_refused(lambda: call(client, admin, "POST", WEBHOOKS, body), 422, field)


def test_every_event_type_can_be_subscribed_to(client, admin):
    data = assert_success(register(client, admin, events=EVENT_TYPES), 201)["data"]

    names = ("created", "updated", "status_changed", "assigned", "replied", "deleted", "restored")
    names += ("linked", "unlinked", "sla_warning", "sla_breached")
    incidents = ("incident.opened", "incident.updated", "incident.resolved", "incident.suggested")
    expected = sorted([*(f"ticket.{n}" for n in names), *incidents, "subscriber.outage"])
    assert sorted(data["events"]) == sorted(EVENT_TYPES) == expected

"""A replayed Idempotency-Key answers only while the caller may still do what the request asks,
and never shows a secret once the role or the object it belonged to is gone.

The probe's finding: an admin created a webhook with a key, was demoted, and sent the same
request again as staff: the replay answered 201 with the signing secret (without the key, 403).
"""

from dataclasses import replace

import pytest
from support.client import PASSWORD, assert_success, call, create_ticket
from support.database import read_rows, set_columns
from support.urls import DELIVERIES, LOGIN, SUBSCRIBERS, TICKETS, USERS, WEBHOOKS, ticket_url

from tickets_service.models import Ticket, User, WebhookDelivery
from tickets_service.webhooks import worker

HEADER = "Idempotency-Key"
HOOK = {"url": "https://93.184.216.34/hook", "events": ["ticket.created"]}
USER = {"name": "Sam", "email": "sam@example.test", "role": "staff", "password": "pw-12345678"}


def keyed(client, account, method, url, body=None, key="the-key"):
    return call(client, account, method, url, body, headers={HEADER: key})


def changed(client, app, account, **columns):
    """`account` with these columns changed (as another admin would), logged in again."""
    bumped = User.token_version + 1
    set_columns(app, User, User.id == account.id, **columns, token_version=bumped)
    login = client.post(LOGIN, json={"email": account.email, "password": PASSWORD})
    token = assert_success(login, 200)["data"]["access_token"]
    return replace(account, **columns, headers={"Authorization": f"Bearer {token}"})


def create_refused_without_secret(assert_refused, client, account, status: int) -> None:
    """The keyed webhook create, replayed by `account`: `status`, nothing changed, no secret."""
    response = assert_refused(lambda: keyed(client, account, "POST", WEBHOOKS, HOOK), status)
    assert "whsec_" not in response.get_data(as_text=True)
    assert "Idempotent-Replayed" not in response.headers


def redelivered(app, client, admin) -> tuple[int, str]:
    """A webhook, one delivery of it, and a keyed redelivery: the webhook's id, the URL."""
    endpoint = assert_success(call(client, admin, "POST", WEBHOOKS, HOOK), 201)["data"]
    create_ticket(client, admin)
    with app.app_context():
        worker.dispatch()
    (original,) = read_rows(app, WebhookDelivery)
    redeliver = f"{DELIVERIES}/{original['delivery_id']}/redeliver"
    assert_success(keyed(client, admin, "POST", redeliver), 201)
    return endpoint["id"], redeliver


def test_an_admin_replaying_their_own_create_still_gets_the_answer(client, admin):
    """The refusals below are the rechecks', not replays broken."""
    first = assert_success(keyed(client, admin, "POST", WEBHOOKS, HOOK), 201)
    again = keyed(client, admin, "POST", WEBHOOKS, HOOK)
    assert assert_success(again, 201) == first
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_demoted_admin_replaying_a_webhook_create_gets_403_and_no_secret(
    app, client, admin, assert_refused
):
    assert_success(keyed(client, admin, "POST", WEBHOOKS, HOOK), 201)
    staff = changed(client, app, admin, role="staff")

    create_refused_without_secret(assert_refused, client, staff, 403)


def test_a_webhook_create_replayed_after_its_endpoint_was_deleted_is_410(
    client, admin, assert_refused
):
    created = assert_success(keyed(client, admin, "POST", WEBHOOKS, HOOK), 201)["data"]
    assert_success(call(client, admin, "DELETE", f"{WEBHOOKS}/{created['id']}"), 200)

    create_refused_without_secret(assert_refused, client, admin, 410)


@pytest.mark.parametrize(("url", "body"), [(SUBSCRIBERS, {"name": "Ana Gomez"}), (USERS, USER)])
def test_a_demoted_admin_replaying_an_admins_create_gets_403(
    app, client, admin, assert_refused, url, body
):
    assert_success(keyed(client, admin, "POST", url, body), 201)
    staff = changed(client, app, admin, role="staff")

    assert_refused(lambda: keyed(client, staff, "POST", url, body), 403)


def test_a_reply_replayed_once_its_ticket_is_out_of_reach_is_404(
    app, client, staff, assert_refused
):
    ticket_id = create_ticket(client, staff)
    url, reply = ticket_url(ticket_id, "/reply"), {"message": "On our way."}
    assert_success(keyed(client, staff, "POST", url, reply), 201)
    set_columns(app, Ticket, Ticket.id == ticket_id, branch_id=staff.branch_id + 1)

    assert_refused(lambda: keyed(client, staff, "POST", url, reply), 404)


def test_a_restore_replayed_by_a_demoted_admin_is_403(app, client, admin, assert_refused):
    ticket_id = create_ticket(client, admin)
    assert_success(call(client, admin, "DELETE", ticket_url(ticket_id)), 200)
    assert_success(keyed(client, admin, "POST", ticket_url(ticket_id, "/restore")), 200)
    staff = changed(client, app, admin, role="staff")

    assert_refused(lambda: keyed(client, staff, "POST", ticket_url(ticket_id, "/restore")), 403)


def test_a_redelivery_replayed_after_its_endpoint_was_deleted_is_404(
    app, client, admin, assert_refused
):
    webhook_id, redeliver = redelivered(app, client, admin)
    assert_success(call(client, admin, "DELETE", f"{WEBHOOKS}/{webhook_id}"), 200)

    assert_refused(lambda: keyed(client, admin, "POST", redeliver), 404)


def test_a_redelivery_replayed_by_a_demoted_admin_is_403(app, client, admin, assert_refused):
    _webhook_id, redeliver = redelivered(app, client, admin)
    staff = changed(client, app, admin, role="staff")

    assert_refused(lambda: keyed(client, staff, "POST", redeliver), 403)


def test_a_create_replayed_to_a_branch_now_out_of_reach_is_403(app, client, staff, assert_refused):
    """The query and body of a replay are checked as the first request's were: a staff user
    moved to another branch (and logged in again) no longer reaches the branch it named."""
    body = {"title": "Fibre cut", "description": "Road works", "priority": 3, "branch_id": 1}
    assert_success(keyed(client, staff, "POST", TICKETS, body), 201)
    moved = changed(client, app, staff, branch_id=2)

    assert_refused(lambda: keyed(client, moved, "POST", TICKETS, body), 403)

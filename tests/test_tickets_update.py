"""Update Ticket, PUT /api/v1/tickets/{id}: only the fields sent change, null unlinks the
subscriber, and every change (an update, a status, a reply) advances updated_at."""

from datetime import timedelta

import pytest
from support.catalogue import REPLY, STATUS, UPDATE, World
from support.database import as_utc, without

from tickets_service.models import Ticket

NEW_SUBSCRIBER = object()  # stands for a second subscriber created by the test


UPDATES = {  # what is sent, and what is stored
    "title": ({"title": "Updated Title"}, {"title": "Updated Title"}),
    "title-trimmed": ({"title": "  Updated Title  "}, {"title": "Updated Title"}),
    "description": ({"description": "Still down"}, {"description": "Still down"}),
    "priority-3": ({"priority": 3}, {"priority": 3}),
    "priority-1": ({"priority": 1}, {"priority": 1}),
    "another-subscriber": ({"subscriber_id": NEW_SUBSCRIBER}, {"subscriber_id": NEW_SUBSCRIBER}),
    "null-unlinks-the-subscriber": ({"subscriber_id": None}, {"subscriber_id": None}),
    "spec-example": (
        {"title": "Updated Title", "priority": 3},
        {"title": "Updated Title", "priority": 3},
    ),
    "longest-title-and-description": (
        {"title": "\t" + "x" * 255 + " ", "description": "d" * 10_000},
        {"title": "x" * 255, "description": "d" * 10_000},
    ),
}


@pytest.mark.parametrize(("sent", "stored"), UPDATES.values(), ids=UPDATES)
def test_an_update_changes_only_the_fields_sent(
    send, staff, make_subscriber, make_ticket, fetch, sent, stored
):
    ticket_id = make_ticket(staff, subscriber_id=make_subscriber(name="First"))
    new_subscriber = make_subscriber(name="Second")
    sent = {k: new_subscriber if v is NEW_SUBSCRIBER else v for k, v in sent.items()}
    stored = {k: new_subscriber if v is NEW_SUBSCRIBER else v for k, v in stored.items()}
    before = fetch(Ticket, ticket_id)

    response = send(UPDATE, World(staff, ticket_id), sent)

    assert response.status_code == 200
    assert response.get_json() == {"success": True, "message": "Ticket updated successfully"}
    after = fetch(Ticket, ticket_id)
    changed = ("updated_at", "version")
    assert without(after, *changed) == {**without(before, *changed), **stored}
    assert after["version"] == before["version"] + 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty-object"),
        pytest.param({"isp_id": 1, "branch_id": 1}, id="scope-only"),
        pytest.param({"status": 2}, id="status-is-not-an-update-field"),
    ],
)
def test_an_update_without_any_ticket_field_is_422(send, world, assert_refused, body):
    if "isp_id" in body:
        body = {**body, "user_id": world.caller.id}
    assert_refused(lambda: send(UPDATE, world, body), 422)


@pytest.mark.parametrize("endpoint", [UPDATE, STATUS, REPLY], ids=str)
def test_every_change_advances_updated_at_and_keeps_created_at(
    send, staff, make_ticket, fetch, assert_took_effect, endpoint
):
    world = World(staff, make_ticket(staff, age=timedelta(days=1)))
    before = fetch(Ticket, world.ticket_id)

    assert_took_effect(endpoint, world, send(endpoint, world))

    after = fetch(Ticket, world.ticket_id)
    assert as_utc(after["updated_at"]) > as_utc(before["updated_at"])
    assert as_utc(after["created_at"]) == as_utc(before["created_at"])

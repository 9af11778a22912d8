"""Reply to Ticket, POST /api/v1/tickets/{id}/reply: 201; the reply is the caller's, and Fetch
Ticket shows it last, under the caller's name."""

from datetime import timedelta

import pytest
from support.catalogue import FETCH, REPLY, World
from support.client import assert_success

from tickets_service.models import TicketReply


@pytest.mark.parametrize("caller", ["admin", "staff"])
def test_a_reply_answers_201_and_is_stored_as_the_callers(
    request, send, staff, make_ticket, rows, caller
):
    world = World(request.getfixturevalue(caller), make_ticket(staff))

    response = send(REPLY, world)

    assert response.status_code == 201
    assert response.get_json() == {"success": True, "message": "Reply added successfully"}
    [reply] = rows(TicketReply)
    assert (reply["ticket_id"], reply["user_id"]) == (world.ticket_id, world.caller.id)
    assert reply["message"] == "We are looking into this issue."


def test_a_reply_comes_last_in_fetch_ticket_under_the_callers_name(
    send, admin, staff, make_ticket, make_reply, rows
):
    ticket_id = make_ticket(staff, age=timedelta(days=1))
    make_reply(ticket_id, admin, age=timedelta(hours=1))

    assert send(REPLY, World(staff, ticket_id)).status_code == 201

    body = assert_success(send(FETCH, World(admin, ticket_id)), 200)
    newest = body["data"]["replies"][-1]
    assert newest["user_name"] == staff.name == "Staff One"
    assert newest["message"] == "We are looking into this issue."
    assert newest["id"] == rows(TicketReply)[-1]["id"]

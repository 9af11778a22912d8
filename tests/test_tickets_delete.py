"""Delete Ticket, DELETE /api/v1/tickets/{ticket}: soft, so the ticket disappears from every
endpoint while its row and replies stay. (Only admins may delete: see test_tenancy.)"""

import pytest
from support.catalogue import DELETE, LIST, PER_TICKET
from support.client import assert_success
from support.database import without

from tickets_service.models import Ticket, TicketReply


@pytest.fixture
def deleted(send, world, make_ticket, make_reply):
    """The world's ticket, with two replies, deleted; another live ticket beside it."""
    make_reply(world.ticket_id, world.caller)
    make_reply(world.ticket_id, world.caller)
    make_ticket(world.caller)
    return lambda: assert_success(send(DELETE, world), 200, "Ticket deleted successfully")


def test_a_deleted_ticket_keeps_its_row_and_replies(world, deleted, fetch, rows):
    before, replies = fetch(Ticket, world.ticket_id), rows(TicketReply)

    deleted()

    after = fetch(Ticket, world.ticket_id)
    assert (before["deleted_at"], after["deleted_at"] is not None) == (None, True)
    changed = ("deleted_at", "updated_at", "version")
    assert without(after, *changed) == without(before, *changed)
    assert rows(TicketReply) == replies
    assert len(replies) == 2


@pytest.mark.parametrize("endpoint", PER_TICKET, ids=str)
def test_a_deleted_ticket_is_404_on_every_per_ticket_endpoint(
    send, world, deleted, assert_refused, endpoint
):
    deleted()
    assert_refused(lambda: send(endpoint, world), 404)


def test_a_deleted_ticket_is_absent_from_the_list(send, world, deleted, rows):
    deleted()

    body = assert_success(send(LIST, world), 200)

    live = [row["id"] for row in rows(Ticket) if row["deleted_at"] is None]
    live = [ticket_id for ticket_id in live if ticket_id != world.target("incident")]
    [kept] = [ticket_id for ticket_id in live if ticket_id != world.ticket_id]
    assert [item["id"] for item in body["data"]] == [kept]
    assert body["meta"]["total"] == 1

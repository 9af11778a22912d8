"""Change Ticket Status, PUT /api/v1/tickets/{id}/status: each code is stored, nothing else
changes."""

import pytest
from support.catalogue import STATUS, World
from support.database import without

from tickets_service.models import Ticket


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_each_status_code_is_stored_and_nothing_else_changes(
    send, staff, make_ticket, fetch, status
):
    world = World(staff, make_ticket(staff, status=(status + 1) % 4))
    before = fetch(Ticket, world.ticket_id)

    response = send(STATUS, world, {**STATUS.body(world), "status": status})

    assert response.status_code == 200
    assert response.get_json() == {"success": True, "message": "Ticket status updated successfully"}
    after = fetch(Ticket, world.ticket_id)
    changed = ("updated_at", "version", "resolved_at", "closed_at")
    assert without(after, *changed) == {**without(before, *changed), "status": status}

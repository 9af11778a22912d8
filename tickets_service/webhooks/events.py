"""The events the API sends: which change to a ticket is which event, and what a delivery of one
carries. The catalogue is read by the schemas (which events an endpoint may ask for), the views
(redeliver) and the worker."""

import json
import uuid

from ..models import DeliveryStatus, HistoryAction, WebhookDelivery, as_json_value

# Each history action is an event, or internal (recorded, never sent); a test holds every
# action to one or the other, and the worker skips any it does not know rather than stop.
EVENTS = {
    HistoryAction.CREATED: "ticket.created",
    HistoryAction.UPDATED: "ticket.updated",
    HistoryAction.STATUS_CHANGED: "ticket.status_changed",
    HistoryAction.ASSIGNED: "ticket.assigned",
    HistoryAction.REPLIED: "ticket.replied",
    HistoryAction.NOTED: "ticket.replied",  # with internal: true
    HistoryAction.DELETED: "ticket.deleted",
    HistoryAction.RESTORED: "ticket.restored",
    HistoryAction.LINKED: "ticket.linked",
    HistoryAction.UNLINKED: "ticket.unlinked",
    HistoryAction.INCIDENT_OPENED: "incident.opened",
    HistoryAction.INCIDENT_UPDATED: "incident.updated",
    HistoryAction.INCIDENT_RESOLVED: "incident.resolved",
    HistoryAction.OUTAGE: "subscriber.outage",
    HistoryAction.INCIDENT_SUGGESTED: "incident.suggested",
    # The sweep's (desk.py): field is the deadline (response_due_at or due_at), new its time.
    HistoryAction.SLA_WARNING: "ticket.sla_warning",
    HistoryAction.SLA_BREACHED: "ticket.sla_breached",
}
# Events whose data is what their history entry's `new` holds (and who acted).
INCIDENT_EVENTS = frozenset(
    {
        *("incident.opened", "incident.updated", "incident.resolved", "incident.suggested"),
        "subscriber.outage",
    }
)
# The subscriber's links and the files on a ticket: in its history, not sent.
INTERNAL: frozenset[str] = frozenset(
    {
        HistoryAction.LINK_CREATED,
        HistoryAction.LINK_REVOKED,
        HistoryAction.ATTACHED,
        HistoryAction.ATTACHMENT_DELETED,
    }
)
EVENT_TYPES = sorted(set(EVENTS.values()))


def new_delivery(
    endpoint_id: int, history_id: int, event: str, now, redelivery: bool = False
) -> WebhookDelivery:
    """An event on its way to an endpoint, due now; its delivery id stays on every retry."""
    return WebhookDelivery(
        delivery_id=str(uuid.uuid4()),
        endpoint_id=endpoint_id,
        history_id=history_id,
        event=event,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        redelivery=redelivery,
    )


def payload(delivery_id: str, event: str, entry, isp_id: int) -> bytes:
    """The body a delivery sends: the event, and what its history entry (or a row with its
    columns) says."""
    # Who acted: a user, or an API key or the service itself (user_id null), as the API
    # shows them.
    # The subscriber, through their link, is shown like the service: no user.
    shown = entry.key_id is None and not entry.system and entry.author_name is None
    actor = {"user_id": entry.user_id if shown else None, "key_id": entry.key_id}
    data = {"field": entry.field, "old": entry.old, "new": entry.new, **actor}
    if event == "ticket.replied":
        data = {**actor, "internal": entry.action == HistoryAction.NOTED}
    elif event in INCIDENT_EVENTS:
        data = {**entry.new, **actor}
    body = {
        "delivery_id": delivery_id,
        "event": event,
        "occurred_at": as_json_value(entry.created_at),
        "isp_id": isp_id,
        "ticket_id": entry.ticket_id,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":")).encode()

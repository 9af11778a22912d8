"""The lost-update guard. Fetch Ticket sends a strong ETag that every change
bumps; If-None-Match answers 304; every ticket write honours If-Match (412, nothing changed,
when it is stale) and answers with the ticket's new ETag."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from support.client import assert_error, assert_success, call, create_ticket, scope_of
from support.database import database_state, history_of, read_rows, session
from support.urls import SUBSCRIBERS, USERS, ticket_url

from tickets_service.models import HistoryAction, Ticket

STRONG_ETAG = re.compile(r'^"[!#-~]+"$')  # quoted, no W/ prefix


# (method, suffix) of a ticket write -> the status and message it answers
ANSWERS = {
    ("PUT", ""): (200, "Ticket updated successfully"),
    ("PUT", "/status"): (200, "Ticket status updated successfully"),
    ("POST", "/reply"): (201, "Reply added successfully"),
    ("DELETE", ""): (200, "Ticket deleted successfully"),
    ("POST", "/restore"): (200, "Ticket restored successfully"),
}


@dataclass(frozen=True)
class Write:
    """One ticket write as an admin makes it, what it answers and what it records."""

    name: str
    method: str
    suffix: str
    action: str
    body: Callable = field(default=lambda admin: None)
    on_deleted: bool = False  # restore: the ticket must be deleted first

    @property
    def answer(self) -> tuple[int, str]:
        return ANSWERS[(self.method, self.suffix)]

    def send(self, client, admin, ticket_id, headers=None):
        body = self.body(admin)
        if body is not None:
            body = {**scope_of(admin), **body}
        url = ticket_url(ticket_id, self.suffix)
        return call(client, admin, self.method, url, body, headers=headers)


NOTE = {"message": "Line checked.", "internal": True}
WRITES = [
    Write("update", "PUT", "", HistoryAction.UPDATED, lambda a: {"title": "A new title"}),
    Write("assign", "PUT", "", HistoryAction.ASSIGNED, lambda a: {"assignee_id": a.id}),
    Write("status", "PUT", "/status", HistoryAction.STATUS_CHANGED, lambda a: {"status": 2}),
    Write("reply", "POST", "/reply", HistoryAction.REPLIED, lambda a: {"message": "We are on it."}),
    Write("note", "POST", "/reply", HistoryAction.NOTED, lambda a: NOTE),
    Write("delete", "DELETE", "", HistoryAction.DELETED),
    Write("restore", "POST", "/restore", HistoryAction.RESTORED, on_deleted=True),
]
DELETE = next(write for write in WRITES if write.name == "delete")
by_name = pytest.mark.parametrize("write", WRITES, ids=lambda write: write.name)


def fetch_etag(client, account, ticket_id) -> str:
    response = client.get(ticket_url(ticket_id), headers=account.headers)
    assert_success(response, 200)
    return response.headers["ETag"]


def current_etag(app, ticket_id) -> str:
    """The ETag of the ticket's row as it is now (also for a deleted ticket, which Fetch hides)."""
    (row,) = [row for row in read_rows(app, Ticket) if row["id"] == ticket_id]
    return f'"v{row["version"]}"'


def prepared_ticket(client, admin, write) -> tuple[int, str]:
    """A ticket made through the API, deleted when the write is a restore; with its ETag."""
    ticket_id = create_ticket(client, admin)
    tag = fetch_etag(client, admin, ticket_id)
    if write.on_deleted:
        response = DELETE.send(client, admin, ticket_id)
        assert_success(response, 200)
        tag = response.headers["ETag"]
    return ticket_id, tag


# --- Fetch: a strong ETag and 304 -------------------------------------------------------------


def test_fetch_ticket_sends_a_strong_etag(client, admin, make_ticket):
    ticket_id = make_ticket(admin)

    response = client.get(ticket_url(ticket_id), headers=admin.headers)

    assert_success(response, 200)
    assert STRONG_ETAG.fullmatch(response.headers["ETag"]), response.headers["ETag"]
    assert response.get_etag() == (response.headers["ETag"].strip('"'), False)


def test_if_none_match_with_the_current_etag_is_304_without_a_body(client, admin, make_ticket):
    ticket_id = make_ticket(admin)
    tag = fetch_etag(client, admin, ticket_id)

    response = client.get(ticket_url(ticket_id), headers={**admin.headers, "If-None-Match": tag})

    assert response.status_code == 304
    assert response.get_data() == b""
    assert response.headers["ETag"] == tag


@pytest.mark.parametrize(
    "held",
    [lambda tag: f"W/{tag}", lambda tag: f'"v0", {tag}', lambda tag: "*"],
    ids=["weak", "in-a-list", "any"],
)
def test_if_none_match_compares_weakly_and_takes_a_list(client, admin, make_ticket, held):
    """RFC 9110: If-None-Match uses the weak comparison, so W/"v1" holds "v1" too."""
    ticket_id = make_ticket(admin)
    tag = fetch_etag(client, admin, ticket_id)

    headers = {**admin.headers, "If-None-Match": held(tag)}
    response = client.get(ticket_url(ticket_id), headers=headers)

    assert (response.status_code, response.get_data()) == (304, b"")
    assert response.headers["ETag"] == tag


def test_if_none_match_with_an_older_etag_fetches_the_ticket(client, admin):
    ticket_id = create_ticket(client, admin)
    old = fetch_etag(client, admin, ticket_id)
    assert_success(call(client, admin, "PUT", ticket_url(ticket_id), {"title": "Renamed"}), 200)

    response = client.get(ticket_url(ticket_id), headers={**admin.headers, "If-None-Match": old})

    body = assert_success(response, 200)
    assert body["data"]["title"] == "Renamed"
    assert response.headers["ETag"] != old


def test_if_none_match_on_another_isps_ticket_is_404_without_an_etag(
    client, admin, other_admin, make_ticket
):
    ticket_id = make_ticket(admin)
    tag = fetch_etag(client, admin, ticket_id)

    headers = {**other_admin.headers, "If-None-Match": tag}
    response = client.get(ticket_url(ticket_id), headers=headers)

    assert_error(response, 404)
    assert "ETag" not in response.headers


# --- Every change bumps it, and every write answers with the new one ----------------------------


def test_create_answers_with_the_etag_that_fetch_then_shows(client, admin):
    body = {**scope_of(admin), "title": "Slow", "description": "Evenings", "priority": 1}
    response = call(client, admin, "POST", "/api/v1/tickets", body)

    ticket_id = assert_success(response, 201)["data"]["id"]
    assert STRONG_ETAG.fullmatch(response.headers["ETag"])
    assert response.headers["ETag"] == fetch_etag(client, admin, ticket_id)


@by_name
def test_a_write_bumps_the_etag_and_answers_with_the_new_one(app, client, admin, write):
    ticket_id, before = prepared_ticket(client, admin, write)

    response = write.send(client, admin, ticket_id)

    assert_success(response, *write.answer)
    after = response.headers["ETag"]
    assert STRONG_ETAG.fullmatch(after)
    assert after != before
    assert after == current_etag(app, ticket_id)
    if write.name != "delete":  # Fetch hides a deleted ticket
        assert after == fetch_etag(client, admin, ticket_id)


def test_a_deleted_tickets_etag_is_the_one_its_restore_must_match(client, admin):
    ticket_id = create_ticket(client, admin)
    before_delete = fetch_etag(client, admin, ticket_id)
    deleted = DELETE.send(client, admin, ticket_id)
    assert_success(deleted, 200)

    url = ticket_url(ticket_id, "/restore")
    stale = call(client, admin, "POST", url, headers={"If-Match": before_delete})
    restored = call(client, admin, "POST", url, headers={"If-Match": deleted.headers["ETag"]})

    assert_error(stale, 412)
    assert_success(restored, 200, "Ticket restored successfully")
    assert len({before_delete, deleted.headers["ETag"], restored.headers["ETag"]}) == 3
    assert restored.headers["ETag"] == fetch_etag(client, admin, ticket_id)


def test_a_reply_by_someone_else_changes_the_etag_a_reader_holds(client, admin, staff):
    ticket_id = create_ticket(client, admin)
    held = fetch_etag(client, admin, ticket_id)

    reply = {"message": "Called him."}
    assert_success(call(client, staff, "POST", ticket_url(ticket_id, "/reply"), reply), 201)

    response = client.get(ticket_url(ticket_id), headers={**admin.headers, "If-None-Match": held})
    assert_success(response, 200)
    assert [reply["message"] for reply in response.get_json()["data"]["replies"]] == ["Called him."]


# --- If-Match ---------------------------------------------------------------------------------


@by_name
def test_a_write_with_a_stale_if_match_is_412_with_the_current_etag_and_changes_nothing(
    app, client, admin, write
):
    ticket_id, stale = prepared_ticket(client, admin, write)
    # Someone else changes the ticket after it was read (a note works on a deleted one too).
    with session(app) as own:
        own.get(Ticket, ticket_id).priority = 3
        own.commit()
    current = current_etag(app, ticket_id)
    assert current != stale
    before = database_state(app)

    response = write.send(client, admin, ticket_id, headers={"If-Match": stale})

    assert_error(response, 412)
    assert response.headers["ETag"] == current
    assert database_state(app) == before


@by_name
def test_a_write_with_the_current_if_match_applies(app, client, admin, write):
    ticket_id, tag = prepared_ticket(client, admin, write)
    entries = len(history_of(app, ticket_id))

    response = write.send(client, admin, ticket_id, headers={"If-Match": tag})

    assert_success(response, *write.answer)
    assert response.headers["ETag"] == current_etag(app, ticket_id) != tag
    history = history_of(app, ticket_id)
    assert len(history) == entries + 1
    assert history[-1]["action"] == write.action
    assert history[-1]["user_id"] == admin.id


@pytest.mark.parametrize(
    ("if_match", "applies"),
    [
        ("*", True),
        ('"v0", {current}', True),
        ("W/{current}", False),  # If-Match compares strongly: a weak tag never matches
        ('"v0"', False),
        ('"not-a-version"', False),
    ],
)
def test_if_match_compares_strong_tags_and_accepts_a_list_or_star(
    app, client, admin, make_ticket, if_match, applies
):
    ticket_id = make_ticket(admin)
    current = fetch_etag(client, admin, ticket_id)
    before = database_state(app)

    url, tag = ticket_url(ticket_id, "/status"), {"If-Match": if_match.format(current=current)}
    response = call(client, admin, "PUT", url, {"status": 1}, headers=tag)

    if applies:
        assert_success(response, 200)
        assert read_rows(app, Ticket)[0]["status"] == 1
    else:
        assert_error(response, 412)
        assert response.headers["ETag"] == current
        assert database_state(app) == before


def test_of_two_editors_holding_one_etag_the_second_is_412_and_keeps_the_first_edit(
    app, client, admin, staff, make_ticket
):
    ticket_id = make_ticket(admin)
    held = fetch_etag(client, admin, ticket_id)
    assert held == fetch_etag(client, staff, ticket_id)

    url, tag = ticket_url(ticket_id), {"If-Match": held}
    first = call(client, staff, "PUT", url, {"title": "Staff's"}, headers=tag)
    second = call(client, admin, "PUT", url, {"title": "Admin's"}, headers=tag)

    assert_success(first, 200)
    assert_error(second, 412)
    assert second.headers["ETag"] == first.headers["ETag"]
    assert read_rows(app, Ticket)[0]["title"] == "Staff's"


def test_without_if_match_a_write_on_a_changed_ticket_still_applies(app, client, admin, staff):
    """The spec's clients send no If-Match: for them nothing changes."""
    ticket_id = create_ticket(client, admin)
    assert_success(call(client, staff, "PUT", ticket_url(ticket_id), {"title": "Staff's"}), 200)

    response = call(client, admin, "PUT", ticket_url(ticket_id), {"title": "Admin's"})

    assert_success(response, 200, "Ticket updated successfully")
    assert read_rows(app, Ticket)[0]["title"] == "Admin's"


def test_if_match_on_another_isps_ticket_is_404_without_an_etag(
    app, client, admin, other_admin, make_ticket
):
    ticket_id = make_ticket(admin)
    before = database_state(app)

    url, tag = ticket_url(ticket_id), {"If-Match": '"v1"'}
    response = call(client, other_admin, "PUT", url, {"title": "Mine"}, headers=tag)

    assert_error(response, 404)
    assert "ETag" not in response.headers
    assert database_state(app) == before


# --- What Fetch shows beyond the ticket's own row -----------------------------------------------


@pytest.mark.parametrize("renamed", ["subscriber", "assignee"])
def test_a_strong_etag_changes_when_what_fetch_shows_changes(
    client, admin, staff, make_subscriber, renamed
):
    subscriber_id = make_subscriber()
    ticket_id = create_ticket(client, admin, subscriber_id=subscriber_id, assignee_id=staff.id)
    held = fetch_etag(client, admin, ticket_id)
    url = f"{SUBSCRIBERS}/{subscriber_id}" if renamed == "subscriber" else f"{USERS}/{staff.id}"
    assert_success(call(client, admin, "PUT", url, {"name": "Renamed Person"}), 200)

    response = client.get(ticket_url(ticket_id), headers={**admin.headers, "If-None-Match": held})

    body = assert_success(response, 200)
    assert body["data"][f"{renamed}_name"] == "Renamed Person"
    assert response.headers["ETag"] != held


def test_a_strong_etag_changes_when_a_reply_author_is_renamed(client, admin, staff):
    ticket_id = create_ticket(client, admin)
    assert_success(
        call(client, staff, "POST", ticket_url(ticket_id, "/reply"), {"message": "hi"}), 201
    )
    held = fetch_etag(client, admin, ticket_id)
    assert_success(call(client, admin, "PUT", f"{USERS}/{staff.id}", {"name": "Renamed"}), 200)

    response = client.get(ticket_url(ticket_id), headers={**admin.headers, "If-None-Match": held})

    assert assert_success(response, 200)["data"]["replies"][0]["user_name"] == "Renamed"
    assert response.headers["ETag"] != held

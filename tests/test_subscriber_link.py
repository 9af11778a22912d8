"""The subscriber's link: staff make one for a ticket (POST .../subscriber-link: the token shown
once, only its SHA-256 kept, 30 days by default, at most a year) and revoke every link of it
(DELETE); the token opens, without a login, the public conversation (never a note, never a
person's name or email), takes the subscriber's replies and files, and serves the files of
public replies. Any token that opens nothing is the same 404; an expired one is 410. With rate
limits on, reads and writes are counted per token and per client address. (The page at
/t/{token} is test_public_page.py's.)"""

import hashlib
import io
import re
from datetime import timedelta

import pytest
from support.client import (
    assert_error,
    assert_success,
    call,
    get,
    reply,
    set_status,
)
from support.database import at, set_columns, stamp, without
from support.files import png, stored_files
from support.urls import ticket_url

from tickets_service.models import (
    Attachment,
    AttachmentBlob,
    IspSettings,
    SubscriberLink,
    Ticket,
    TicketHistory,
    TicketReply,
    utcnow,
)

# Attachments' bytes go to each test's own directory.
pytestmark = pytest.mark.usefixtures("attachment_dir")

PUBLIC = "/api/v1/public/tickets"
SETTINGS = "/api/v1/settings"
UNKNOWN = {"success": False, "message": "No such link."}
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
PUBLIC_FIELDS = ["id", "title", "description", "status", "created_at", "updated_at", "replies"]
PUBLIC_REPLY_FIELDS = ["id", "message", "author", "author_name", "created_at", "attachments"]
REF_FIELDS = ["id", "name", "size", "content_type"]
NOTE = "Internal: the customer owes us two months, be firm."


def later(**delta) -> str:
    return (utcnow() + timedelta(**delta)).strftime("%Y-%m-%d %H:%M:%S")


def link_url(ticket_id: int) -> str:
    return ticket_url(ticket_id, "/subscriber-link")


def make_link(client, account, ticket_id: int, **body) -> str:
    """A link made through the API: its token."""
    response = call(client, account, "POST", link_url(ticket_id), body)
    return assert_success(response, 201, "Subscriber link created")["data"]["token"]


def revoke(client, account, ticket_id: int):
    return call(client, account, "DELETE", link_url(ticket_id))


def read(client, token: str, suffix: str = "", **options):
    return client.get(f"{PUBLIC}/{token}{suffix}", **options)


def public_reply(client, token: str, message="It still drops every evening.", **extra):
    """The subscriber's reply; `environ_base` (the client's address) goes to the client."""
    options = {"environ_base": extra.pop("environ_base")} if "environ_base" in extra else {}
    return client.post(f"{PUBLIC}/{token}/reply", json={"message": message, **extra}, **options)


def files_form(*files: tuple[bytes, str]) -> dict:
    return {f"file{n}": (io.BytesIO(data), name) for n, (data, name) in enumerate(files)}


def public_upload(client, token: str, *files: tuple[bytes, str], **options):
    return client.post(
        f"{PUBLIC}/{token}/attachments",
        data=files_form(*files),
        content_type="multipart/form-data",
        **options,
    )


def staff_upload(client, account, ticket_id: int, *files: tuple[bytes, str]) -> list[dict]:
    response = client.post(
        ticket_url(ticket_id, "/attachments"),
        data=files_form(*files),
        content_type="multipart/form-data",
        headers=account.headers,
    )
    return assert_success(response, 201, "Files attached")["data"]


def uploaded_by_subscriber(client, token: str, *files: tuple[bytes, str]) -> list[dict]:
    return assert_success(public_upload(client, token, *files), 201, "Files attached")["data"]


def history(rows, ticket_id: int) -> list[tuple]:
    """(action, field, old, new, user_id, author_name) of a ticket's history, oldest first."""
    return [
        (row["action"], row["field"], row["old"], row["new"], row["user_id"], row["author_name"])
        for row in rows(TicketHistory)
        if row["ticket_id"] == ticket_id
    ]


def replies_of(rows, ticket_id: int) -> list[dict]:
    return [row for row in rows(TicketReply) if row["ticket_id"] == ticket_id]


def fetched(client, account, ticket_id: int) -> dict:
    return assert_success(get(client, account, ticket_url(ticket_id)), 200)["data"]


@pytest.fixture
def ticket(make_subscriber, make_ticket, staff) -> int:
    """A ticket of branch 1 made by Staff One, for the subscriber John Doe."""
    return make_ticket(staff, subscriber_id=make_subscriber(name="John Doe"))


@pytest.fixture
def token(client, staff, ticket) -> str:
    return make_link(client, staff, ticket)


# --- Making a link -------------------------------------------------------------------------


def test_a_link_is_made_with_a_43_character_token_kept_only_as_its_hash(
    client, staff, ticket, rows
):
    before = utcnow().replace(microsecond=0)
    response = call(client, staff, "POST", link_url(ticket), {})
    after = utcnow()

    data = assert_success(response, 201, "Subscriber link created")["data"]
    assert list(data) == ["token", "path", "expires_at"]
    token = data["token"]
    assert TOKEN.fullmatch(token)
    assert data["path"] == f"/t/{token}"
    expires = at(data["expires_at"])
    assert before + timedelta(days=30) <= expires <= after + timedelta(days=30)
    [row] = rows(SubscriberLink)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert (row["ticket_id"], row["isp_id"], row["created_by_id"], row["key_id"]) == (
        ticket,
        1,
        staff.id,
        None,
    )
    assert stamp(row["expires_at"]) == data["expires_at"]
    assert not [name for name, value in row.items() if token in str(value)]
    assert history(rows, ticket)[-1] == (
        "link_created",
        None,
        None,
        data["expires_at"],
        staff.id,
        None,
    )


def test_every_link_has_its_own_token(client, staff, ticket, rows):
    tokens = {make_link(client, staff, ticket) for _ in range(3)}

    assert len(tokens) == 3
    hashes = {row["token_hash"] for row in rows(SubscriberLink)}
    assert hashes == {hashlib.sha256(token.encode()).hexdigest() for token in tokens}


@pytest.mark.parametrize("ahead", [timedelta(minutes=5), timedelta(days=7), timedelta(days=364)])
def test_a_link_expires_when_asked(client, staff, ticket, rows, ahead):
    expires_at = (utcnow() + ahead).strftime("%Y-%m-%d %H:%M:%S")

    response = call(client, staff, "POST", link_url(ticket), {"expires_at": expires_at})

    data = assert_success(response, 201, "Subscriber link created")["data"]
    assert data["expires_at"] == expires_at
    [row] = rows(SubscriberLink)
    assert stamp(row["expires_at"]) == expires_at
    assert history(rows, ticket)[-1][:4] == ("link_created", None, None, expires_at)


def test_a_link_may_last_a_year_to_the_second_and_no_longer(client, staff, ticket, rows):
    now = utcnow()
    try:
        year = now.replace(year=now.year + 1, microsecond=0)
    except ValueError:  # 29 February
        year = now.replace(year=now.year + 1, day=28, microsecond=0)
    too_late = (year + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    at_most = year.strftime("%Y-%m-%d %H:%M:%S")

    refused = call(client, staff, "POST", link_url(ticket), {"expires_at": too_late})
    made = call(client, staff, "POST", link_url(ticket), {"expires_at": at_most})

    assert_error(refused, 422, "expires_at")
    assert assert_success(made, 201)["data"]["expires_at"] == at_most
    assert [stamp(row["expires_at"]) for row in rows(SubscriberLink)] == [at_most]


@pytest.mark.parametrize(
    "expires_at",
    [
        later(days=-1),
        later(seconds=-5),
        later(days=367),
        later(days=3650),
        "tomorrow",
        "2030-13-01 00:00:00",
        "2030-01-01",
        "",
        12345,
        None,
    ],
    ids=[
        "yesterday",
        "seconds-ago",
        "over-a-year",
        "ten-years",
        "words",
        "month-13",
        "date-only",
        "empty",
        "number",
        "null",
    ],
)
def test_a_bad_expiry_is_422_and_makes_no_link(client, staff, ticket, assert_refused, expires_at):
    assert_refused(
        lambda: call(client, staff, "POST", link_url(ticket), {"expires_at": expires_at}),
        422,
        "expires_at",
    )


def test_an_admin_makes_a_link_for_any_branch_of_the_isp(
    client, admin, staff_branch2, make_ticket, rows
):
    ticket_id = make_ticket(staff_branch2)

    token = make_link(client, admin, ticket_id)

    [row] = rows(SubscriberLink)
    assert (row["ticket_id"], row["created_by_id"]) == (ticket_id, admin.id)
    assert assert_success(read(client, token), 200)["data"]["id"] == ticket_id


@pytest.mark.parametrize("outsider", ["staff_branch2", "other_admin", "other_staff"])
def test_another_branch_or_isp_gets_404_and_no_link(
    client, request, ticket, assert_refused, outsider
):
    caller = request.getfixturevalue(outsider)
    body = assert_refused(lambda: call(client, caller, "POST", link_url(ticket), {}), 404)
    assert body.get_json()["message"] == "Ticket not found."


def test_a_link_for_a_deleted_or_unknown_ticket_is_404(client, staff, make_ticket, assert_refused):
    deleted = make_ticket(staff, deleted_at=utcnow())

    for ticket_id in (deleted, deleted + 1000):
        assert_refused(lambda t=ticket_id: call(client, staff, "POST", link_url(t), {}), 404)


def test_without_a_login_no_link_is_made(client, ticket, assert_refused):
    assert_refused(lambda: client.post(link_url(ticket), json={}), 401)
    assert_refused(lambda: client.delete(link_url(ticket)), 401)


def test_a_key_needs_tickets_write_to_make_or_revoke_a_link(
    client, admin, ticket, make_key, assert_refused, rows
):
    reader = make_key(admin, scopes=["tickets:read"])
    writer = make_key(admin, scopes=["tickets:read", "tickets:write"], name="Writer")

    assert_refused(lambda: call(client, reader, "POST", link_url(ticket), {}), 403)
    token = make_link(client, writer, ticket)

    [row] = rows(SubscriberLink)
    assert (row["key_id"], row["created_by_id"]) == (writer.id, admin.id)
    assert assert_success(read(client, token), 200)["data"]["id"] == ticket
    [entry] = [row for row in rows(TicketHistory) if row["action"] == "link_created"]
    assert (entry["key_id"], entry["user_id"]) == (writer.id, admin.id)
    assert_refused(lambda: revoke(client, reader, ticket), 403)
    assert_success(revoke(client, writer, ticket), 200, "Subscriber links revoked")
    assert rows(SubscriberLink) == []


# --- Revoking -------------------------------------------------------------------------------


def test_revoking_kills_every_link_of_the_ticket_like_a_token_never_made(
    client, staff, ticket, make_ticket, rows
):
    first, second = make_link(client, staff, ticket), make_link(client, staff, ticket)
    other_ticket = make_ticket(staff)
    other = make_link(client, staff, other_ticket)
    unknown = read(client, "x" * 43)

    response = revoke(client, staff, ticket)

    assert_success(response, 200, "Subscriber links revoked")
    assert [row["ticket_id"] for row in rows(SubscriberLink)] == [other_ticket]
    for token in (first, second):
        for suffix in ("", "/attachments/1"):
            gone = read(client, token, suffix)
            assert_error(gone, 404)
            assert gone.get_data() == unknown.get_data()
            assert gone.get_json() == UNKNOWN
        assert_error(public_reply(client, token), 404)
        assert_error(public_upload(client, token, (png(), "a.png")), 404)
    assert assert_success(read(client, other), 200)["data"]["id"] == other_ticket
    assert history(rows, ticket)[-1] == ("link_revoked", None, 2, None, staff.id, None)
    assert replies_of(rows, ticket) == []
    assert rows(Attachment) == []


def test_revoking_a_ticket_without_links_is_recorded_all_the_same(client, admin, ticket, rows):
    assert_success(revoke(client, admin, ticket), 200, "Subscriber links revoked")

    assert history(rows, ticket)[-1] == ("link_revoked", None, 0, None, admin.id, None)


def test_a_key_of_another_branch_gets_404(
    client, admin, staff_branch2, ticket, make_key, assert_refused
):
    """(staff_branch2 makes branch 2 exist, so that a key may be of it.)"""
    key = make_key(admin, scopes=["tickets:read", "tickets:write"], branch_id=2)

    assert_refused(lambda: call(client, key, "POST", link_url(ticket), {}), 404)
    assert_refused(lambda: revoke(client, key, ticket), 404)


@pytest.mark.parametrize("outsider", ["staff_branch2", "other_admin", "other_staff"])
def test_another_branch_or_isp_cannot_revoke(
    client, request, token, ticket, assert_refused, outsider
):
    caller = request.getfixturevalue(outsider)

    assert_refused(lambda: revoke(client, caller, ticket), 404)

    assert_success(read(client, token), 200)


# --- Reading the public conversation --------------------------------------------------------


def test_the_token_reads_the_public_conversation_and_nothing_else(
    client, staff, ticket, token, make_ticket, rows, fetch
):
    assert_success(reply(client, staff, ticket, "Please restart the router."), 201)
    assert_success(reply(client, staff, ticket, NOTE, internal=True), 201)
    assert_success(public_reply(client, token, "Restarted, no change."), 201)
    make_ticket(staff, title="Someone else's ticket")

    response = read(client, token)

    body = assert_success(response, 200)
    assert list(body) == ["success", "data"]
    data = body["data"]
    assert list(data) == PUBLIC_FIELDS
    row = fetch(Ticket, ticket)
    assert (data["id"], data["title"], data["description"], data["status"]) == (
        ticket,
        row["title"],
        row["description"],
        row["status"],
    )
    assert (data["created_at"], data["updated_at"]) == (
        stamp(row["created_at"]),
        stamp(row["updated_at"]),
    )
    staff_reply, subscriber_reply = data["replies"]
    stored = {r["message"]: r for r in replies_of(rows, ticket)}
    assert list(staff_reply) == PUBLIC_REPLY_FIELDS
    assert staff_reply == {
        "id": stored["Please restart the router."]["id"],
        "message": "Please restart the router.",
        "author": "staff",
        "author_name": "Support",
        "created_at": stamp(stored["Please restart the router."]["created_at"]),
        "attachments": [],
    }
    assert subscriber_reply == {
        "id": stored["Restarted, no change."]["id"],
        "message": "Restarted, no change.",
        "author": "subscriber",
        "author_name": "John Doe",
        "created_at": stamp(stored["Restarted, no change."]["created_at"]),
        "attachments": [],
    }
    text = response.get_data(as_text=True)
    for secret in (NOTE, "be firm", staff.name, staff.email, "Someone else's ticket"):
        assert secret not in text


def test_staff_show_under_the_isps_display_name_once_an_admin_sets_it(
    client, admin, staff, ticket, token, rows
):
    assert_success(reply(client, staff, ticket, "We sent a technician."), 201)
    assert_success(reply(client, admin, ticket, "He is on his way."), 201)

    response = call(client, admin, "PUT", SETTINGS, {"staff_display_name": "FibreNet Help"})

    assert_success(response, 200, "Settings updated successfully")
    [setting] = rows(IspSettings)
    assert (setting["isp_id"], setting["staff_display_name"]) == (1, "FibreNet Help")
    shown = read(client, token)
    replies = assert_success(shown, 200)["data"]["replies"]
    assert [(r["author"], r["author_name"]) for r in replies] == [("staff", "FibreNet Help")] * 2
    for person in (staff.name, staff.email, admin.name, admin.email):
        assert person not in shown.get_data(as_text=True)


def test_staff_may_not_set_the_display_name(client, staff, token, assert_refused):
    assert_refused(
        lambda: call(client, staff, "PUT", SETTINGS, {"staff_display_name": "Staff One"}), 403
    )


def test_another_isps_display_name_is_not_this_ones(
    client, staff, other_admin, ticket, token, rows
):
    body = {"staff_display_name": "Other ISP Desk"}
    assert_success(call(client, other_admin, "PUT", SETTINGS, body), 200)
    assert_success(reply(client, staff, ticket), 201)

    [shown] = assert_success(read(client, token), 200)["data"]["replies"]

    assert shown["author_name"] == "Support"
    assert [row["isp_id"] for row in rows(IspSettings)] == [2]


def test_a_token_of_one_ticket_never_reads_another(
    client, staff, ticket, token, make_ticket, make_subscriber, rows
):
    other = make_ticket(staff, title="Other", subscriber_id=make_subscriber(name="Jane Roe"))
    other_token = make_link(client, staff, other)
    assert_success(reply(client, staff, other, "Only for Jane."), 201)
    [theirs] = staff_upload(client, staff, other, (png(1), "jane.png"))
    assert_success(reply(client, staff, other, "Photo", attachment_ids=[theirs["id"]]), 201)

    mine = assert_success(read(client, token), 200)["data"]
    assert (mine["id"], mine["replies"]) == (ticket, [])
    assert "Only for Jane." not in read(client, token).get_data(as_text=True)
    assert read(client, token, f"/attachments/{theirs['id']}").get_json() == {
        "success": False,
        "message": "Attachment not found.",
    }
    assert_success(public_reply(client, token, "Mine"), 201)
    assert [r["message"] for r in replies_of(rows, other)] == ["Only for Jane.", "Photo"]
    assert assert_success(read(client, other_token), 200)["data"]["id"] == other


# --- Tokens that open nothing -------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "A" * 43,
        "abc",
        "x",
        "-" * 43,
        "a" * 42,
        "a" * 44,
        "a" * 200,
        "%20" * 3,
        "tok%00en",
        "%E2%98%83" * 5,
        "..",
        "a.b;c=d",
        "%3Cscript%3E",
        "%FF%FE",
        "%ED%A0%80",
        "%C0%AF",
        "a b\tc",
        "é" * 43,
    ],
    ids=[
        "unknown",
        "short",
        "one",
        "dashes",
        "42",
        "44",
        "200",
        "spaces",
        "nul",
        "snowmen",
        "dots",
        "punctuation",
        "markup",
        "not-utf8",
        "surrogate",
        "overlong",
        "whitespace",
        "accents",
    ],
)
def test_a_token_that_opens_nothing_is_the_same_404(client, staff, ticket, snapshot, token):
    valid = make_link(client, staff, ticket)
    before = snapshot()

    for response in opening_nothing(client, token):
        assert_error(response, 404)
        assert response.get_json() == UNKNOWN
    assert snapshot() == before
    assert_success(read(client, valid), 200)


@pytest.mark.parametrize("token", ["a" * 201, "b" * 500], ids=["201", "500"])
def test_a_long_token_is_the_same_404(client, staff, ticket, snapshot, token):
    valid = make_link(client, staff, ticket)
    before = snapshot()

    for response in opening_nothing(client, token):
        assert response.status_code == 404
        assert response.get_json() == UNKNOWN
    assert snapshot() == before
    assert_success(read(client, valid), 200)


def test_a_token_with_a_slash_is_404_too(client, staff, ticket, snapshot):
    """No route takes it (a path separator, even encoded): the router's 404."""
    valid = make_link(client, staff, ticket)
    before = snapshot()

    for response in opening_nothing(client, "a%2Fb"):
        assert_error(response, 404)
    assert snapshot() == before
    assert_success(read(client, valid), 200)


def opening_nothing(client, token: str) -> list:
    """Every public request with this token: reads, a download, a reply, an upload."""
    return [
        client.get(f"{PUBLIC}/{token}"),
        client.get(f"{PUBLIC}/{token}/attachments/1"),
        client.post(f"{PUBLIC}/{token}/reply", json={"message": "Hello"}),
        client.post(
            f"{PUBLIC}/{token}/attachments",
            data=files_form((png(), "a.png")),
            content_type="multipart/form-data",
        ),
    ]


def test_revoked_deleted_and_unknown_tokens_are_indistinguishable(
    client, admin, staff, ticket, make_ticket, rows
):
    revoked = make_link(client, staff, ticket)
    assert_success(revoke(client, staff, ticket), 200)
    doomed = make_ticket(staff)
    deleted = make_link(client, staff, doomed)
    assert_success(call(client, admin, "DELETE", ticket_url(doomed)), 200)
    unknown = read(client, "Q" * 43)

    for token in (revoked, deleted):
        response = read(client, token)
        assert_error(response, 404)
        assert response.get_data() == unknown.get_data()
        assert without(response.headers, "X-Request-ID") == without(unknown.headers, "X-Request-ID")
    assert rows(SubscriberLink)[0]["ticket_id"] == doomed  # the deleted ticket's link stays
    assert_error(public_reply(client, deleted), 404)
    assert replies_of(rows, doomed) == []


def test_an_expired_token_is_410(app, client, ticket, token, snapshot):
    past = utcnow() - timedelta(seconds=1)
    set_columns(app, SubscriberLink, SubscriberLink.ticket_id == ticket, expires_at=past)
    before = snapshot()

    for response in (
        read(client, token),
        read(client, token, "/attachments/1"),
        public_reply(client, token),
        public_upload(client, token, (png(), "a.png")),
    ):
        body = assert_error(response, 410)
        assert body["message"] == "This link has expired; ask your provider for a new one."
    assert snapshot() == before


# --- The subscriber's reply --------------------------------------------------------------------


def test_a_reply_through_the_link_is_stored_as_the_subscribers(
    client, staff, ticket, token, rows, fetch
):
    before = fetch(Ticket, ticket)

    response = public_reply(client, token, "Still down since 9pm.")

    assert_success(response, 201, "Reply added successfully")
    [stored] = replies_of(rows, ticket)
    assert (stored["message"], stored["author_name"], stored["internal"]) == (
        "Still down since 9pm.",
        "John Doe",
        False,
    )
    assert (stored["user_id"], stored["key_id"], stored["attachments"]) == (staff.id, None, [])
    after = fetch(Ticket, ticket)
    assert (after["first_response_at"], after["status"]) == (None, 0)
    assert after["reply_count"] == (before["reply_count"] or 0) + 1
    assert history(rows, ticket)[-1] == ("replied", None, None, None, staff.id, "John Doe")
    [seen] = fetched(client, staff, ticket)["replies"]
    assert (seen["id"], seen["user_id"], seen["user_name"], seen["author"]) == (
        stored["id"],
        None,
        "John Doe",
        "subscriber",
    )
    [seen] = assert_success(get(client, staff, ticket_url(ticket, "/replies")), 200)["data"]
    assert (seen["user_id"], seen["user_name"], seen["author"]) == (None, "John Doe", "subscriber")
    history_shown = assert_success(get(client, staff, ticket_url(ticket, "/history")), 200)
    last = history_shown["data"][-1]
    assert (last["action"], last["user_id"], last["user_name"], last["author"]) == (
        "replied",
        None,
        "John Doe",
        "subscriber",
    )


def test_a_reply_on_a_ticket_without_a_subscriber_is_signed_subscriber(
    client, staff, make_ticket, rows
):
    ticket_id = make_ticket(staff)
    token = make_link(client, staff, ticket_id)

    assert_success(public_reply(client, token, "Hello?"), 201)

    [stored] = replies_of(rows, ticket_id)
    assert stored["author_name"] == "Subscriber"
    [shown] = assert_success(read(client, token), 200)["data"]["replies"]
    assert (shown["author"], shown["author_name"]) == ("subscriber", "Subscriber")


def test_the_subscribers_reply_never_counts_as_the_first_response(
    client, staff, ticket, token, fetch
):
    for n in range(3):
        assert_success(public_reply(client, token, f"Anyone there? {n}"), 201)
    assert fetch(Ticket, ticket)["first_response_at"] is None

    assert_success(reply(client, staff, ticket, "Yes, sorry."), 201)

    assert fetch(Ticket, ticket)["first_response_at"] is not None


@pytest.mark.parametrize(("status", "then"), [(2, 0), (4, 1), (0, 0), (1, 1)])
def test_the_subscribers_reply_reopens_a_resolved_ticket_and_ends_a_wait(
    client, staff, ticket, token, rows, fetch, status, then
):
    assert_success(set_status(client, staff, ticket, status), 200)
    before = len(history(rows, ticket))

    assert_success(public_reply(client, token, "It broke again."), 201)

    assert fetch(Ticket, ticket)["status"] == then
    added = history(rows, ticket)[before:]
    changed = [("status_changed", "status", status, then, staff.id, "John Doe")]
    replied = [("replied", None, None, None, staff.id, "John Doe")]
    assert sorted(added, key=str) == sorted((changed if status != then else []) + replied, key=str)
    assert assert_success(read(client, token), 200)["data"]["status"] == then


def test_a_closed_ticket_takes_no_reply_and_no_file(client, staff, ticket, token, assert_refused):
    assert_success(set_status(client, staff, ticket, 3), 200)

    for request in (
        lambda: public_reply(client, token),
        lambda: public_upload(client, token, (png(), "a.png")),
    ):
        body = assert_refused(request, 409).get_json()
        assert body["message"] == "This ticket is closed; write to your provider to open a new one."
    assert assert_success(read(client, token), 200)["data"]["status"] == 3


@pytest.mark.parametrize(
    "message",
    ["", "   ", "bell\x07", "nul\x00byte", "esc\x1b[31m", "x" * 10_001, "y" * 100_000, None, 42],
    ids=["empty", "blank", "bell", "nul", "escape", "10001", "100KB", "null", "number"],
)
def test_a_bad_message_is_422_and_stores_nothing(client, token, assert_refused, message):
    assert_refused(lambda: public_reply(client, token, message), 422, "message")


def test_a_reply_without_a_message_is_422(client, token, assert_refused):
    assert_refused(lambda: client.post(f"{PUBLIC}/{token}/reply", json={}), 422, "message")


def test_a_message_of_10000_characters_is_taken(client, ticket, token, rows):
    assert_success(public_reply(client, token, "z" * 10_000), 201)

    assert [len(r["message"]) for r in replies_of(rows, ticket)] == [10_000]


# --- The subscriber's files ---------------------------------------------------------------------


def test_the_subscriber_uploads_up_to_five_files(
    client, staff, ticket, token, rows, attachment_dir
):
    files = [(png(n), f"photo{n}.png") for n in range(4)] + [(b"Modem log\n", "modem.txt")]

    data = assert_success(public_upload(client, token, *files), 201, "Files attached")["data"]

    assert [list(item) for item in data] == [REF_FIELDS] * 5
    stored = rows(Attachment)
    assert [(item["id"], item["name"], item["size"], item["content_type"]) for item in data] == [
        (row["id"], row["name"], row["size"], row["content_type"]) for row in stored
    ]
    assert [row["name"] for row in stored] == [name for _, name in files]
    assert {row["content_type"] for row in stored} == {"image/png", "text/plain"}
    assert all(row["by_subscriber"] and row["reply_id"] is None for row in stored)
    assert {row["ticket_id"] for row in stored} == {ticket}
    assert len(rows(AttachmentBlob)) == 5
    assert len(stored_files(attachment_dir)) == 5
    listed = assert_success(get(client, staff, ticket_url(ticket, "/attachments")), 200)["data"]
    assert [(item["by_subscriber"], item["reply_id"]) for item in listed] == [(True, None)] * 5
    assert history(rows, ticket)[-1] == (
        "attached",
        None,
        None,
        [name for _, name in files],
        staff.id,
        "John Doe",
    )


def test_six_files_at_once_are_422_and_none_is_kept(client, token, assert_refused, attachment_dir):
    files = [(png(n), f"photo{n}.png") for n in range(6)]

    assert_refused(lambda: public_upload(client, token, *files), 422, "files")

    assert stored_files(attachment_dir) == []


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"<html><script>alert(1)</script></html>", "cat.png"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg"),
        (b"", "empty.png"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "setup.exe"),
    ],
    ids=["html-as-png", "svg", "empty", "executable"],
)
def test_the_subscribers_upload_is_checked_like_staffs(
    client, token, assert_refused, attachment_dir, data, name
):
    assert_refused(lambda: public_upload(client, token, (data, name)), 422, "files")

    assert stored_files(attachment_dir) == []


def test_a_file_over_the_limit_is_413_and_nothing_is_kept(make_app, token, tmp_path, snapshot):
    root = tmp_path / "small"
    small = make_app(ATTACHMENT_MAX_BYTES=1024, ATTACHMENT_DIR=str(root)).test_client()
    before = snapshot()

    response = public_upload(small, token, (b"a" * 2048, "big.txt"))

    assert_error(response, 413)
    assert snapshot() == before
    assert stored_files(root) == []
    assert_success(public_upload(small, token, (b"a" * 1024, "fits.txt")), 201)


def test_a_reply_takes_the_subscribers_own_uploads(client, staff, ticket, token, rows):
    first, second = uploaded_by_subscriber(client, token, (png(1), "a.png"), (png(2), "b.png"))

    response = public_reply(client, token, "Photos", attachment_ids=[second["id"], first["id"]])

    assert_success(response, 201, "Reply added successfully")
    [stored] = replies_of(rows, ticket)
    refs = [{key: item[key] for key in REF_FIELDS} for item in (first, second)]
    assert stored["attachments"] == refs
    assert [row["reply_id"] for row in rows(Attachment)] == [stored["id"]] * 2
    [shown] = assert_success(read(client, token), 200)["data"]["replies"]
    assert shown["attachments"] == refs
    [seen] = fetched(client, staff, ticket)["replies"]
    assert (seen["author"], seen["attachments"]) == ("subscriber", refs)


def test_a_staff_upload_or_a_taken_file_cannot_go_on_the_subscribers_reply(
    client, staff, ticket, token, make_ticket, rows, assert_refused
):
    [staffs] = staff_upload(client, staff, ticket, (png(1), "staff.png"))
    [taken, mine] = uploaded_by_subscriber(client, token, (png(2), "a.png"), (png(3), "b.png"))
    assert_success(public_reply(client, token, "First", attachment_ids=[taken["id"]]), 201)
    elsewhere = make_ticket(staff)
    other_token = make_link(client, staff, elsewhere)
    [theirs] = uploaded_by_subscriber(client, other_token, (png(4), "c.png"))

    for ids in ([staffs["id"]], [taken["id"]], [theirs["id"]], [mine["id"], staffs["id"]]):
        assert_refused(
            lambda ids=ids: public_reply(client, token, "More", attachment_ids=ids),
            422,
            "attachment_ids",
        )
    assert_refused(
        lambda: public_reply(client, token, "More", attachment_ids=[mine["id"], mine["id"]]),
        422,
        "attachment_ids",
    )
    assert [r["message"] for r in replies_of(rows, ticket)] == ["First"]


@pytest.mark.parametrize(
    "attachment_ids",
    [[0], [-1], ["x"], [None], None, "1", list(range(1, 22))],
    ids=["zero", "negative", "text", "null-id", "null", "string", "21"],
)
def test_malformed_attachment_ids_are_422_on_attachment_ids(
    client, token, assert_refused, attachment_ids
):
    response = assert_refused(
        lambda: public_reply(client, token, "Files", attachment_ids=attachment_ids), 422
    )
    assert {name.split(".")[0] for name in response.get_json()["errors"]} == {"attachment_ids"}


def test_a_refused_reply_leaves_a_resolved_ticket_resolved(
    client, staff, ticket, token, fetch, assert_refused
):
    [staffs] = staff_upload(client, staff, ticket, (png(1), "staff.png"))
    assert_success(set_status(client, staff, ticket, 2), 200)

    assert_refused(
        lambda: public_reply(client, token, "Reopen", attachment_ids=[staffs["id"]]),
        422,
        "attachment_ids",
    )

    assert fetch(Ticket, ticket)["status"] == 2


def test_staff_cannot_take_the_subscribers_upload_on_their_reply(
    client, staff, ticket, token, rows, assert_refused
):
    [theirs] = uploaded_by_subscriber(client, token, (png(1), "a.png"))

    assert_refused(
        lambda: reply(client, staff, ticket, "Thanks", attachment_ids=[theirs["id"]]),
        422,
        "attachment_ids",
    )


# --- Downloads through the link -----------------------------------------------------------------


def test_a_file_on_a_public_reply_downloads_through_the_link(client, staff, ticket, token):
    data = png(9)
    [mine] = uploaded_by_subscriber(client, token, (data, "router lights.png"))
    assert_success(public_reply(client, token, "Lights", attachment_ids=[mine["id"]]), 201)
    [staffs] = staff_upload(client, staff, ticket, (b"Step 1: unplug.\n", "steps.txt"))
    assert_success(reply(client, staff, ticket, "Steps", attachment_ids=[staffs["id"]]), 201)

    response = read(client, token, f"/attachments/{mine['id']}")

    assert response.status_code == 200
    assert response.get_data() == data
    assert response.mimetype == "image/png"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"router lights.png\"; filename*=UTF-8''router%20lights.png"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    response = read(client, token, f"/attachments/{staffs['id']}")
    assert (response.status_code, response.get_data()) == (200, b"Step 1: unplug.\n")
    assert response.headers["Content-Disposition"].startswith("attachment;")


def test_a_file_on_a_note_or_on_no_reply_is_404_through_the_link(client, staff, ticket, token):
    [noted, loose] = staff_upload(client, staff, ticket, (png(1), "bill.png"), (png(2), "x.png"))
    body = {"internal": True, "attachment_ids": [noted["id"]]}
    assert_success(reply(client, staff, ticket, NOTE, **body), 201)
    [waiting] = uploaded_by_subscriber(client, token, (png(3), "mine.png"))

    for attachment_id in (noted["id"], loose["id"], waiting["id"], waiting["id"] + 100):
        response = read(client, token, f"/attachments/{attachment_id}")
        assert_error(response, 404)
        assert response.get_json() == {"success": False, "message": "Attachment not found."}
    shown = read(client, token)
    assert assert_success(shown, 200)["data"]["replies"] == []
    assert "bill.png" not in shown.get_data(as_text=True)
    # staff still reach the note's file
    assert (
        client.get(f"/api/v1/attachments/{noted['id']}", headers=staff.headers).status_code == 200
    )


# --- Rate limits ------------------------------------------------------------------------------


@pytest.fixture
def limited(make_app, tmp_path):
    """A client of an app with the public limits on: 3 reads and 2 writes an hour (an hour,
    so that no window turns during a test)."""

    def build():
        app = make_app(
            RATE_LIMITS=True,
            PUBLIC_RATE_LIMIT_READS="3 per hour",
            PUBLIC_RATE_LIMIT_REPLIES="2 per hour",
            ATTACHMENT_DIR=str(tmp_path / "limited"),
        )
        return app.test_client()

    return build


def from_address(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def assert_limited(response) -> dict:
    body = assert_error(response, 429)
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    return body


def test_the_fourth_read_of_a_token_in_the_window_is_429(limited, client, staff, ticket, token):
    public = limited()
    here = from_address("203.0.113.5")

    for _ in range(3):
        assert_success(read(public, token, **here), 200)
    assert_limited(read(public, token, **here))
    # the token's count: from another address too
    assert_limited(read(public, token, **from_address("198.51.100.7")))
    assert_limited(read(public, token, "/attachments/1", **from_address("198.51.100.8")))


def test_reads_are_counted_per_address_across_tokens(limited, client, staff, ticket, make_ticket):
    public = limited()
    first = make_link(client, staff, ticket)
    second = make_link(client, staff, make_ticket(staff))
    here, there = from_address("203.0.113.5"), from_address("198.51.100.7")

    for _ in range(3):
        assert_success(read(public, first, **here), 200)
    assert_limited(read(public, second, **here))

    assert assert_success(read(public, second, **there), 200)["data"]["id"] != ticket


def test_unknown_tokens_are_counted_too(limited, client, staff, ticket, token):
    public = limited()
    here = from_address("203.0.113.9")

    for n in range(3):
        assert_error(read(public, f"guess{n}", **here), 404)
    assert_limited(read(public, token, **here))


def test_the_third_write_of_a_token_in_the_window_is_429_and_stores_nothing(
    limited, ticket, token, rows, snapshot
):
    public = limited()
    here = from_address("203.0.113.5")
    assert_success(public_reply(public, token, "One", **here), 201)
    assert_success(public_upload(public, token, (png(), "a.png"), **here), 201)
    before = [snapshot()[name] for name in ("ticket_replies", "attachments", "ticket_history")]

    assert_limited(public_reply(public, token, "Three", **here))
    assert_limited(public_upload(public, token, (png(1), "b.png"), **from_address("192.0.2.1")))

    after = [snapshot()[name] for name in ("ticket_replies", "attachments", "ticket_history")]
    assert after == before
    assert [r["message"] for r in replies_of(rows, ticket)] == ["One"]
    # reads have their own count
    assert_success(read(public, token, **here), 200)


def test_without_rate_limits_nothing_is_counted(client, token):
    for _ in range(30):
        assert_success(read(client, token), 200)

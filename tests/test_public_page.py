"""The subscriber's page, /t/{token}: the ticket's public conversation as plain, escaped HTML for
a phone (no script, no external asset, a Content-Security-Policy that allows only its inline
style), and a form (a message, an optional photo) that replies as the subscriber and comes
back with a 303; a bad message or file is the page again with 422 and the problem, storing
nothing. Links that open nothing are a 404 page, expired ones a 410 page. And the same page in
a real browser (Debian's chromium, driven by Playwright) on a phone-sized screen."""

import base64
import hashlib
import io
import re
from datetime import timedelta

import pytest
from support.browser import browser_page, served_in_a_thread
from support.client import assert_success, call, reply, set_status
from support.database import set_columns
from support.files import png, stored_files
from support.urls import ticket_url

from tickets_service.models import (
    Attachment,
    SubscriberLink,
    Ticket,
    TicketHistory,
    TicketReply,
    utcnow,
)

# Attachments' bytes go to each test's own directory.
pytestmark = pytest.mark.usefixtures("attachment_dir")

NOTE = "Internal: line card 7 is flapping, do not tell the customer."
POLICY = {
    "default-src": ["'none'"],
    "img-src": ["'self'", "data:"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
}
CLOSED = "This ticket is closed; write to your provider to open a new one."
EXPIRED = "This link has expired; ask your provider for a new one."


def make_link(client, account, ticket_id: int) -> str:
    response = call(client, account, "POST", ticket_url(ticket_id, "/subscriber-link"), {})
    return assert_success(response, 201, "Subscriber link created")["data"]["token"]


def staff_upload(client, account, ticket_id: int, data: bytes, name: str) -> dict:
    response = client.post(
        ticket_url(ticket_id, "/attachments"),
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        headers=account.headers,
    )
    return assert_success(response, 201, "Files attached")["data"][0]


def page(client, token: str, **options):
    return client.get(f"/t/{token}", **options)


def post_page(client, token: str, message: str | None = "It drops every evening.", photo=None):
    form = {} if message is None else {"message": message}
    if photo is not None:
        form["photo"] = (io.BytesIO(photo[0]), photo[1])
    return client.post(f"/t/{token}", data=form, content_type="multipart/form-data")


def html_of(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def policy_of(response) -> dict:
    directives = [d.split() for d in response.headers["Content-Security-Policy"].split(";")]
    return {name: values for name, *values in directives}


def by_id(html: str, element_id: str) -> str:
    """The text of the element with this id (no nested markup)."""
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert match, f"no #{element_id}"
    return match.group(1)


def replies_of(rows, ticket_id: int) -> list[dict]:
    return [row for row in rows(TicketReply) if row["ticket_id"] == ticket_id]


@pytest.fixture
def ticket(make_subscriber, make_ticket, staff) -> int:
    return make_ticket(staff, subscriber_id=make_subscriber(name="John Doe"))


@pytest.fixture
def token(client, staff, ticket) -> str:
    return make_link(client, staff, ticket)


# --- Reading the page -------------------------------------------------------------------------


def test_the_page_shows_the_public_conversation_and_a_form(
    client, staff, ticket, token, fetch, rows
):
    shared = staff_upload(client, staff, ticket, png(1), "speedtest.png")
    body = {"attachment_ids": [shared["id"]]}
    assert_success(reply(client, staff, ticket, "Please restart the router.", **body), 201)
    assert_success(reply(client, staff, ticket, NOTE, internal=True), 201)
    assert post_page(client, token, "Restarted, no change.").status_code == 303

    response = page(client, token)

    html = html_of(response, 200)
    row = fetch(Ticket, ticket)
    assert by_id(html, "title") == row["title"]
    assert by_id(html, "status") == "Open"
    assert row["description"] in html
    assert "Please restart the router." in html
    assert "Restarted, no change." in html
    assert re.search(r">Support, \d{4}-\d\d-\d\d \d\d:\d\d UTC<", html)
    assert re.search(r">You, \d{4}-\d\d-\d\d \d\d:\d\d UTC<", html)
    assert f'href="/t/{token}/files/{shared["id"]}"' in html
    for secret in (NOTE, "line card", staff.name, staff.email, "John Doe"):
        assert secret not in html
    assert f'<form method="post" action="/t/{token}" enctype="multipart/form-data">' in html
    assert re.search(r'<textarea id="message" name="message"', html)
    assert re.search(r'<input id="photo" name="photo" type="file"', html)
    assert len(replies_of(rows, ticket)) == 3


@pytest.mark.parametrize(
    ("status", "name"),
    [(0, "Open"), (1, "In progress"), (2, "Resolved"), (4, "Waiting for you")],
)
def test_the_page_names_the_status(client, staff, ticket, token, status, name):
    assert_success(set_status(client, staff, ticket, status), 200)

    html = html_of(page(client, token), 200)

    assert by_id(html, "status") == name
    assert "<form" in html


def test_everything_the_page_shows_is_escaped(client, admin, staff, make_ticket, make_subscriber):
    markup = "<script>alert(1)</script>"
    ticket_id = make_ticket(
        staff,
        title=markup,
        description=f'<img src=x onerror="alert(2)">{markup}',
        subscriber_id=make_subscriber(name="<b>Bold</b>"),
    )
    token = make_link(client, staff, ticket_id)
    settings = {"staff_display_name": "<i>Desk</i>"}
    assert_success(call(client, admin, "PUT", "/api/v1/settings", settings), 200)
    assert_success(
        reply(client, staff, ticket_id, f'<a href="https://evil.test">{markup}</a>'), 201
    )
    assert post_page(client, token, f"</textarea>{markup}").status_code == 303

    html = html_of(page(client, token), 200)

    assert "<script" not in html.lower()
    assert "<img" not in html and "<i>" not in html and '<a href="https' not in html
    assert f"<title>{markup.replace('<', '&lt;').replace('>', '&gt;')}</title>" in html
    assert by_id(html, "title") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "&lt;i&gt;Desk&lt;/i&gt;, " in html
    assert "&lt;/textarea&gt;&lt;script&gt;" in html
    assert html.count("<textarea") == html.count("</textarea>") == 1


def test_the_page_sends_a_policy_that_allows_only_its_own_style(client, token):
    response = page(client, token)

    html = html_of(response, 200)
    policy = policy_of(response)
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert policy == {**POLICY, "style-src": [f"'sha256-{digest}'"]}
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_page_has_no_script_and_no_external_asset(client, staff, ticket, token):
    assert_success(reply(client, staff, ticket, "We are on it."), 201)

    html = html_of(page(client, token), 200)

    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html
    assert " style=" not in html and " on" not in re.sub(r">[^<]*<", "><", html)
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', html):
        assert url.startswith("/t/") or url == "data:,", url  # data:, the empty icon


def test_a_closed_ticket_has_no_form(client, staff, ticket, token):
    assert_success(set_status(client, staff, ticket, 3), 200)

    html = html_of(page(client, token), 200)

    assert by_id(html, "status") == "Closed"
    assert "<form" not in html and "<textarea" not in html and 'type="file"' not in html
    assert "This ticket is closed." in html


@pytest.mark.parametrize(
    "token",
    ["A" * 43, "abc", "a" * 200, "%3Cb%3E", "tok%00en"],
    ids=["unknown", "short", "200", "markup", "nul"],
)
def test_a_token_that_opens_nothing_is_a_404_page(client, staff, ticket, token, snapshot):
    before = snapshot()

    for response in (page(client, token), client.get(f"/t/{token}/files/1")):
        html = html_of(response, 404)
        assert by_id(html, "message") == "No such link."
        assert policy_of(response)["default-src"] == ["'none'"]
    html = html_of(post_page(client, token, "Hello"), 404)
    assert by_id(html, "message") == "No such link."
    assert snapshot() == before


def test_revoked_and_deleted_tickets_links_are_the_same_404_page(
    client, admin, staff, ticket, token, make_ticket
):
    assert_success(call(client, staff, "DELETE", ticket_url(ticket, "/subscriber-link")), 200)
    doomed = make_ticket(staff)
    deleted = make_link(client, staff, doomed)
    assert_success(call(client, admin, "DELETE", ticket_url(doomed)), 200)
    unknown = page(client, "Z" * 43).get_data()

    for gone in (token, deleted):
        response = page(client, gone)
        assert html_of(response, 404) == unknown.decode()


@pytest.mark.parametrize("length", [201, 500])
def test_a_token_over_200_characters_is_the_404_page_too(client, length):
    response = page(client, "a" * length)

    html = html_of(response, 404)
    assert by_id(html, "message") == "No such link."


def test_an_expired_link_is_a_410_page(app, client, ticket, token, snapshot):
    past = utcnow() - timedelta(seconds=1)
    set_columns(app, SubscriberLink, SubscriberLink.ticket_id == ticket, expires_at=past)
    before = snapshot()

    for response in (page(client, token), post_page(client, token, "Hello?")):
        html = html_of(response, 410)
        assert by_id(html, "message") == EXPIRED
        assert "<form" not in html
    assert snapshot() == before


# --- Replying through the page ---------------------------------------------------------------


def test_the_form_replies_as_the_subscriber_and_comes_back_with_303(
    client, staff, ticket, token, rows, fetch
):
    response = post_page(client, token, "Still down.\nSince 9pm.")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/t/{token}#latest"
    [stored] = replies_of(rows, ticket)
    assert (stored["message"], stored["author_name"], stored["internal"]) == (
        "Still down.\nSince 9pm.",
        "John Doe",
        False,
    )
    assert (stored["user_id"], stored["attachments"]) == (staff.id, [])
    assert rows(Attachment) == []
    assert fetch(Ticket, ticket)["first_response_at"] is None
    [entry] = [row for row in rows(TicketHistory) if row["action"] == "replied"]
    assert entry["author_name"] == "John Doe"
    html = html_of(page(client, token), 200)
    assert re.search(r'id="latest">\s*<div class="who">You, ', html)
    assert "Still down.\nSince 9pm." in html


def test_the_form_reopens_a_resolved_ticket(client, staff, ticket, token, fetch):
    assert_success(set_status(client, staff, ticket, 2), 200)

    assert post_page(client, token, "It broke again.").status_code == 303

    assert fetch(Ticket, ticket)["status"] == 0
    assert by_id(html_of(page(client, token), 200), "status") == "Open"


def test_the_form_takes_a_photo_onto_the_reply(client, staff, ticket, token, rows, attachment_dir):
    photo = png(5)

    response = post_page(client, token, "The lights", photo=(photo, "lights.png"))

    assert response.status_code == 303
    [stored] = replies_of(rows, ticket)
    [attachment] = rows(Attachment)
    assert (attachment["reply_id"], attachment["by_subscriber"], attachment["name"]) == (
        stored["id"],
        True,
        "lights.png",
    )
    assert (attachment["content_type"], attachment["size"]) == ("image/png", len(photo))
    assert attachment["sha256"] == hashlib.sha256(photo).hexdigest()
    assert stored["attachments"] == [
        {
            "id": attachment["id"],
            "name": "lights.png",
            "size": len(photo),
            "content_type": "image/png",
        }
    ]
    assert len(stored_files(attachment_dir)) == 1
    html = html_of(page(client, token), 200)
    link = f"/t/{token}/files/{attachment['id']}"
    assert f'href="{link}"' in html
    download = client.get(link)
    assert (download.status_code, download.get_data(), download.mimetype) == (
        200,
        photo,
        "image/png",
    )
    assert download.headers["Content-Disposition"].startswith('attachment; filename="lights.png"')
    assert download.headers["X-Content-Type-Options"] == "nosniff"


def test_an_empty_photo_input_is_no_photo(client, ticket, token, rows):
    response = post_page(client, token, "No photo", photo=(b"", ""))

    assert response.status_code == 303
    assert [r["message"] for r in replies_of(rows, ticket)] == ["No photo"]
    assert rows(Attachment) == []


@pytest.mark.parametrize(
    ("photo", "problem"),
    [
        ((b"<html><body>hi</body></html>", "cat.png"), "cat.png: this type of file is not allowed"),
        ((b"<svg onload='alert(1)'/>", "cat.png"), "cat.png: this type of file is not allowed"),
        ((b"plain words", "cat.png"), "cat.png: the name says .png but the file is text/plain"),
        ((b"", "empty.png"), "empty.png: the file is empty"),
    ],
    ids=["html-as-png", "svg-as-png", "text-as-png", "empty"],
)
def test_a_bad_photo_is_the_page_again_with_422_and_stores_nothing(
    client, ticket, token, snapshot, attachment_dir, photo, problem
):
    before = snapshot()

    response = post_page(client, token, "Here is a photo", photo=photo)

    html = html_of(response, 422)
    errors = re.findall(r'<p class="error">([^<]*)</p>', html)
    assert len(errors) == 1 and errors[0].startswith(problem), errors
    assert by_id(html, "title") == "Connection Issue"
    assert "<form" in html
    assert policy_of(response)["default-src"] == ["'none'"]
    assert snapshot() == before
    assert stored_files(attachment_dir) == []


@pytest.mark.parametrize(
    "message",
    ["", "   ", "bell\x07", "x" * 10_001, None],
    ids=["empty", "blank", "control", "too-long", "missing"],
)
def test_a_bad_message_is_the_page_again_with_422_and_stores_nothing(
    client, token, snapshot, attachment_dir, message
):
    before = snapshot()

    response = post_page(client, token, message, photo=(png(), "fine.png"))

    html = html_of(response, 422)
    assert re.findall(r'<p class="error">([^<]*)</p>', html)
    assert snapshot() == before
    assert stored_files(attachment_dir) == []


def test_six_files_through_the_page_are_422_and_none_is_kept(
    client, token, snapshot, attachment_dir
):
    form = {"message": "Six photos"}
    form |= {f"photo{n}": (io.BytesIO(png(n)), f"p{n}.png") for n in range(6)}
    before = snapshot()

    response = client.post(f"/t/{token}", data=form, content_type="multipart/form-data")

    html = html_of(response, 422)
    assert re.findall(r'<p class="error">([^<]*)</p>', html) == ["At most 5 files at a time."]
    assert snapshot() == before
    assert stored_files(attachment_dir) == []


def test_a_refused_photo_leaves_a_resolved_ticket_resolved(
    client, staff, ticket, token, fetch, snapshot
):
    assert_success(set_status(client, staff, ticket, 2), 200)
    before = snapshot()

    response = post_page(client, token, "Again", photo=(b"<html>x</html>", "x.png"))

    assert by_id(html_of(response, 422), "status") == "Resolved"
    assert snapshot() == before
    assert fetch(Ticket, ticket)["status"] == 2


def test_a_photo_over_the_limit_is_a_413_page_and_nothing_is_kept(
    make_app, token, tmp_path, snapshot
):
    root = tmp_path / "small"
    small = make_app(ATTACHMENT_MAX_BYTES=1024, ATTACHMENT_DIR=str(root)).test_client()
    before = snapshot()

    response = post_page(small, token, "Big", photo=(png() + b"\0" * 2048, "big.png"))

    html = html_of(response, 413)
    assert "1024" in by_id(html, "message")
    assert snapshot() == before
    assert stored_files(root) == []


def test_a_closed_ticket_takes_nothing_through_the_page(client, staff, ticket, token, snapshot):
    assert_success(set_status(client, staff, ticket, 3), 200)
    before = snapshot()

    response = post_page(client, token, "Hello?", photo=(png(), "a.png"))

    html = html_of(response, 409)
    assert by_id(html, "message") == CLOSED
    assert snapshot() == before


def test_a_file_on_a_note_is_not_served_by_the_page(client, staff, ticket, token):
    noted = staff_upload(client, staff, ticket, png(2), "invoice.png")
    body = {"internal": True, "attachment_ids": [noted["id"]]}
    assert_success(reply(client, staff, ticket, NOTE, **body), 201)

    response = client.get(f"/t/{token}/files/{noted['id']}")

    assert by_id(html_of(response, 404), "message") == "No such link."
    assert "invoice.png" not in html_of(page(client, token), 200)


def test_the_page_is_limited_with_a_plain_429_page(make_app, client, tmp_path, ticket, token):
    limited = make_app(
        RATE_LIMITS=True,
        PUBLIC_RATE_LIMIT_READS="2 per hour",
        PUBLIC_RATE_LIMIT_REPLIES="1 per hour",
        ATTACHMENT_DIR=str(tmp_path / "limited"),
    ).test_client()

    for _ in range(2):
        html_of(page(limited, token), 200)
    response = page(limited, token)
    html = html_of(response, 429)
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert "<form" not in html
    assert post_page(limited, token, "One").status_code == 303
    response = post_page(limited, token, "Two")
    html_of(response, 429)
    assert int(response.headers["Retry-After"]) > 0


# --- In a real browser ------------------------------------------------------------------------


@pytest.fixture
def served(app):
    with served_in_a_thread(app) as base:
        yield base


# Records every Content-Security-Policy violation (the init script itself is not the page's).
WATCH_POLICY = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def phone():
    """A page of Debian's chromium on a 360x740 phone screen, and the problems it meets
    (support.browser's, CSP violations among them once violations() is read)."""
    return browser_page(
        WATCH_POLICY, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )


def violations(page) -> list[str]:
    return [f"CSP violation: {v}" for v in page.evaluate("window.__violations")]


@pytest.mark.slow
def test_a_subscriber_reads_and_replies_with_a_photo_on_a_phone(
    served, client, staff, ticket, rows
):
    assert_success(reply(client, staff, ticket, "A technician comes tomorrow."), 201)
    assert_success(reply(client, staff, ticket, NOTE, internal=True), 201)
    token = make_link(client, staff, ticket)
    photo = png(42)

    with phone() as (page, problems):
        page.goto(f"{served}/t/{token}", wait_until="networkidle")

        assert page.title() == "Connection Issue"
        assert page.locator("#title").inner_text() == "Connection Issue"
        assert page.locator("#status").inner_text() == "Open"
        assert page.get_by_text("A technician comes tomorrow.").is_visible()
        assert page.get_by_text("Support,", exact=False).first.is_visible()
        assert page.get_by_text("line card", exact=False).count() == 0
        assert NOTE not in page.content()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        problems += violations(page)

        page.fill("#message", "Here are the router's lights.")
        page.set_input_files(
            "#photo", files=[{"name": "lights.png", "mimeType": "image/png", "buffer": photo}]
        )
        with page.expect_navigation(wait_until="networkidle"):
            page.click("button[type=submit]")

        assert page.url == f"{served}/t/{token}#latest"
        latest = page.locator("#latest")
        assert latest.get_by_text("Here are the router's lights.").is_visible()
        assert latest.get_by_text("You,", exact=False).is_visible()
        link = latest.get_by_role("link", name="lights.png")
        assert link.is_visible()
        assert link.get_attribute("href").startswith(f"/t/{token}/files/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        problems += violations(page)
    assert problems == []

    replies = replies_of(rows, ticket)
    assert [(r["message"], r["author_name"], r["internal"]) for r in replies] == [
        ("A technician comes tomorrow.", None, False),
        (NOTE, None, True),
        ("Here are the router's lights.", "John Doe", False),
    ]
    [attachment] = rows(Attachment)
    assert (attachment["reply_id"], attachment["by_subscriber"], attachment["name"]) == (
        replies[-1]["id"],
        True,
        "lights.png",
    )
    assert (attachment["size"], attachment["sha256"]) == (
        len(photo),
        hashlib.sha256(photo).hexdigest(),
    )
    assert replies[-1]["attachments"] == [
        {
            "id": attachment["id"],
            "name": "lights.png",
            "size": len(photo),
            "content_type": "image/png",
        }
    ]


@pytest.mark.slow
def test_the_page_loads_in_a_browser_without_a_console_error(served, client, staff, ticket):
    token = make_link(client, staff, ticket)

    with phone() as (page, problems):
        page.goto(f"{served}/t/{token}", wait_until="networkidle")
        page.wait_for_timeout(300)  # the icon is asked for after the load
        problems += violations(page)

    assert problems == []

"""No N+1: the SQL statements behind a list page or a Fetch Ticket do not grow with the rows
or replies they return."""

from tickets_service.models import Ticket, TicketReply

from conftest import scope_of

TICKETS = "/api/v1/tickets"


def statements_for(client, count_queries, account, url: str, query: dict | None = None):
    """The number of SQL statements one GET runs, and the response body."""
    with count_queries() as counter:
        response = client.get(url, query_string=query, headers=account.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["success"] is True
    assert counter.count > 0
    return counter.count, response.get_json()


def test_list_page_statements_do_not_grow_with_tickets(
    client, admin, make_user, make_subscriber, make_ticket, count_queries, rows
):
    """Each ticket has its own subscriber and creator, so a lazy load per row would show."""

    def add_ticket(n: int) -> None:
        author = make_user(isp_id=1, branch_id=1)
        make_ticket(author, subscriber_id=make_subscriber(name=f"Subscriber {n}"))

    add_ticket(0)
    one, body = statements_for(client, count_queries, admin, TICKETS, scope_of(admin))
    assert len(body["data"]) == 1

    for n in range(1, 30):
        add_ticket(n)
    many, body = statements_for(client, count_queries, admin, TICKETS, scope_of(admin))

    assert len(rows(Ticket)) == 30
    assert len({item["subscriber_name"] for item in body["data"]}) == 30
    assert many == one


def test_fetch_ticket_statements_do_not_grow_with_replies(
    client, admin, make_user, make_subscriber, make_ticket, make_reply, count_queries, rows
):
    """Each reply has its own author, so a lazy load of user_name per reply would show."""
    ticket_id = make_ticket(admin, subscriber_id=make_subscriber())
    url = f"{TICKETS}/{ticket_id}"

    def add_reply(n: int) -> None:
        make_reply(ticket_id, make_user(isp_id=1, branch_id=1, name=f"Author {n}"))

    add_reply(0)
    one, body = statements_for(client, count_queries, admin, url)
    assert len(body["data"]["replies"]) == 1

    for n in range(1, 20):
        add_reply(n)
    many, body = statements_for(client, count_queries, admin, url)

    assert len(rows(TicketReply)) == 20
    assert len({reply["user_name"] for reply in body["data"]["replies"]}) == 20
    assert many == one

"""The API's paths, as a client writes them."""

TICKETS, STATS = "/api/v1/tickets", "/api/v1/tickets/stats"
SUBSCRIBERS, USERS = "/api/v1/subscribers", "/api/v1/users"
WEBHOOKS, DELIVERIES = "/api/v1/webhooks", "/api/v1/deliveries"
API_KEYS, AUDIT = "/api/v1/api-keys", "/api/v1/audit"
LOGIN, LOGOUT, ME = "/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/auth/me"


def ticket_url(ticket_id: int, suffix: str = "") -> str:
    return f"{TICKETS}/{ticket_id}{suffix}"

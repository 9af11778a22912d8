"""Issue 4, point 6: hardening headers on every response, CORS only where configured."""

import pytest

PANEL = "https://panel.isp.example"


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("GET", "/api/v1/auth/me", 200),
        ("GET", "/api/v1/tickets/999", 404),
        ("GET", "/api/v1/tickets?isp_id=1&branch_id=1", 422),
        ("DELETE", "/api/v1/tickets", 405),
    ],
)
def test_authenticated_responses_are_not_sniffed_or_cached(client, admin, method, path, expected):
    response = client.open(path, method=method, headers=admin.headers)
    assert response.status_code == expected
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_login_response_is_not_cached(client):
    response = client.post("/api/v1/auth/login", json={"email": "x@y.test", "password": "p"})
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"


def test_cors_is_off_by_default(client, admin):
    response = client.get("/api/v1/auth/me", headers={**admin.headers, "Origin": PANEL})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/api/v1/tickets", headers={"Origin": PANEL, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.fixture
def cors_client(make_app):
    return make_app(CORS_ORIGINS=[PANEL]).test_client()


def test_cors_allows_listed_origins(cors_client, admin):
    response = cors_client.get("/api/v1/auth/me", headers={**admin.headers, "Origin": PANEL})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PANEL
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


def test_cors_preflight_allows_the_authorization_header(cors_client):
    response = cors_client.options(
        "/api/v1/tickets",
        headers={
            "Origin": PANEL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PANEL
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


def test_cors_refuses_other_origins(cors_client, admin):
    response = cors_client.get(
        "/api/v1/auth/me", headers={**admin.headers, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_origins_are_read_from_the_environment():
    from tickets_service.config import from_environment

    config = from_environment({"CORS_ORIGINS": f"{PANEL}, https://ops.isp.example ,"})
    assert config["CORS_ORIGINS"] == [PANEL, "https://ops.isp.example"]
    assert from_environment({})["CORS_ORIGINS"] == []

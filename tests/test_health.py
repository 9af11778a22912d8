"""Issue 3, point 5: liveness and readiness probes."""

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:9/unreachable"


def test_healthz_answers_without_token_or_database(make_app):
    client = make_app(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"success": True, "data": {"status": "ok"}}


def test_readyz_runs_a_query_without_token(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["success"] is True
    assert response.json["data"]["database"] == "ok"


def test_readyz_is_503_in_the_envelope_when_database_is_unreachable(make_app):
    client = make_app(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.is_json
    assert response.json == {"success": False, "message": "Database unreachable."}

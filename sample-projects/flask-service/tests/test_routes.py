"""Tests of the HTTP routes."""


def test_health_is_ok(client):
    """The health check answers 200 with a JSON status."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_greet_uses_the_name(client):
    """The greeting contains the name from the URL."""
    response = client.get("/greet/Ada")
    assert response.status_code == 200
    assert response.get_json() == {"message": "Hello, Ada!"}


def test_greet_rejects_long_names(client):
    """Names longer than the limit are a client error."""
    response = client.get("/greet/" + "x" * 65)
    assert response.status_code == 400
    assert "longer than 64" in response.get_json()["error"]


def test_version_comes_from_config(client):
    """The version route reports the configured version."""
    assert client.get("/version").get_json() == {"version": "1.2.3"}


def test_unknown_route_is_404(client):
    """Routes that do not exist answer 404."""
    assert client.get("/nope").status_code == 404

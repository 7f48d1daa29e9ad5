"""A deliberately failing test, run by the `failing` CircleCI job.

It shows what a red job looks like locally: the failing step, the steps that
still run (`when: on_fail`, `store_test_results`) and the test summary.
"""

from app import create_app


def test_greeting_is_localised():
    """Fails on purpose: the service does not localise greetings (yet)."""
    client = create_app({"TESTING": True}).test_client()
    response = client.get("/greet/Ada", headers={"Accept-Language": "fr"})
    assert response.get_json() == {"message": "Bonjour, Ada!"}


def test_health_still_ok():
    """Passes: a failing job usually has passing tests too."""
    client = create_app({"TESTING": True}).test_client()
    assert client.get("/health").status_code == 200

"""Shared pytest fixtures."""

import pytest

from app import create_app


@pytest.fixture(name="client")
def fixture_client():
    """A test client of an application in testing mode."""
    application = create_app({"TESTING": True, "VERSION": "1.2.3"})
    return application.test_client()

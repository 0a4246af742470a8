import pytest

from tests.fakes import RandomSchemaAnswers, StubServer


@pytest.fixture
def stub_server():
    with StubServer() as server:
        yield server


@pytest.fixture
def random_server():
    """A model server whose answers are random but valid for the JSON schema each request sends."""
    with StubServer(respond=RandomSchemaAnswers()) as server:
        yield server

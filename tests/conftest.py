import pytest

from tests.fakes import StubServer


@pytest.fixture
def stub_server():
    with StubServer() as server:
        yield server

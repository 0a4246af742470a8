import itertools
from collections.abc import Iterator

import pytest

from tests.fakes import RandomSchemaAnswers, StubServer
from tests.services import postgres_server


@pytest.fixture
def stub_server():
    with StubServer() as server:
        yield server


@pytest.fixture
def random_server():
    """A model server whose answers are random but valid for the JSON schema each request sends."""
    with StubServer(respond=RandomSchemaAnswers()) as server:
        yield server


_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def database(postgres: str) -> str:
    """A fresh database of the session's Postgres server for each test."""
    import psycopg  # the [ray] extra (in [all]): only the tests that use Postgres need it

    name = f"aidsafe_{next(_databases)}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"

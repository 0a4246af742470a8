import itertools
import signal
from collections.abc import Iterator

import pytest

from tests import tiers
from tests.fakes import RandomSchemaAnswers, StubServer
from tests.services import postgres_server


def pytest_configure(config: pytest.Config) -> None:
    tiers.configure(config)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell without job control (`nohup pytest ... &`, a script's `cmd &`) starts pytest with
        # Ctrl-C ignored, and every child inherits it: the tests that press Ctrl-C need it
        # delivered as a terminal delivers it (a Python handler, unlike SIG_IGN, is not inherited).
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark_items(items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    tiers.check_needs(item)


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


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A real causal LM folder small enough to train in seconds: SmolLM2's own tokenizer and chat
    template (from the embedded GGUF) on a 2-layer Llama of width 32 with random weights, for the
    tests of `aidsafe train --base-model FOLDER`; the embedded 135M base has its own (slower) test."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from aidsafe.train.models import base_source

    folder = tmp_path_factory.mktemp("tiny-base")
    source = base_source("embedded")
    tokenizer = AutoTokenizer.from_pretrained(source["path"], gguf_file=source["gguf_file"])
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

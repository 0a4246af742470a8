"""The embedded default model: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct."""

from aidsafe.embedded.llama_server import MODEL_ALIAS, EmbeddedServer, shared_server

__all__ = ["MODEL_ALIAS", "EmbeddedServer", "shared_server"]

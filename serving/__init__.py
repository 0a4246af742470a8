"""aidsafe graphs over HTTP: a FastAPI app with LangServe routes, API-key auth and a body-size limit."""

from aidsafe.serving.app import CLIENT_FIELDS, GRAPHS, ServeSettings, create_app

__all__ = ["CLIENT_FIELDS", "GRAPHS", "ServeSettings", "create_app"]

"""aidsafe graphs over HTTP: a FastAPI app with LangServe routes, API-key auth and request limits.

`ServeSettings` imports without the serve extra (the CLI builds its flags from it); the app's
names are loaded on first use.
"""

from typing import Any

from aidsafe.serving.settings import ServeSettings

__all__ = ["CLIENT_FIELDS", "GRAPHS", "ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name in ("CLIENT_FIELDS", "GRAPHS", "create_app"):
        from aidsafe.serving import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

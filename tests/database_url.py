"""The DATABASE_URL of the database a test is using, for the processes tests start
(``manage.py`` commands, Celery workers): SQLite locally, PostgreSQL in CI."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest


def subprocess_database_url() -> str:
    """``sqlite:///...`` or ``postgres://...`` for the current test database; skips for
    another engine."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if "postgresql" in db["ENGINE"]:
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"
    pytest.skip(f"no subprocess support for the {db['ENGINE']} database")

"""pytest plugin that run.py loads (-p) into the SQLAlchemy suite.

SQLAlchemy's test provisioning (lib/sqlalchemy/dialects/postgresql/provision.py,
_create_citext_extension) runs CREATE EXTENSION IF NOT EXISTS citext and hstore on any
PostgreSQL 13 or later before the first test, and a failure there aborts the whole session
(INTERNALERROR, no test runs). Only tests of test/dialect/postgresql use those types, none of
the dialect compliance suite, so this makes each failure a printed warning instead: the
extensions are still created wherever the server can (on PostgreSQL, exactly as before).
"""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    from sqlalchemy import text
    from sqlalchemy.dialects.postgresql import provision as pg_provision
    from sqlalchemy.testing import provision

    def create_extensions(url, engine, follower_ident):
        for extension, min_version in pg_provision._extensions:
            with engine.connect() as conn:
                if conn.dialect.server_version_info < min_version:
                    continue
                try:
                    conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
                    conn.commit()
                except Exception as e:  # noqa: BLE001 - reported, then the run goes on
                    print(f"\nclients: CREATE EXTENSION {extension} failed, going on: "
                          f"{str(e).splitlines()[0]}")

    provision.post_configure_engine.fns["postgresql"] = create_extensions

"""The shared database fixtures give working, isolated databases."""

import asyncpg

from ges_bot.config import load_config


async def test_pg_fixture_gives_an_empty_database(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        tables = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
    finally:
        await conn.close()
    assert tables == []


def test_config_rejects_missing_credentials_with_a_fix() -> None:
    import pytest

    from ges_bot.errors import ConfigError

    with pytest.raises(ConfigError, match="HUAWEICLOUD_SDK_AK"):
        load_config({"GES_ENDPOINT": "http://127.0.0.1:1", "GES_PROJECT_ID": "abc123"})

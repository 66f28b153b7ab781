"""Alembic's environment script for ges-bot; the logic lives in :func:`ges_bot.store.migrate.run_env`.

Alembic loads this file by path (as module ``env_py``); importing it as
``ges_bot.store.migrations.env`` (tools that walk the package) does nothing.
"""

from ges_bot.store.migrate import run_env

if __name__ != "ges_bot.store.migrations.env":
    run_env()

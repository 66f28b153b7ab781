"""Alembic migrations of the store's schema (``env.py``, ``script.py.mako``, ``versions/``).

A package only so that ``env.py`` is installed with ges-bot; Alembic loads these files by path.
"""

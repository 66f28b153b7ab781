"""The GES side of ges-bot: everything that talks to a GES job center (or its emulator).

- :mod:`.client` — ``JobCenterClient``: typed query, paging, dedup, concurrency, retries, errors;
- :mod:`.auth` — ``httpx.Auth`` for a token, IAM password → token, and AK/SK signing;
- :mod:`.signing` — the ``SDK-HMAC-SHA256`` signature (pure; the emulator verifies with it);
- :mod:`.wire` — tolerant GES JSON ↔ domain types (pure).

Nothing is imported here on purpose: the emulator imports ``signing`` and ``wire`` without
pulling in the client, httpx or the settings.
"""

"""A faithful emulator of the GES job center (``GET /v2/{project_id}/graphs/jobs`` and one job's
status), of IAM's password → token API and of the API gateway's token and AK/SK checks — with a
control API for tests, fault injection, an emulated clock and seeded scenarios.

It lets the bot, its tests, the demo and Huawei's official SDK run against something that behaves
like GES without a cloud account. It must not import the bot's runtime (poller, store, Slack):
the only ges_bot modules it uses are :mod:`ges_bot.jobcenter.signing` (pure), :mod:`ges_bot.clock`
(the wall clock its emulated clock starts from) and, for its command line, :mod:`ges_bot.loopback`.

Entry points: :func:`create_app` (a Starlette app; state at ``app.state.emulator``),
:class:`EmulatorSettings`, and ``ges-bot emulator`` (:mod:`ges_bot.emulator.cli`).
"""

from ges_bot.emulator.app import create_app, emulator_state
from ges_bot.emulator.settings import EmulatorSettings
from ges_bot.emulator.state import EmulatorState

__all__ = ["EmulatorSettings", "EmulatorState", "create_app", "emulator_state"]

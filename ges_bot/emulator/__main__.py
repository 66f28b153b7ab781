"""``python -m ges_bot.emulator``: the ``ges-bot emulator`` command, standalone."""

from ges_bot.emulator.cli import main

raise SystemExit(main())

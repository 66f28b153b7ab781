"""``python -m ges_bot`` is the ``ges-bot`` command."""

from ges_bot.cli import main

raise SystemExit(main())

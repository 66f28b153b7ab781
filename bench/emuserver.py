"""The GES emulator as a benchmark's child process, preloaded with synthetic histories.

``python -m bench.emuserver --port P --spec JSON`` where the spec is
``{"histories": [History.to_json(), …], "max_limit": 1000, "order": "asc"}``. Building the jobs here, in the
emulator's own process, takes seconds for 100k jobs where posting them would take minutes.
"""

from __future__ import annotations

import argparse
import json

import uvicorn

from bench.support import History, synthetic_jobs
from ges_bot.emulator import EmulatorSettings, create_app
from ges_bot.emulator.state import EmulatorState


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", default="{}")
    args = parser.parse_args()
    spec = json.loads(args.spec)
    settings = EmulatorSettings(max_limit=int(spec.get("max_limit", 1000)), order=spec.get("order", "asc"))
    state = EmulatorState(settings)
    for data in spec.get("histories", []):
        state.insert_many(synthetic_jobs(History.from_json(data)))
    app = create_app(state=state)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

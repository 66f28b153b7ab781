"""The README's first command: `ges-bot demo` shows alerts and answers /gesjobs, with nothing to configure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_without_input_shows_alerts_and_answers_and_exits_0(tmp_path: Path) -> None:
    # A clean environment: the demo must need no configuration at all.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_", "HUAWEICLOUD_", "SLACK_"))}
    env["COLUMNS"] = "120"
    proc = subprocess.run(
        [sys.executable, "-m", "ges_bot", "demo", "--no-input", "--duration", "20", "--charts-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Alerts as the channel sees them: a panel titled with the channel, a failed import with its files.
    assert "#ges-alerts" in out
    assert re.search(r"ImportGraph (partially )?failed", out)
    assert re.search(r"(vertex|edge|schema) obs://", out), "per-file causes are shown"
    assert "Log: obs://" in out
    # The typed commands were answered through the real Slack request path.
    assert "/gesjobs failed today" in out
    assert re.search(r"\d+ jobs? match(es)? failed today", out), out[-4000:]
    assert "/gesjobs status" in out
    shown = re.search(r"demo finished: (\d+) message\(s\) posted", out)
    assert shown and int(shown.group(1)) >= 1
    # The charts it posted were written to the folder, and their paths printed.
    assert "/gesjobs stats today" in out
    charts = re.findall(r"📊 chart: (\S+\.png)", out)
    assert len(charts) == 2, out[-4000:]
    for chart in charts:
        assert Path(chart).parent == tmp_path
        assert Path(chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Traceback" not in proc.stderr


def test_demo_prompt_answers_a_typed_command_at_once() -> None:
    """A command typed the moment the prompt appears is answered (and `quit` ends the demo)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_", "HUAWEICLOUD_", "SLACK_"))}
    env["COLUMNS"] = "120"
    proc = subprocess.run(
        [sys.executable, "-m", "ges_bot", "demo", "--duration", "60"],
        env=env,
        input="failed today\nhelp\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"\d+ jobs? match(es)? failed today", proc.stdout), proc.stdout[-3000:]
    assert "/gesjobs subscribe prod-*" in proc.stdout  # the help answer
    assert "Traceback" not in proc.stderr

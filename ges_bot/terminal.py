"""Block Kit → terminal: shows a Slack message roughly as a channel would (demo, troubleshooting).

Pure conversion to ``rich`` renderables; the text it gets was already escaped for Slack by
``notify.mrkdwn``, so here it is only *un*-escaped for display, never sent anywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape as rich_escape
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

_DATE = re.compile(r"<!date\^(\d+)\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)\|([^>]+)>")
_BARE_LINK = re.compile(r"<((?:https?|mailto):[^>]+)>")
_MENTION = re.compile(r"<([@#!])([^|>]+)(?:\|([^>]+))?>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")


def _local_date(match: re.Match[str]) -> str:
    try:
        when = datetime.fromtimestamp(int(match.group(1)), UTC)
    except (ValueError, OverflowError):
        return match.group(2)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def mrkdwn_to_markup(text: str) -> str:
    """Slack mrkdwn → rich console markup (for display only)."""
    text = _DATE.sub(_local_date, text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = _BARE_LINK.sub(lambda m: m.group(1), text)
    text = _MENTION.sub(lambda m: m.group(3) or (m.group(1) + m.group(2)).replace("!", "@"), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    # Code spans are literal in Slack: emphasis is applied only outside them.
    parts = re.split(r"(```.*?```|`[^`\n]+`)", text, flags=re.DOTALL)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"[cyan]{rich_escape(part.strip('`'))}[/cyan]")
        else:
            plain = _BOLD.sub(lambda m: f"[bold]{m.group(1)}[/bold]", rich_escape(part))
            out.append(_ITALIC.sub(lambda m: f"[italic]{m.group(1)}[/italic]", plain))
    return "".join(out)


def _text_of(obj: Any) -> str:
    if not isinstance(obj, dict):
        return ""
    text = str(obj.get("text", ""))
    if obj.get("type") == "plain_text":
        return rich_escape(text)
    return mrkdwn_to_markup(text)


def block_to_renderable(block: dict[str, Any]) -> RenderableType | None:
    kind = block.get("type")
    if kind == "header":
        return Text.from_markup(f"[bold]{_text_of(block.get('text'))}[/bold]")
    if kind == "divider":
        return Rule(style="dim")
    if kind == "section":
        parts: list[RenderableType] = []
        if block.get("text"):
            parts.append(Text.from_markup(_text_of(block["text"])))
        fields = block.get("fields") or []
        if fields:
            table = Table.grid(padding=(0, 3))
            table.add_column()
            table.add_column()
            cells = [Text.from_markup(_text_of(f)) for f in fields]
            for i in range(0, len(cells), 2):
                table.add_row(*cells[i : i + 2], *([Text("")] if i + 1 >= len(cells) else []))
            parts.append(table)
        return Group(*parts)
    if kind == "context":
        items = [_text_of(e) for e in block.get("elements", []) if isinstance(e, dict) and "text" in e]
        return Text.from_markup("[dim]" + "  ·  ".join(items) + "[/dim]")
    if kind == "actions":
        labels = [_text_of(e.get("text")) for e in block.get("elements", []) if isinstance(e, dict)]
        return Text.from_markup("  ".join(f"[reverse] {label} [/reverse]" for label in labels))
    if kind == "rich_text":
        return Text(str(block))
    return None


def message_panel(payload: dict[str, Any], *, title: str | None = None, border_style: str = "blue") -> Panel:
    """A Slack message (``text`` + ``blocks``) as a rich panel."""
    blocks = payload.get("blocks") or []
    if isinstance(blocks, str):
        import json

        blocks = json.loads(blocks)
    renderables = [r for r in (block_to_renderable(b) for b in blocks if isinstance(b, dict)) if r is not None]
    if not renderables:
        renderables = [Text.from_markup(mrkdwn_to_markup(str(payload.get("text", ""))))]
    return Panel(Group(*renderables), title=title, title_align="left", border_style=border_style, expand=True)

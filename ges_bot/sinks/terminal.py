"""A group-bot message → the terminal, roughly as its chat would show it (demo, README pictures).

Pure conversion to ``rich`` renderables, for display only: the body was escaped for its platform,
so here entities are decoded and word joiners dropped, never sent anywhere.
"""

from __future__ import annotations

import html
import re
from typing import Any

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from ges_bot.sinks.common import WJ

__all__ = ["sink_panel"]

_LARK_COLOURS = {"red": "red", "orange": "dark_orange", "green": "green", "blue": "blue"}
_TEAMS_COLOURS = {"attention": "red", "warning": "dark_orange", "good": "green", "accent": "blue"}
_WECOM_COLOURS = {"warning": "dark_orange", "info": "green", "comment": "grey50"}


def _clean(text: str) -> str:
    return html.unescape(text.replace(WJ, ""))


def _md(text: str) -> RenderableType:
    return Markdown(_clean(text))


def _lark_md(content: str) -> RenderableType:
    """``lark_md``: fenced causes as indented monospace, the rest as markdown."""
    parts: list[RenderableType] = []
    for i, piece in enumerate(re.split(r"```\n?(.*?)\n?```", content, flags=re.DOTALL)):
        if i % 2:
            parts.append(Text("  " + _clean(piece).replace("\n", "\n  "), style="cyan"))
        elif piece.strip():
            parts.append(_md(piece.strip()))
    return Group(*parts)


def _lark(body: dict[str, Any]) -> tuple[str, str, list[RenderableType]]:
    card = body.get("card") or {}
    header = card.get("header") or {}
    title = str((header.get("title") or {}).get("content", ""))
    parts: list[RenderableType] = []
    for element in card.get("elements") or []:
        tag = element.get("tag")
        if tag == "hr":
            parts.append(Rule(style="dim"))
        elif tag == "note":
            notes = [str(e.get("content", "")) for e in element.get("elements") or []]
            parts.append(Text(_clean("  ·  ".join(notes)), style="dim"))
        elif tag == "div" and element.get("fields"):
            table = Table.grid(padding=(0, 3))
            table.add_column()
            table.add_column()
            cells: list[RenderableType] = [_md(str(f["text"]["content"])) for f in element["fields"]]
            for i in range(0, len(cells), 2):
                table.add_row(*cells[i : i + 2], *([Text("")] if i + 1 >= len(cells) else []))
            parts.append(table)
        elif tag == "div":
            text = element.get("text") or {}
            content = str(text.get("content", ""))
            parts.append(_lark_md(content) if text.get("tag") == "lark_md" else Text(content))
    return title, _LARK_COLOURS.get(str(header.get("template")), "blue"), parts


def _wecom_font(text: str) -> str:
    # <font color="…">x</font> → x (the colour goes to the panel border).
    return re.sub(r'<font color="[a-z]+">(.*?)</font>', r"\1", text, flags=re.DOTALL)


def _teams(body: dict[str, Any]) -> tuple[str, str, list[RenderableType]]:
    content = ((body.get("attachments") or [{}])[0]).get("content") or {}
    title, colour = "", "blue"
    parts: list[RenderableType] = []
    for element in content.get("body") or []:
        kind = element.get("type")
        if kind == "Container":
            colour = _TEAMS_COLOURS.get(str(element.get("style")), "blue")
            title = " ".join(_clean(str(i.get("text", ""))) for i in element.get("items") or [])
        elif kind == "FactSet":
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold")
            table.add_column()
            for fact in element.get("facts") or []:
                table.add_row(_clean(str(fact.get("title", ""))), _clean(str(fact.get("value", ""))))
            parts.append(table)
        elif kind == "TextBlock":
            text = _clean(str(element.get("text", "")))
            if element.get("fontType") == "Monospace":
                parts.append(Text(text, style="cyan"))
            elif element.get("isSubtle"):
                parts.append(Text(text, style="dim"))
            else:
                parts.append(Markdown(text))
    return title, colour, parts


def sink_panel(platform: str, body: dict[str, Any], *, title: str | None = None) -> Panel:
    """``body`` (as sent to ``platform``'s webhook) as a rich panel."""
    if platform == "lark":
        head, colour, parts = _lark(body)
        renderables: list[RenderableType] = [Text(head, style=f"bold {colour}"), *parts]
    elif platform == "dingtalk":
        colour = "blue"
        renderables = [_md(str((body.get("markdown") or {}).get("text", "")))]
    elif platform == "wecom":
        content = str((body.get("markdown") or {}).get("content", ""))
        first = content.split('color="', 1)[1].split('"', 1)[0] if 'color="' in content else "comment"
        colour = _WECOM_COLOURS.get(first, "blue")
        # WeCom breaks lines where the text does; markdown would fold single newlines.
        renderables = [_md(_wecom_font(content).replace("\n", "  \n"))]
    elif platform == "teams":
        head, colour, parts = _teams(body)
        renderables = [Text(head, style=f"bold {colour}"), *parts]
    else:
        colour, renderables = "blue", [Text(str(body.get("text", "")))]
    return Panel(Group(*renderables), title=title or platform, title_align="left", border_style=colour, expand=True)

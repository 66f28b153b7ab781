"""The terminal view shows Slack text readably and never interprets it as console markup."""

from rich.console import Console

from ges_bot.terminal import message_panel, mrkdwn_to_markup


def test_mrkdwn_becomes_readable_markup() -> None:
    text = "*Reason*\n```disk &lt;full&gt; [red]x[/red]``` `p` <!date^1714979289^{date_short_pretty}|fb> <@U123>"
    assert mrkdwn_to_markup(text) == (
        "[bold]Reason[/bold]\n[cyan]disk <full> \\[red]x\\[/red][/cyan] [cyan]p[/cyan] 2024-05-06 07:08 UTC @U123"
    )


def test_emphasis_never_reaches_into_code_spans() -> None:
    text = "• `/gesjobs subscribe prod-*` — when a graph matching `prod-*` fails, *bold* _it_"
    assert mrkdwn_to_markup(text) == (
        "• [cyan]/gesjobs subscribe prod-*[/cyan] — when a graph matching [cyan]prod-*[/cyan] fails, "
        "[bold]bold[/bold] [italic]it[/italic]"
    )


def test_a_whole_message_renders_with_fields_and_buttons() -> None:
    payload = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "🔴 ImportGraph failed · [movies]"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Graph*\n`movies`"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "+ 2 files imported OK"}]},
            {"type": "divider"},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Details"}}]},
        ],
    }
    console = Console(width=80, record=True, color_system=None)
    console.print(message_panel(payload, title="#alerts"))
    out = console.export_text()
    assert "#alerts" in out
    assert "🔴 ImportGraph failed · [movies]" in out
    assert "Graph" in out and "movies" in out
    assert "+ 2 files imported OK" in out
    assert "Details" in out


def test_text_only_message_falls_back_to_text() -> None:
    console = Console(width=60, record=True, color_system=None)
    console.print(message_panel({"text": "just *text*"}))
    assert "just text" in console.export_text()

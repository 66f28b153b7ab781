"""ges_bot.notify.mrkdwn: escaping, inert code spans, date tokens, durations, truncation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ges_bot.notify.mrkdwn import (
    NOTHING,
    Mrkdwn,
    channel_link,
    code,
    code_block,
    date_token,
    duration,
    escape,
    fit,
    join,
    mention,
    mrkdwn_text,
    plain,
    plain_text,
    slack_len,
    truncate,
    trusted,
)

# Text that exercises everything mrkdwn cares about: entities, markup, backticks, astral emoji.
nasty = st.lists(
    st.sampled_from([*"<>&`*_~|@!#^ \n\t", "a", "é", "😀", "&amp;", "<!channel>", "<@U123>"]), max_size=30
).map("".join)
any_text = nasty | st.text(max_size=80)
ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def test_escape_escapes_ampersand_first_then_angle_brackets() -> None:
    assert escape("<!channel> & <@U123>") == "&lt;!channel&gt; &amp; &lt;@U123&gt;"
    # An already escaped entity is shown as typed, not turned live.
    assert escape("&lt;!here&gt;") == "&amp;lt;!here&amp;gt;"
    assert isinstance(escape("x"), Mrkdwn)


@given(any_text)
def test_escaped_text_has_no_live_markup(text: str) -> None:
    out = escape(text)
    assert "<" not in out
    assert ">" not in out
    assert not ENTITY.search(out)
    assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


@given(any_text, st.integers(min_value=0, max_value=60))
def test_fit_stays_within_limit_and_never_cuts_an_entity(text: str, limit: int) -> None:
    out = fit(text, limit)
    assert slack_len(out) <= limit
    assert "<" not in out
    assert not ENTITY.search(out)
    if slack_len(escape(text)) <= limit:
        assert out == escape(text)
    elif limit >= 1:
        assert out.endswith("…")


def test_fit_counts_escaped_length() -> None:
    assert fit("&&&&", 10) == "&amp;…"
    assert fit("abc", 3) == "abc"


def test_truncate_counts_utf16_units() -> None:
    assert slack_len("😀") == 2
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("😀😀😀", 5) == "😀😀…"
    assert truncate("short", 10) == "short"
    with pytest.raises(ValueError, match="negative"):
        truncate("x", -1)


@given(any_text, st.integers(min_value=0, max_value=50))
def test_truncate_respects_limit(text: str, limit: int) -> None:
    out = truncate(text, limit)
    assert slack_len(out) <= limit
    if slack_len(text) <= limit:
        assert out == text


def test_code_span_is_inert() -> None:
    assert code("movies") == "`movies`"
    assert code("a `b` <!here>\nnext") == "`a ˋbˋ &lt;!here&gt; next`"
    assert code(None) == NOTHING
    assert code("  \n ") == NOTHING


@given(any_text, st.integers(min_value=3, max_value=200))
def test_code_span_holds_exactly_two_backticks(text: str, limit: int) -> None:
    out = code(text, limit)
    assert slack_len(out) <= limit
    assert "<" not in out
    assert "\n" not in out
    assert out == NOTHING or (out.count("`") == 2 and out.startswith("`") and out.endswith("`"))


@given(any_text)
def test_code_block_cannot_be_closed_early(text: str) -> None:
    out = code_block(text, 300)
    assert slack_len(out) <= 300
    assert out == NOTHING or (out.startswith("```") and out.endswith("```") and "`" not in out[3:-3])
    assert "<" not in out


def test_plain_text_is_trimmed_never_empty() -> None:
    assert plain("<!channel>") == "<!channel>"  # plain_text is shown as typed: nothing to escape
    assert plain("") == NOTHING
    assert plain(None) == NOTHING
    assert plain("x" * 200, 150) == "x" * 149 + "…"
    assert plain_text("hi") == {"type": "plain_text", "text": "hi", "emoji": True}


def test_mrkdwn_text_objects_are_verbatim() -> None:
    assert mrkdwn_text("*x*") == {"type": "mrkdwn", "text": "*x*", "verbatim": True}


def test_date_token_renders_in_reader_zone_with_utc_fallback() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert date_token(when) == "<!date^1704164645^{date_short_pretty} {time}|2024-01-02 03:04 UTC>"
    assert date_token(when, "{date_num}") == "<!date^1704164645^{date_num}|2024-01-02 03:04 UTC>"
    # Another zone is the same instant; a naive time can only mean UTC.
    plus8 = when.astimezone(timezone(timedelta(hours=8)))
    assert date_token(plus8) == date_token(when)
    assert date_token(when.replace(tzinfo=None)) == date_token(when)


@pytest.mark.parametrize("fmt", ["{date}|x", "<b>", "{date}^x"])
def test_date_token_refuses_formats_that_break_the_token(fmt: str) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        date_token(datetime(2024, 1, 1, tzinfo=UTC), fmt)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=42), "42s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(minutes=4, seconds=5), "4m 05s"),
        (timedelta(hours=1, minutes=4, seconds=59), "1h 04m"),
        (timedelta(days=3, hours=2, minutes=30), "3d 2h"),
        (timedelta(days=400), "400d 0h"),
    ],
)
def test_duration(delta: timedelta, text: str) -> None:
    assert duration(delta) == text


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("U0123ABC", "<@U0123ABC>"),
        ("W999", "<@W999>"),
        ("u0123abc", None),
        ("U123>", None),
        ("<!channel>", None),
        ("U123|x", None),
        ("C123", None),
        ("", None),
        (None, None),
    ],
)
def test_mention_only_from_a_slack_user_id(user: str | None, expected: str | None) -> None:
    assert mention(user) == expected


def test_channel_link_only_from_a_slack_channel_id() -> None:
    assert channel_link("C0123") == "<#C0123>"
    assert channel_link("C01|evil") is None
    assert channel_link("U123") is None


def test_join_escapes_only_untrusted_parts() -> None:
    out = join(trusted("*Graph* "), code("g"), " said <!here> & left")
    assert out == "*Graph* `g` said &lt;!here&gt; &amp; left"
    assert isinstance(out, Mrkdwn)
    # Concatenating two safe parts gives a plain str again: treated as untrusted (escaped twice, never live).
    assert join(trusted("<@U1>") + "x") == "&lt;@U1&gt;x"


@settings(max_examples=50)
@given(st.lists(any_text, max_size=5))
def test_join_of_untrusted_parts_is_inert(parts: list[str]) -> None:
    assert "<" not in join(*parts)

"""PNG charts of :class:`ges_bot.stats.Stats`, drawn server-side with matplotlib (Agg).

Owns how a chart looks: size, fonts, colours, hatching and labels. Made for Slack: an opaque
light background (readable in both the light and the dark theme, where a transparent chart
would put dark text on a dark sidebar), fonts big enough at Slack's 360–500 px preview width,
Okabe–Ito colours that survive red-green colour blindness — with the alerts' emoji intent
(🟢 success, 🟠 partially failed, 🔴 failed, 🔵 running) — and a hatch per outcome, so colour
is never the only cue.

Rendering is CPU work (~0.1–0.3 s): callers on the event loop use ``await asyncio.to_thread(...)``.
No pyplot: pyplot keeps global figure state that is not thread-safe; a bare ``Figure`` with an
Agg canvas is, and a lock keeps matplotlib's shared caches (fonts, text layout) single-threaded.
Pure apart from CPU: stats in, PNG bytes out.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal, TypeAlias, TypeVar

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ges_bot.stats import OUTCOMES, Outcome, Stats

__all__ = [
    "BACKGROUND",
    "COLORS",
    "DPI",
    "FIGSIZE",
    "ChartKind",
    "render",
    "render_daily",
    "render_durations",
    "render_graphs",
]

ChartKind: TypeAlias = Literal["daily", "graphs", "durations"]

#: Okabe–Ito: bluish green, orange, vermillion, blue — distinct under deuteranopia and protanopia.
COLORS: dict[Outcome, str] = {
    "success": "#009E73",
    "partial": "#E69F00",
    "failed": "#D55E00",
    "running": "#0072B2",
}
#: Hatches: failures are striped, so they stand apart in greyscale too.
HATCHES: dict[Outcome, str] = {"success": "", "partial": "..", "failed": "///", "running": "xx"}
LABELS: dict[Outcome, str] = {
    "success": "succeeded",
    "partial": "partially failed",
    "failed": "failed",
    "running": "still running",
}
#: Opaque white with Slack's own text colour: legible on both themes.
BACKGROUND = "#FFFFFF"
_TEXT = "#1D1C1D"
_GRID = "#DDDDDD"
_P50 = "#0072B2"
_P95 = "#56B4E9"
#: 8 × 4.5 in at 150 dpi = 1200 × 675 px: sharp on high-density screens, and with 15–20 pt text
#: still ~13 px tall when Slack shrinks it to a 500 px preview.
FIGSIZE = (8.0, 4.5)
DPI = 150
_TITLE_PT = 19
_TICK_PT = 15
_LABEL_PT = 14
_NAME_CHARS = 22

_LOCK = threading.Lock()
_T = TypeVar("_T")


def render(stats: Stats, kind: ChartKind, title: str) -> bytes:
    """The PNG of one chart kind."""
    if kind == "graphs":
        return render_graphs(stats, title)
    if kind == "durations":
        return render_durations(stats, title)
    return render_daily(stats, title)


def _figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, facecolor=BACKGROUND, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor(BACKGROUND)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(_TEXT)
    ax.tick_params(colors=_TEXT, labelsize=_TICK_PT)
    return fig, ax


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    # No metadata: the same stats give byte-identical PNGs (and no matplotlib version leaks).
    fig.savefig(out, format="png", facecolor=BACKGROUND, metadata={"Software": None})
    return out.getvalue()


def _title(ax: Axes, title: str, *, room_for_legend: bool = False) -> None:
    # On the figure, not the axes: long graph names push the axes right, and a title that starts
    # there runs off the picture. The layout engine keeps a legend above the plot below it.
    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    fig.suptitle(title, x=0.01, ha="left", fontsize=_TITLE_PT, color=_TEXT, parse_math=False)


def _empty(ax: Axes, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.spines["bottom"].set_visible(False)
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=_TITLE_PT, color=_TEXT)


def _top_legend(ax: Axes, *, reverse: bool = False) -> None:
    """A one-row legend above the plot, under the title: it never hides a bar."""
    handles, labels = ax.get_legend_handles_labels()
    if reverse:
        handles, labels = _reverse(handles), _reverse(labels)
    ax.legend(
        handles,
        labels,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=len(labels),
        fontsize=_LABEL_PT,
        frameon=False,
        labelcolor=_TEXT,
        handlelength=1.6,
        columnspacing=1.0,
        borderaxespad=0.2,
    )


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[: _NAME_CHARS - 1] + "…"


def _day_labels(stats: Stats) -> list[str]:
    days = [d.day for d in stats.days]
    if len(days) <= 8:
        return [f"{d:%a}\n{d.day}" for d in days]
    if len(days) <= 16:
        return [f"{d.day}\n{d:%b}" if i == 0 or d.day == 1 else f"{d.day}" for i, d in enumerate(days)]
    step = -(-len(days) // 12)
    return [f"{d:%d %b}" if i % step == 0 else "" for i, d in enumerate(days)]


def render_daily(stats: Stats, title: str) -> bytes:
    """Jobs per local day, stacked by outcome (success at the base), totals above each bar."""
    with _LOCK:
        fig, ax = _figure()
        _title(ax, title)
        if not any(d.total for d in stats.days):
            _empty(ax, "No jobs in this period")
            return _png(fig)
        x = list(range(len(stats.days)))
        bottom = [0] * len(x)
        width = 0.72 if len(x) > 1 else 0.4
        for outcome in OUTCOMES:
            heights = [d.get(outcome) for d in stats.days]
            total = sum(heights)
            if not total:
                continue
            bars = ax.bar(
                x,
                heights,
                width,
                bottom=bottom,
                color=COLORS[outcome],
                hatch=HATCHES[outcome],
                edgecolor=BACKGROUND,
                linewidth=0.8,
                label=f"{LABELS[outcome]} ({total})",
            )
            for bar in bars:
                bar.set_hatch_linewidth(1.6)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        top = max(bottom)
        if len(x) <= 16:
            for xi, height in zip(x, bottom, strict=True):
                if height:
                    ax.text(
                        xi, height + top * 0.015, str(height), ha="center", va="bottom", fontsize=_LABEL_PT, color=_TEXT
                    )
        ax.set_xticks(x, _day_labels(stats))
        ax.set_xlim(-0.6, len(x) - 0.4)
        ax.set_ylim(0, top * 1.15)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.grid(axis="y", color=_GRID, linewidth=1)
        ax.set_axisbelow(True)
        legend = ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=_LABEL_PT,
            frameon=False,
            labelcolor=_TEXT,
            handleheight=1.4,
            handlelength=1.6,
        )
        for handle in legend.legend_handles:
            if handle is not None and hasattr(handle, "set_hatch_linewidth"):
                handle.set_hatch_linewidth(1.6)
        return _png(fig)


def render_graphs(stats: Stats, title: str) -> bytes:
    """Failure rate per graph (failed stacked with partially failed), worst first, each bar
    labelled "failures/finished"; beyond the top N the rest are one "others" bar."""
    with _LOCK:
        fig, ax = _figure()
        _title(ax, title, room_for_legend=True)
        rows = [g for g in stats.graphs if g.finished]
        if not rows:
            _empty(ax, "No finished jobs in this period")
            return _png(fig)
        rows = list(reversed(rows))  # barh draws bottom-up; the worst goes on top
        y = list(range(len(rows)))
        failed = [g.failed / g.finished for g in rows]
        partial = [g.partial / g.finished for g in rows]
        height = 0.7
        ax.barh(
            y, failed, height, color=COLORS["failed"], hatch=HATCHES["failed"], edgecolor=BACKGROUND, label="failed"
        )
        ax.barh(
            y,
            partial,
            height,
            left=failed,
            color=COLORS["partial"],
            hatch=HATCHES["partial"],
            edgecolor=BACKGROUND,
            label="partially failed",
        )
        right = min(1.0, max(0.5, max(g.rate for g in rows) + 0.22))
        for yi, g in zip(y, rows, strict=True):
            ax.text(
                g.rate + right * 0.015,
                yi,
                f"{g.failures}/{g.finished} · {g.rate * 100:.0f}%",
                va="center",
                ha="left",
                fontsize=_LABEL_PT,
                color=_TEXT,
            )
        # Graph names are GES's text: shown as typed, never read as mathtext (`$…$`).
        ax.set_yticks(y, [_short(g.graph) for g in rows], parse_math=False)
        ax.tick_params(axis="y", labelsize=_TICK_PT if len(rows) <= 8 else _LABEL_PT - 1)
        ax.set_xlim(0, right)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(axis="x", color=_GRID, linewidth=1)
        ax.set_axisbelow(True)
        _top_legend(ax)
        return _png(fig)


def _minutes(seconds: float) -> str:
    return _span_text(timedelta(seconds=seconds))


def _span_text(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h"


def render_durations(stats: Stats, title: str) -> bytes:
    """p50 and p95 duration per job type (slowest p95 on top), in minutes, values labelled."""
    with _LOCK:
        fig, ax = _figure()
        _title(ax, title, room_for_legend=True)
        rows = list(reversed(stats.durations))
        if not rows:
            _empty(ax, "No finished jobs in this period")
            return _png(fig)
        y = list(range(len(rows)))
        height = 0.38
        p95 = [r.p95_s / 60 for r in rows]
        p50 = [r.p50_s / 60 for r in rows]
        ax.barh([v + height / 2 for v in y], p95, height, color=_P95, hatch="//", edgecolor=BACKGROUND, label="p95")
        ax.barh([v - height / 2 for v in y], p50, height, color=_P50, edgecolor=BACKGROUND, label="p50 (median)")
        right = max(p95) or 1.0
        for yi, r in zip(y, rows, strict=True):
            for offset, value in ((height / 2, r.p95_s), (-height / 2, r.p50_s)):
                ax.text(
                    value / 60 + right * 0.01,
                    yi + offset,
                    _minutes(value),
                    va="center",
                    fontsize=_LABEL_PT - 2,
                    color=_TEXT,
                )
        ax.set_yticks(y, [f"{_short(r.name)} ({r.count})" for r in rows], parse_math=False)
        ax.set_xlim(0, right * 1.18)
        ax.set_xlabel("minutes", fontsize=_LABEL_PT, color=_TEXT)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(axis="x", color=_GRID, linewidth=1)
        ax.set_axisbelow(True)
        _top_legend(ax, reverse=True)
        return _png(fig)


def _reverse(items: Sequence[_T]) -> list[_T]:
    return list(reversed(items))

"""One picture per scenario: each strategy's download times along the timeline, events marked.

Written next to the Markdown file ``make bench`` updates (``BENCHMARKS-<key>.png``) and
shown there. Needs matplotlib (the ``bench`` extra); without it no picture is drawn.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import events
from bench.run import ScenarioResult

#: One colour and marker per strategy, the same in every picture.
STYLE: dict[str, tuple[str, str]] = {
    "location_order": ("#8c8c8c", "s"),
    "store_type": ("#d62728", "v"),
    "random": ("#bcbd22", "x"),
    "metrics": ("#1f77b4", "o"),
    "metrics (no progress)": ("#17becf", "^"),
    "metrics (fleet prior)": ("#2ca02c", "D"),
    "oracle": ("#000000", "."),
    "fetch": ("#ff7f0e", "P"),
    "fetch --sources auto": ("#9467bd", "*"),
    "aria2c": ("#8c564b", "d"),
}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def picture_path(out: Path, key: str) -> Path:
    return out.with_name(f"{out.stem}-{key}.png")


def plot(result: ScenarioResult, path: Path) -> Path:
    """Top: each download's seconds (log scale) at its start; bottom: the running total.

    Every strategy downloads the same images at the same instants, so the
    running totals part exactly where one strategy chose worse than another.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    s = result.scenario
    fig, (each, total) = plt.subplots(
        2, 1, figsize=(10, 7.5), dpi=100, sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    for name, downloads in result.downloads.items():
        colour, marker = STYLE.get(name, ("#7f7f7f", "+"))
        points = sorted((d.start, d.seconds) for d in downloads)
        starts = [p[0] for p in points]
        strong = name.startswith(("metrics", "oracle", "fetch"))
        each.scatter(
            starts,
            [p[1] for p in points],
            label=name,
            color=colour,
            marker=marker,
            s=22 if strong else 14,
            alpha=0.9 if strong else 0.55,
        )
        running, acc = [], 0.0
        for _, seconds in points:
            acc += seconds
            running.append(acc)
        total.step(
            starts,
            running,
            where="post",
            label=name,
            color=colour,
            linewidth=2.0 if strong else 1.1,
            alpha=0.95 if strong else 0.7,
            linestyle=(0, (4, 3)) if name == "oracle" else "-",  # lets a line under it show
            zorder=3 if name == "oracle" else 2,
        )
    each.set_yscale("log")
    # Labels at 1, 2, 5 per decade only: readable, never crowded.
    each.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    each.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    each.yaxis.set_minor_formatter(NullFormatter())
    each.set_ylabel("one download (s, log scale)")
    total.set_ylabel("running total of download time (s)")
    total.set_xlabel("download start (s after the first download)")
    fig.suptitle(f"({s.key}) {s.title}", fontsize=11)
    for ax in (each, total):
        ax.grid(True, which="major", alpha=0.3)
    for n, (label, at) in enumerate(events(result)):
        for ax in (each, total):
            ax.axvline(at, color="#444444", linestyle="--", linewidth=1)
        each.annotate(
            label,
            (at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -4 - 11 * (n % 2)),
            textcoords="offset points",
            fontsize=8,
            color="#222222",
            va="top",
        )
    total.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

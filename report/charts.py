"""PNG charts (matplotlib, Agg backend: no display needed). Optional: without the `report` extra
the report is written without charts and says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aidsafe.state.evaluation import RUBRICS

FILE_LABELS = {"run": "AIDSAFE", "baseline": "baseline"}


def pyplot() -> Any | None:
    """`matplotlib.pyplot` on the Agg backend, or None without the `report` extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_charts(summary: dict[str, Any], directory: Path) -> list[str]:
    """Write the charts the summary has data for; returns their file names."""
    plt = pyplot()
    if plt is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    distributions = summary["score_distributions"]
    if distributions:
        fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharey=True)
        for ax, rubric in zip(axes.flat, RUBRICS, strict=True):
            counts = distributions.get(rubric, {})
            for offset, file in ((-0.2, "run"), (0.2, "baseline")):
                if any(counts.get(file, {}).values()):
                    scores = counts[file]
                    ax.bar([s + offset for s in range(1, 6)], [scores[s] for s in range(1, 6)], width=0.4,
                           label=FILE_LABELS[file])  # fmt: skip
            ax.set_title(summary["metrics"].get(rubric, {}).get("label", rubric), fontsize=9)
            ax.set_xticks(range(1, 6))
        axes.flat[0].legend()
        fig.supxlabel("score")
        fig.supylabel("samples")
        fig.tight_layout()
        fig.savefig(directory / "scores.png", dpi=100)
        plt.close(fig)
        written.append("scores.png")
    pairwise = summary["pairwise"]
    if pairwise["n"]:
        fig, ax = plt.subplots(figsize=(7, 1.8))
        left = 0.0
        for verdict, color in (("win", "tab:green"), ("tie", "tab:gray"), ("loss", "tab:red")):
            rate = pairwise["rates"][verdict]
            ax.barh([0], [rate], left=left, color=color, label=f"{verdict} {rate:.0%}")
            left += rate
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.set_title(f"AIDSAFE vs baseline, pairwise judge ({pairwise['n']} pairs)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
        fig.tight_layout()
        fig.savefig(directory / "pairwise.png", dpi=100)
        plt.close(fig)
        written.append("pairwise.png")
    if summary.get("agreement") and summary["agreement"]["overall"]:
        agreement_chart(plt, summary["agreement"]["overall"], directory / "agreement.png")
        written.append("agreement.png")
    return written


def agreement_chart(plt: Any, overall: dict[str, Any], path: Path) -> None:
    """Per rubric: the judge's κ against people with its bootstrap interval, beside the people's α."""
    names = list(overall)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for offset, label, color, values in (
        (-0.2, "judge vs people: κ quadratic (95% interval)", "tab:blue",
         [(overall[n]["judge"] or {}).get("kappa") for n in names]),
        (0.2, "people vs people: Krippendorff's α", "tab:orange",
         [{"value": overall[n]["people"]["alpha"]} if overall[n]["people"] else None for n in names]),
    ):  # fmt: skip
        shown = [(i, v) for i, v in enumerate(values) if v and v["value"] is not None]
        if not shown:
            continue
        heights = [v["value"] for _, v in shown]
        spans = [
            [max(0, v["value"] - v["low"]) if v.get("low") is not None else 0 for _, v in shown],
            [max(0, v["high"] - v["value"]) if v.get("high") is not None else 0 for _, v in shown],
        ]
        ax.bar([i + offset for i, _ in shown], heights, width=0.4, color=color, label=label, yerr=spans, capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("agreement")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

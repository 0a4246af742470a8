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
    lowest = 0.0
    judged = [(i, overall[n]["judge"]) for i, n in enumerate(names) if overall[n]["judge"]]
    kappas: list[tuple[int, dict[str, Any]]] = [(i, j["kappa"]) for i, j in judged if j["kappa"]["value"] is not None]
    if kappas:
        values = [k["value"] for _, k in kappas]
        spans = [
            [max(0, k["value"] - k["low"]) if k["low"] is not None else 0 for _, k in kappas],
            [max(0, k["high"] - k["value"]) if k["high"] is not None else 0 for _, k in kappas],
        ]
        ax.bar([i - 0.2 for i, _ in kappas], values, width=0.4, color="tab:blue", yerr=spans, capsize=3,
               label="judge vs people: κ quadratic (95% interval)")  # fmt: skip
        lowest = min(lowest, *(k["low"] if k["low"] is not None else k["value"] for _, k in kappas))
    alphas = [(i, overall[n]["people"]["alpha"]) for i, n in enumerate(names) if overall[n]["people"]]
    alphas = [(i, a) for i, a in alphas if a is not None]
    if alphas:
        ax.bar([i + 0.2 for i, _ in alphas], [a for _, a in alphas], width=0.4, color="tab:orange",
               label="people vs people: Krippendorff's α")  # fmt: skip
        lowest = min(lowest, *(a for _, a in alphas))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(lowest - 0.05, 1.05)
    ax.set_ylabel("agreement")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

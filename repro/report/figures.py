"""Figure 3 and Figure 4 as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from repro.eval.metrics import CHANCE
from repro.report.views import METHOD_NAMES

SOURCE_NAMES = {"finetuned": "Fine-tuned knowledge", "pretrained": "Pre-trained knowledge"}
AXES = (("forgotten_unlearn", "Forgotten D_unlearn"), ("retained_retain", "Retained D_retain"),
        ("retained_mmbench", "Retained MMBench"))


def plot_figure3(data: dict, path: Path, errors: dict | None = None) -> None:
    """One panel per knowledge source; per method, three bars: forgotten% and the two retained%; with
    `errors` (the same layout: a standard deviation across seeds), error bars."""
    if not data:
        return
    fig, axes = plt.subplots(1, len(data), figsize=(5.5 * len(data), 4), sharey=True, squeeze=False)
    for ax, (source, per) in zip(axes[0], data.items()):
        methods = list(per)
        width = 0.8 / len(AXES)
        for j, (field, label) in enumerate(AXES):
            xs = [i + (j - 1) * width for i in range(len(methods))]
            ys = [per[m][field] or 0.0 for m in methods]
            err = None if errors is None else [errors[source][m][field] or 0.0 for m in methods]
            bars = ax.bar(xs, ys, width, label=label, yerr=err, capsize=3 if err else 0)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(len(methods)), [METHOD_NAMES.get(m, m) for m in methods])
        ax.set_title(SOURCE_NAMES.get(source, source))
        ax.set_ylim(0, 110)
        ax.axhline(100, color="grey", lw=0.5)
    axes[0][0].set_ylabel("% (higher is better)")
    axes[0][-1].legend(loc="upper right", fontsize=8)
    fig.suptitle("Figure 3: unlearning fine-tuned vs pre-trained knowledge")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_figure4(data: dict, path: Path, bands: dict | None = None) -> None:
    """Accuracy after 0..5 sequential requests: one panel per split, one line per method; with `bands` (the
    same layout: a standard deviation across seeds), a band of one standard deviation around each line."""
    if not any(data.values()):
        return
    titles = {"unlearn": "D_unlearn (lower is better)", "retain": "D_retain", "mmbench": "MMBench"}
    fig, axes = plt.subplots(1, len(data), figsize=(4.5 * len(data), 3.6), sharey=True, squeeze=False)
    for ax, (split, per) in zip(axes[0], data.items()):
        for method, values in per.items():
            xs = [k for k, v in enumerate(values) if v is not None]
            line, = ax.plot(xs, [values[k] for k in xs], marker="o", label=METHOD_NAMES.get(method, method))
            if bands is not None:
                sd = [bands[split][method][k] or 0.0 for k in xs]
                ax.fill_between(xs, [values[k] - d for k, d in zip(xs, sd)], [values[k] + d for k, d in zip(xs, sd)],
                                color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(CHANCE, color="grey", ls="--", lw=0.8, label="chance")
        ax.set_title(titles[split])
        ax.set_xlabel("number of unlearning requests")
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Figure 4: sustainability under five sequential requests")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

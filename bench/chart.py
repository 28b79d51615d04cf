"""The PNG: one panel per workload, seconds per tool, copy on top and the no-op re-run below."""

from __future__ import annotations

from typing import Any

import matplotlib

COLOURS = {"s3s3": "tab:green", "rclone": "tab:blue", "raw": "tab:grey"}


def plot(rows: list[dict[str, Any]], tools: list[str], workloads: list[str], path: str) -> None:
    """Draw grouped bars of seconds (lower is better); a failed tool gets a 'failed' label instead of a bar."""
    matplotlib.use("Agg")  # no display here; must be chosen before pyplot is imported
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(workloads), figsize=(4 * len(workloads), 7), squeeze=False)
    for col, workload in enumerate(workloads):
        for row, mode in enumerate(("copy", "no-op")):
            ax = axes[row][col]
            for i, tool in enumerate(tools):
                match = [r for r in rows if r["tool"] == tool and r["workload"] == workload and r["mode"] == mode]
                seconds = match[0]["seconds"] if match else None
                if seconds is None:
                    ax.text(i, 0, "failed", ha="center", va="bottom", rotation=90, color="tab:red")
                    continue
                ax.bar(i, seconds, color=COLOURS.get(tool, "tab:orange"))
                ax.text(i, seconds, f"{seconds:.2f}", ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(tools)), tools)
            ax.set_title(f"{workload} {mode}")
            ax.set_ylabel("seconds (lower is better)")
            ax.margins(y=0.15)
    fig.suptitle("SeaweedFS -> SeaweedFS on loopback")
    fig.tight_layout()
    fig.savefig(path, dpi=60)  # small enough to commit (docs/bench.png)
    plt.close(fig)

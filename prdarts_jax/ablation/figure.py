"""The ablation's figure: retrained test accuracy against parameters, one colour per variant;
each seed a small dot, the variant's mean a large marker with ± one standard deviation of the
seeds on both axes."""

from __future__ import annotations

from typing import Mapping, Sequence

from prdarts_jax.ablation.results import SeedResult


def draw(results: Mapping[str, Sequence[SeedResult]], path: str) -> bool:
    """Writes the figure to `path` (PNG); False (nothing written) when no seed is retrained."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    done = {name: [r for r in rs if r.test_acc is not None and r.params is not None]
            for name, rs in results.items()}
    if not any(done.values()):
        return False
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    colours = plt.get_cmap("tab10")
    for i, (name, rs) in enumerate(done.items()):
        if not rs:
            continue
        x = np.array([r.params / 1e3 for r in rs])
        y = np.array([r.test_acc for r in rs])
        c = colours(i % 10)
        ax.scatter(x, y, s=14, color=c, alpha=0.5)
        ax.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=1) if len(rs) > 1 else None,
                    yerr=y.std(ddof=1) if len(rs) > 1 else None, fmt="o", ms=7, color=c,
                    capsize=3, label=f"{name} ({len(rs)} seed{'s' * (len(rs) > 1)})")
    ax.set_xlabel("parameters of the retrained network (thousands)")
    ax.set_ylabel("test accuracy (retrained)")
    ax.set_title("Ablation: what each variant buys")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True

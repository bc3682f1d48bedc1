"""A progress bar on a terminal, nothing otherwise (logs and pipes stay clean)."""

from __future__ import annotations

import sys


class Progress:
    """tqdm on a tty; `active` says whether it draws, so callers log instead when it does not."""

    def __init__(self, total: int, desc: str):
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    @property
    def active(self) -> bool:
        return self.bar is not None

    def update(self, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()}, refresh=False)
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

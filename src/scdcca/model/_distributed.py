"""What DCCA needs to know about distributed (Lightning DDP) training."""

from __future__ import annotations

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.strategies import DDPStrategy, Strategy


def is_ddp(strategy: str | Strategy | None) -> bool:
    """Whether a Lightning ``strategy`` argument asks for data-parallel (DDP) training."""
    if isinstance(strategy, str):
        return "ddp" in strategy
    return isinstance(strategy, DDPStrategy)


def is_rank_zero() -> bool:
    """Whether this process is the one that writes results (rank 0, or not distributed)."""
    return getattr(rank_zero_only, "rank", 0) == 0

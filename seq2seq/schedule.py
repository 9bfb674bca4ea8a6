"""Every learning-rate shape of the project, and the plateau controller of the warmup-stable-anneal schedule.

Pure functions of a step (or of the fraction of a run done) and small stateful schedulers: the generator warm start,
the ID phase and the recommender trainer (both engines, DeepSpeed through a client scheduler) take their rates from
here, so one schedule means the same thing wherever it is used.
"""
from __future__ import annotations


def warmup_constant(step: int, lr: float, warmup: int) -> float:
    """Linear warmup over ``warmup`` steps (the first step already at lr / warmup), then constant."""
    return lr * min(1.0, (step + 1) / max(1, warmup))


def warmup_decay_lr(step: int, lr: float, warmup: int, total: int) -> float:
    """DeepSpeed's WarmupDecayLR (linear warmup from 0, then linear decay to 0 at ``total``) at optimizer step
    ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    return lr * max(0.0, (total - step) / max(total - warmup, 1))


def warmup_stable_anneal(done: float, lr: float, warmup: float, annealed: float | None) -> float:
    """Warmup, then a constant rate until an anneal starts, then a linear anneal to 0 (a "WSD" schedule):
    ``done`` and ``warmup`` are fractions of the run's optimizer steps; ``annealed`` is the fraction of the anneal done
    (None before it starts). The trainer starts the anneal when validation stops improving, or when what is left of
    the run is one anneal long, so the run's length follows the data instead of a budget fixed beforehand."""
    if warmup > 0 and done < warmup:
        return lr * done / warmup
    return lr if annealed is None else lr * max(0.0, 1.0 - annealed)


def run_done(steps: int, total: int) -> float:
    """The fraction of a run done (0 to 1), counted in optimizer steps. Never in seconds: a schedule that followed
    a clock would take other steps on another machine or beside another job, and a seed would not reproduce."""
    return min(steps / max(total, 1), 1.0)


class WarmupStableAnnealLR:
    """``warmup_stable_anneal`` as a scheduler stepped once per optimizer step, by ``TorchEngine`` or by DeepSpeed
    (as a client scheduler, saved in its checkpoints through ``state_dict``). ``warmup`` and ``total`` are optimizer
    steps."""

    def __init__(self, optimizer, lr: float, warmup: int, total: int):
        self.optimizer, self.lr, self.warmup, self.total = optimizer, lr, warmup, max(total, 1)
        self.steps = 0
        self.anneal: list[int] | None = None  # [first step, steps] once the anneal has started
        self._apply()

    def start_anneal(self, steps: int) -> None:
        self.anneal = [self.steps, max(1, steps)]

    def annealed(self) -> float | None:
        """The fraction of the anneal done (None before it starts)."""
        return None if self.anneal is None else (self.steps - self.anneal[0]) / self.anneal[1]

    def get_last_lr(self) -> list[float]:
        done = run_done(self.steps, self.total)
        return [warmup_stable_anneal(done, self.lr, self.warmup / self.total, self.annealed())]

    def step(self, **_) -> None:
        self.steps += 1
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.get_last_lr()[0]

    def state_dict(self) -> dict:
        return {"steps": self.steps, "anneal": self.anneal}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.anneal = state["steps"], state["anneal"]
        self._apply()


class PlateauControl:
    """When the warmup-stable-anneal schedule anneals: at a plateau of validation, or when what is left of the run
    (in optimizer steps) is one anneal long, so that the anneal ends with the run. A plateau is ``patience``
    validations without a new best, the latest of them below the best by at least ``margin`` of its standard errors,
    after at least ``min_epochs`` epochs: on a thousand validation users NDCG@10 moves by about a standard error from
    one epoch to the next, so "no new best" alone anneals runs that are still improving. Keeps no state of its own:
    the trainer's state holds the count (``stale``)."""

    def __init__(self, patience: int, anneal_steps: int, margin: float = 0.0, min_epochs: int = 0):
        self.patience, self.anneal_steps = patience, max(1, anneal_steps)
        self.margin, self.min_epochs = margin, min_epochs

    def left_is_one_anneal(self, steps_done: int, total_steps: int) -> bool:
        return total_steps - steps_done <= self.anneal_steps

    def after_validation(self, stale: int, improved: bool, shortfall_se: float = 0.0,
                         epochs_done: int = 0) -> tuple[int, bool]:
        """(validations without a new best, whether to anneal now); ``shortfall_se``: how far the latest validation
        is below the best, in standard errors of the latest (0 when it is the best)."""
        stale = 0 if improved else stale + 1
        return stale, stale >= self.patience and shortfall_se >= self.margin and epochs_done >= self.min_epochs


def shortfall_in_se(best: float, latest: float, se: float | None) -> float:
    """How far ``latest`` is below ``best`` in standard errors (``se``; unknown or 0: any shortfall is infinite)."""
    gap = best - latest
    if gap <= 0:
        return 0.0
    return gap / se if se else float("inf")

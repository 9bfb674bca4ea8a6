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


def warmup_decay_fraction(done: float, lr: float, warmup: float) -> float:
    """The same shape over the fraction ``done`` of a run (0 to 1), ``warmup`` a fraction too: how the schedule
    follows a time budget, so that the learning rate reaches 0 when the budget ends."""
    if warmup > 0 and done < warmup:
        return lr * done / warmup
    return lr * max(0.0, (1.0 - done) / max(1.0 - warmup, 1e-9))


def warmup_stable_anneal(done: float, lr: float, warmup: float, annealed: float | None) -> float:
    """Warmup, then a constant rate until an anneal starts, then a linear anneal to 0 (a "WSD" schedule):
    ``done`` and ``warmup`` are fractions of the run as above; ``annealed`` is the fraction of the anneal done
    (None before it starts). The trainer starts the anneal when validation stops improving, or when what is left of
    the run is one anneal long, so the run's length follows the data instead of a budget fixed beforehand."""
    if warmup > 0 and done < warmup:
        return lr * done / warmup
    return lr if annealed is None else lr * max(0.0, 1.0 - annealed)


def run_done(steps: int, total: int, budget=None) -> float:
    """The fraction of a run done (0 to 1): the larger of its optimizer steps' and, with a ``budget`` clock, of its
    time budget's, so that the schedule follows whichever runs out first."""
    return min(max(budget() if budget else 0.0, steps / max(total, 1)), 1.0)


class WarmupStableAnnealLR:
    """``warmup_stable_anneal`` as a scheduler stepped once per optimizer step, by ``TorchEngine`` or by DeepSpeed
    (as a client scheduler, saved in its checkpoints through ``state_dict``). ``warmup`` and ``total`` are optimizer
    steps; ``budget`` (optional): a clock giving the fraction of a time budget spent, which leads when it is ahead."""

    def __init__(self, optimizer, lr: float, warmup: int, total: int, budget=None):
        self.optimizer, self.lr, self.warmup, self.total, self.budget = optimizer, lr, warmup, max(total, 1), budget
        self.steps = 0
        self.anneal: list[int] | None = None  # [first step, steps] once the anneal has started
        self._apply()

    def start_anneal(self, steps: int) -> None:
        self.anneal = [self.steps, max(1, steps)]

    def annealed(self) -> float | None:
        """The fraction of the anneal done (None before it starts)."""
        return None if self.anneal is None else (self.steps - self.anneal[0]) / self.anneal[1]

    def get_last_lr(self) -> list[float]:
        done = run_done(self.steps, self.total, self.budget)
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
    """When the warmup-stable-anneal schedule anneals: after ``patience`` validations without a new best, or when
    what is left of the run (steps, or the time budget at the measured seconds per step) is one anneal long, so that
    the anneal ends with the run. Keeps no state of its own: the trainer's state holds the count (``stale``)."""

    def __init__(self, patience: int, anneal_steps: int):
        self.patience, self.anneal_steps = patience, max(1, anneal_steps)

    def left_is_one_anneal(self, steps_done: int, total_steps: int, seconds_left: float | None,
                           step_s: float) -> bool:
        left = total_steps - steps_done
        if seconds_left is not None:
            left = min(left, seconds_left / max(step_s, 1e-9))
        return left <= self.anneal_steps

    def after_validation(self, stale: int, improved: bool) -> tuple[int, bool]:
        """(validations without a new best, whether to anneal now)."""
        stale = 0 if improved else stale + 1
        return stale, stale >= self.patience

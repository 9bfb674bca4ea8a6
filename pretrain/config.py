"""The recommender trainer's config: one dataclass, its flags' help, and the CPU recipe that ``bench/quality.py``
starts from."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CPU_RECIPE = Path(__file__).resolve().parent / "recipes" / "quality_cpu.yaml"
# Fields that only choose ranking levers after training: they change no trained weight, so a run's fingerprint
# leaves them out (a model trained before one existed, or with another value, is the same training; the choice is
# made again where the summary lacks it).
AFTER_TRAINING = ("eval_id_prior_grid",)


@dataclass
class TrainConfig:
    """The recommender trainer's config. Its defaults are the measured recipe (label smoothing 0.1, every dropout
    off, a 5% warmup, the warmup-stable-anneal schedule with patience 2 and a one-epoch anneal, the repeat bias
    chosen on validation: docs/ablations.md); recipe files hold only what differs (sizes, engine, epochs)."""

    shards: Path | None = None
    out: Path | None = None
    tokenizer: Path | None = None
    init: Path | None = None
    model_size: str | None = None
    zero_stage: int = 1
    micro_batch: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    clip: float = 1.0
    epochs: int = 1
    save_every: int = 200
    log_every: int = 10
    max_source_tokens: int = 512
    max_target_tokens: int = 32
    loader_workers: int = 0
    bf16: bool = False
    seed: int = 0
    valid_catalog: Path | None = None
    valid_ids: Path | None = None
    eval_beams: int = 20
    eval_batch_size: int = 64
    log_samples: bool = False
    collective_timeout_hours: float = 6.0
    engine: str = "deepspeed"
    length_group_window: int = 32
    time_budget_s: float = 0.0
    max_steps: int = 0
    warmup_ratio: float = 0.05
    label_smoothing: float = 0.1
    dropout: float | None = 0.0
    decay_norms: bool = False
    redraw_templates: bool = False
    history_crop: float = 0.0
    successor_targets: float = 0.0
    eval_length_penalty: float = 1.0
    eval_repeat_bias_grid: list[float] = field(default_factory=lambda: [0, 0.5, 1, 2, 4, 8])
    eval_id_prior_grid: list[float] = field(default_factory=list)
    select_with_repeats: bool = False
    valid_max_users: int = 0
    test_max_users: int = 0
    valid_from: float = 0.0
    anneal_patience: int = 2
    anneal_epochs: float = 1.0
    anneal_from_best: bool = False
    anneal_margin_se: float = 0.0
    anneal_min_epochs: int = 0

    def check(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage must be 0..3, got {self.zero_stage}")
        if self.micro_batch < 1 or self.grad_accum < 1 or self.epochs < 1:
            raise ValueError("micro_batch, grad_accum and epochs must be >= 1")
        if (self.valid_catalog is None) != (self.valid_ids is None):
            raise ValueError("give both valid_catalog and valid_ids, or neither")
        if self.engine not in ("deepspeed", "torch"):
            raise ValueError(f"engine must be deepspeed or torch, got {self.engine!r}")
        for name in ("history_crop", "successor_targets"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a share of the samples (0 to 1), got {getattr(self, name)}")
        if not 0.0 <= self.valid_from <= 1.0:
            raise ValueError(f"valid_from is a fraction of the run (0 to 1), got {self.valid_from}")
        if self.engine == "torch" and self.zero_stage:
            raise ValueError("engine torch is one process: set zero_stage 0")
        if self.anneal_patience < 0 or self.anneal_epochs <= 0:
            raise ValueError("anneal_patience must be >= 0 and anneal_epochs > 0")
        if self.anneal_margin_se < 0 or self.anneal_min_epochs < 0:
            raise ValueError("anneal_margin_se and anneal_min_epochs must be >= 0")


HELP = {"micro_batch": "samples per rank per forward/backward pass",
        "warmup_steps": "optimizer steps of linear warmup (warmup_ratio, when > 0, sets it from the run's length)",
        "clip": "gradient-norm clipping threshold", "epochs": "passes over the shards",
        "log_every": "optimizer steps between metrics.jsonl records",
        "max_target_tokens": "target (item ID) tokens kept",
        "loader_workers": "data-loader worker processes per rank (0: in the training process)",
        "eval_beams": "beam width of validation and test (>= 10)",
        "collective_timeout_hours": "how long ranks wait in a collective (rank 0 validates while the others wait)",
        "shards": "folder written by idgenrec shards", "out": "run folder (checkpoints, exports, metrics.jsonl)",
        "tokenizer": "tokenizer directory (when not starting from --init)",
        "init": "HuggingFace T5 directory to start from (e.g. a local t5-small)",
        "model_size": "size when starting fresh: tiny (the default), mini, small or a YAML path; with init it must "
                      "match the checkpoint's architecture",
        "zero_stage": "DeepSpeed ZeRO stage 0-3", "grad_accum": "micro-batches per optimizer step",
        "save_every": "optimizer steps between checkpoints",
        "valid_catalog": "catalog for validation-based model selection", "valid_ids": "its ID folder",
        "log_samples": "write the keys of the samples each rank trained on (samples_rank<R>_epoch<E>.txt)",
        "engine": "deepspeed (any number of processes, ZeRO) or torch (one process, no DeepSpeed)",
        "length_group_window": "micro-batches whose samples are sorted by length together (0: off)",
        "time_budget_s": "one process only: a time limit: end training (as if at an epoch end) after this many "
                         "seconds (0: none). It stops the run where it is and never reshapes the schedule, which "
                         "counts optimizer steps only, so the same seed takes the same steps on any machine",
        "max_steps": "end training (as if at an epoch end) after this many optimizer steps (0: none)",
        "warmup_ratio": "warmup as a fraction of the run's optimizer steps (> 0 overrides warmup_steps; 0: "
                        "warmup_steps)",
        "label_smoothing": "label smoothing of the target-token cross-entropy",
        "dropout": "every dropout of the model at this rate (attention too; none: the checkpoint's or the size's own)",
        "decay_norms": "apply weight decay to layer norms and biases too (default: only to weight matrices)",
        "redraw_templates": "draw every recommendation sample's prompt template again each epoch",
        "history_crop": "each epoch, cut this share of the recommendation samples' histories to a random number of "
                        "their most recent items (1 to all; 0: off): teaches item-to-item transitions",
        "successor_targets": "each epoch, give this share of the recommendation samples another target drawn "
                             "among the training successors of their last history item, as often as each follows "
                             "it (0: off): the Markov chain's distribution mixed into the labels",
        "eval_length_penalty": "beam score = log p / length ** this, in validation and test decoding",
        "eval_repeat_bias_grid": "after training, the best epoch's validation tries repeat-aware ranking (the "
                                 "user's history items at the model's score + a bias; recommender/repeats.py) with "
                                 "each of these biases and off; test takes the winner (empty: off)",
        "eval_id_prior_grid": "after training, the best epoch's validation tries the ID prior correction (each ID's "
                              "score lowered by beta x its score after an empty history; recommender/id_prior.py) "
                              "with each of these betas and off, together with the repeat bias; test takes the "
                              "winner (empty: off)",
        "select_with_repeats": ("choose the repeat bias at every validated epoch too, so that epoch selection and "
                                "the plateau follow the ranking test will use (NDCG@10 at the epoch's best bias); "
                                "off: they follow the beams alone and only the best epoch's bias is chosen"),
        "valid_max_users": "select epochs on the first N validation users (0: all)",
        "test_max_users": "test the selected model on the first N test users only (0: all), for smoke runs; the "
                          "summary records the test as partial",
        "valid_from": "validate only epochs that end after this fraction of the run's epochs (the last epoch "
                      "always is): when the best epochs are the last ones, this saves validations that cost a fifth "
                      "of an epoch each on CPU",
        "anneal_patience": "0: the learning rate decays linearly over the whole run (its epochs). N: it stays at lr "
                           "after warmup until validation NDCG@10 has not improved for N validated epochs (see "
                           "anneal_margin_se, anneal_min_epochs), or until what is left of the run's epochs is one "
                           "anneal long; then it anneals linearly to 0 over anneal_epochs and training ends",
        "anneal_epochs": "length of that anneal, in epochs (fractions allowed)",
        "anneal_margin_se": "a plateau also needs the latest validation NDCG@10 below the best by at least this many "
                            "of its standard errors (0: any shortfall), so that noise alone cannot end a run that "
                            "is still improving",
        "anneal_min_epochs": "no plateau anneal before this many epochs have been trained",
        "anneal_from_best": "rewind to the best validated epoch (weights and optimizer state) before annealing"}


def warmup_of(cfg: TrainConfig, total_steps: int) -> int:
    """Warmup optimizer steps: a fraction of the run when ``warmup_ratio`` is set, else ``warmup_steps``."""
    return round(cfg.warmup_ratio * total_steps) if cfg.warmup_ratio > 0 else min(cfg.warmup_steps, total_steps)

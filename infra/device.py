"""Which device a job runs on (``auto``, the default of every job, takes a GPU when one is present), and what
memory a process has used."""
from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None -> cuda if available else cpu; ``cpu``, ``cuda`` or ``cuda:N`` as given (cuda without a GPU
    is an error, not a silent fallback)."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is available (use auto or cpu)")
    return device


def peak_rss_mb() -> float:
    """Peak resident memory of this process (an actor's, when called inside one), in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

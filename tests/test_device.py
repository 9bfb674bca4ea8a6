"""Every job uses a GPU when one is present (device auto), and ID actors ask Ray for a GPU share when the cluster
has GPUs. (This machine has no GPU: the decisions are tested as the pure functions they are.)"""
import dataclasses

import pytest
import torch

from cluster.alternate import AlternateConfig
from cluster.idjob import IDJobConfig
from cluster.ray_session import gpu_share
from cluster.zeroshot import ZeroShotConfig
from eval.evaluate import EvalConfig
from eval.sasrec import SASRecConfig
from idgen.warmstart import WarmStartConfig
from infra.device import resolve_device


@pytest.mark.parametrize("cls", [EvalConfig, IDJobConfig, ZeroShotConfig, AlternateConfig, SASRecConfig,
                                 WarmStartConfig])
def test_every_job_defaults_to_auto(cls):
    assert {f.name: f.default for f in dataclasses.fields(cls)}["device"] == "auto"


def test_resolve_device():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            resolve_device("cuda")


def test_gpu_share_for_ray_workers():
    assert gpu_share("auto", 0, 2) == (0.0, "cpu")  # a CPU cluster
    assert gpu_share("auto", 1, 2) == (0.5, "cuda")  # two actors share the one GPU
    assert gpu_share("auto", 8, 2) == (1.0, "cuda")  # at most one GPU each
    assert gpu_share("cpu", 4, 2) == (0.0, "cpu")
    assert gpu_share("auto", 1, 6) == (pytest.approx(1 / 6), "cuda")  # zero-shot: 2 datasets x (2 actors + task)
    assert gpu_share("cuda", 1, 2, per_worker=0.25) == (0.25, "cuda")
    with pytest.raises(ValueError, match="the Ray cluster has no GPU"):
        gpu_share("cuda", 0, 2)

"""A Ray actor holding one ID generator: loads the model once, proposes candidates for shards of texts."""
from __future__ import annotations


import ray

from infra.device import peak_rss_mb


@ray.remote(num_cpus=1, max_restarts=3, max_task_retries=3)
class GeneratorActor:
    def __init__(self, model_dir: str, algorithm1: dict, batch_size: int, max_source_tokens: int, device: str):
        import torch

        from idgen.algorithm1 import Algorithm1Config
        from idgen.proposer import Proposer
        from seq2seq.model import load_model_and_tokenizer

        torch.set_num_threads(1)  # one CPU per actor; also keeps float sums identical whatever the actor count
        model, tok = load_model_and_tokenizer(model_dir)
        self.proposer = Proposer(model, tok, Algorithm1Config(**algorithm1), batch_size, max_source_tokens, device)

    def propose(self, shard: int, texts: list[str], states: list[tuple[int, int]]) -> list[list[str]]:
        return self.proposer.propose(texts, states)

    def peak_memory_mb(self) -> float:
        return peak_rss_mb()

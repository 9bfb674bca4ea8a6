"""One-process GPU run on real data: quality and speed measured side by side with the stock approach.

Quality: the standard recipe (``cluster.standard``, the same code as ``idgenrec standard`` and the demo) on Beauty
with GPU sizes: tokenizer, generator warm start, item IDs by Algorithm 1 in this process, shards, the recommender by
our trainer (engine torch, bf16, time budget, validation selection), test HR/NDCG@5/10 of ours, SASRec and
popularity on the same users. Speed, on the same card in the same run (``bench/speed.py``), each against the best
stock setup its users would run: trie decoding vs ``generate`` + a Python trie on the same users and batch; ID
generation vs a one-item loop on the same items; training vs a plain bf16 loop over the same steps; peak memory.

Needs no Ray or DeepSpeed; WebDataset comes as a carried wheel (bench/gpu_run.sh). Results go to ``--out``
(``gpu_run.json`` after every phase, so a cut-off run still reports), work files to ``--work``; a table is printed
last. ``--smoke`` runs the same code at tiny sizes on CPU (the test suite does).

    bash bench/gpu_run.sh                      # on the GPU machine, output under $OUT
    python bench/gpu_run.py --smoke --data ../shared/data/Beauty --out /tmp/smoke
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Phases, numeric_stack  # noqa: E402  (puts the repo on the path)
from speed import decoding_speed, id_generation_speed, training_speed  # noqa: E402

from eval.metrics import METRICS  # noqa: E402

import torch  # noqa: E402

log = logging.getLogger("idgenrec.gpu_run")
RECIPE = REPO / "configs" / "beauty.yaml"  # the recommender recipe (the same defaults as a user's Beauty run)


@dataclass
class Sizes:
    """GPU defaults fit about 7 minutes on one H100/H200; ``SMOKE`` a minute on 2 CPU cores."""

    users: int = 0                 # 0: all users; else a seeded slice
    vocab_size: int = 8000
    generator: str = "mini"
    warmstart_steps: int = 1500
    warmstart_batch: int = 128
    warmstart_lr: float = 3e-3
    recommender: str = "small"
    train_epochs: int = 3
    micro_batch: int = 128
    train_budget_s: float = 170.0
    eval_batch: int = 512
    sasrec_epochs: int = 200       # early stopping on validation (patience 10), as RecBole
    stock_users: int = 256         # decoding: ours and transformers on the same users ...
    decode_batch: int = 64         # ... at the same batch
    decode_users: int = 4096       # ours at a larger batch, shown apart
    decode_large_batch: int = 256
    serial_items: int = 200        # ID generation: ours and the one-item loop on the same items
    idgen_batch: int = 512
    train_bench_steps: int = 60


SMOKE = Sizes(users=80, vocab_size=600, generator="tiny", warmstart_steps=300, warmstart_batch=32, warmstart_lr=1e-2,
              recommender="tiny", train_epochs=2, micro_batch=16, train_budget_s=0, eval_batch=64, sasrec_epochs=2,
              stock_users=8, decode_batch=4, decode_users=64, decode_large_batch=32, serial_items=8, idgen_batch=64,
              train_bench_steps=4)


def quality(args, sz: Sizes, work: Path, device: torch.device) -> dict:
    from catalog.tokenizer import TokenizerConfig
    from cluster.idjob import IDJobConfig
    from cluster.standard import StandardConfig, run_standard
    from eval.sasrec import SASRecConfig
    from idgen.warmstart import WarmStartConfig
    from infra.config import load_config
    from pretrain.shards import ShardsConfig
    from pretrain.train import TrainConfig

    cuda = device.type == "cuda"
    std = StandardConfig(data=args.data, out=work, domain="Beauty", users=sz.users, procs=1, device=str(device),
                         tokenizer=TokenizerConfig(vocab_size=sz.vocab_size),
                         warmstart=WarmStartConfig(model_size=sz.generator, steps=sz.warmstart_steps,
                                                   batch_size=sz.warmstart_batch, lr=sz.warmstart_lr),
                         ids=IDJobConfig(actors=0), shards=ShardsConfig(samples_per_shard=20000),
                         sasrec=SASRecConfig(epochs=sz.sasrec_epochs))
    rec = replace(load_config(TrainConfig, RECIPE), model_size=sz.recommender, engine="torch", zero_stage=0,
                  micro_batch=sz.micro_batch, epochs=sz.train_epochs, save_every=10 ** 9, log_every=50, bf16=cuda,
                  eval_batch_size=sz.eval_batch, time_budget_s=sz.train_budget_s)  # the recipe, sized
    return run_standard(std, rec, warm={"bf16": cuda})


def models(work: Path, name: str, device: torch.device):
    """A trained model of the run (bf16 on a GPU) and its tokenizer."""
    from seq2seq.model import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(work / name)
    model = model.to(device).eval()
    return (model.to(torch.bfloat16) if device.type == "cuda" else model), tok


def decoding(sz: Sizes, work: Path, device: torch.device) -> dict:
    from catalog.id_table import item_id_tokens
    from catalog.split import samples
    from catalog.store import read_catalog
    from recommender.prompts import render_prompt

    cat = read_catalog(work / "catalog")
    model, tok = models(work, "recommender/best", device)
    texts, tokens = item_id_tokens(work / "ids", cat.item_ids, tok)
    id_of = dict(zip(cat.item_ids, texts))
    prompts = [render_prompt([id_of[i] for i in s.history]) for s in samples(cat.sequences, "test")]
    prompts = (prompts * (sz.decode_users // max(len(prompts), 1) + 1))[: sz.decode_users]
    return decoding_speed(model, tok, tokens, prompts, sz.stock_users, sz.decode_batch, sz.decode_large_batch)


def id_generation(sz: Sizes, work: Path, device: torch.device) -> dict:
    from catalog.store import read_catalog

    cat = read_catalog(work / "catalog")
    model, tok = models(work, "generator", device)
    return id_generation_speed(model, tok, cat.texts[: sz.serial_items], sz.idgen_batch)


def table(r: dict) -> str:
    def f(x, nd=1):
        return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, (int, float)) else str(x))

    env, q = r.get("env", {}), r.get("quality") or {}
    rows = [f"IDGenRec GPU run, {env.get('gpu', env.get('device'))}, {env.get('date')}, wall {r.get('wall_s')} s",
            f"quality ({q.get('dataset')} test, {q.get('users')} users)  HR@5    HR@10   NDCG@5  NDCG@10"]
    for name, m in (("IDGenRec (ours)", q.get("ours")), ("SASRec", q.get("sasrec")),
                    ("popularity", q.get("popularity"))):
        test = (m or {}).get("test") or {}
        rows.append(f"  {name:30s} " + " ".join(f"{f(test.get(k), 4):7s}" for k in METRICS))
    d, i, t = r.get("decoding") or {}, r.get("ID generation") or {}, r.get("training") or {}
    rows.append("speed                          ours        stock       ratio   peak MB ours / stock")
    for name, x, ours, stock, ratio, peaks in (
            ("decoding users/s", d, "ours_users_per_s", "transformers_python_trie_users_per_s", "ratio_vs_python_trie",
             ("ours_peak_mb", "transformers_python_trie_peak_mb")),
            ("ID generation items/s", i, "ours_items_per_s", "one_at_a_time_items_per_s", "ratio",
             ("ours_peak_mb", "one_at_a_time_peak_mb")),
            ("training samples/s", t, "ours_samples_per_s", "plain_transformers_samples_per_s", "ratio",
             ("ours_peak_mb", "plain_peak_mb"))):
        rows.append(f"  {name:28s} {f(x.get(ours)):>10s}  {f(x.get(stock)):>10s}  {f(x.get(ratio)):>6s}x  "
                    f"{f(x.get(peaks[0]))} / {f(x.get(peaks[1]))}")
    rows.append(f"    decoding: same top-20 as stock {f(d.get('same_top20_fraction'), 3)}, top-1 "
                f"{f(d.get('same_top1_fraction'), 3)}; unconstrained generate "
                f"{f(d.get('transformers_unconstrained_users_per_s'))} users/s; ours at batch {d.get('large_batch')} "
                f"over {d.get('large_batch_users')} users: {f(d.get('ours_large_batch_users_per_s'))} users/s")
    rows.append(f"    Algorithm 1 over all {q.get('items')} items, every round: "
                f"{f(q.get('seconds', {}).get('item IDs'))} s")
    rows.append("baselines:")
    rows += [f"  {n}: {x.get('baseline_setup', '-')}" for n, x in (("decoding", d), ("ID generation", i),
                                                                     ("training", t))]
    if r.get("errors"):
        rows.append(f"  failed phases: {', '.join(r['errors'])} (tracebacks in gpu_run.json)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / ".gpu_data" / "Beauty",
                    help="Beauty in the shared layout (user_sequence.txt, items.jsonl.gz)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_run")))
    ap.add_argument("--work", type=Path, default=Path("/tmp/idgenrec_gpu_run"), help="work files (not returned)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: checks the script end to end")
    ap.add_argument("--device", default=None, help="default: cuda if available (cpu with --smoke)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sz = SMOKE if args.smoke else Sizes()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    shutil.rmtree(args.work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    run = Phases(args.out / "gpu_run.json", device)
    run.results["env"] = {"python": platform.python_version(), "device": str(device),
                          "date": time.strftime("%Y-%m-%d"), "smoke": args.smoke, **numeric_stack()} | (
        {"gpu": torch.cuda.get_device_name(0)} if device.type == "cuda" else {})
    run.results["sizes"] = asdict(sz)
    w = args.work
    run.phase("quality", lambda: quality(args, sz, w, device))
    run.phase("decoding", lambda: decoding(sz, w, device))
    run.phase("ID generation", lambda: id_generation(sz, w, device))
    run.phase("training", lambda: training_speed(w / "shards", w / "generator", sz.recommender, sz.micro_batch,
                                                 sz.train_bench_steps, w / "train_speed", device))
    text = table(run.results)
    (args.out / "table.txt").write_text(text + "\n")
    print("\n" + text)
    return 1 if run.results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

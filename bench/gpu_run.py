"""One-process GPU run on real data: quality and speed measured side by side with the stock approach.

Beauty end to end in the standard setting (tokenizer, generator warm start, item IDs by Algorithm 1, shards, the
recommender trained by our trainer with validation-based selection, test HR/NDCG@5/10), SASRec and popularity on the
same users; then speed on the same card in the same run, each against its stock counterpart:

  decoding      20 beams over the whole item-ID trie: ours vs transformers ``generate`` + a Python trie callback vs
                unconstrained ``generate`` (users/s; and how many users got the same top-20)
  ID generation Algorithm 1 (k = 10 groups) over the whole catalog: ours (batched) vs a one-item-at-a-time loop
  training      our trainer (pretrain.train, engine torch) vs a plain transformers loop, same micro-batch
  memory        peak GPU memory of each

Needs no Ray or DeepSpeed (single-process paths); WebDataset comes as a carried wheel (bench/gpu_run.sh).
Everything goes to ``--out`` (results JSON after every phase, so a cut-off run still reports), work files to
``--work``; a short table is printed last. ``--smoke`` runs the same code at tiny sizes on CPU (the test suite does).

    bash bench/gpu_run.sh                      # on the GPU machine, output under $OUT
    python bench/gpu_run.py --smoke --data ../shared/data/Beauty --out /tmp/smoke
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO as ROOT, stock_generate_kwargs, stock_rankings  # noqa: E402  (puts the repo on the path)

import torch  # noqa: E402

log = logging.getLogger("idgenrec.gpu_run")


@dataclass
class Sizes:
    """What each phase does; GPU defaults fit about 7 minutes on one H100/H200, ``smoke`` a minute on 2 CPU cores."""

    users: int = 0                 # 0: all users of the dataset; else a seeded slice (smoke)
    kcore: int = 5
    vocab_size: int = 8000
    generator: str = "mini"
    warmstart_steps: int = 1500
    warmstart_batch: int = 128
    warmstart_lr: float = 3e-3
    idgen_batch: int = 512
    serial_items: int = 200        # the one-item loop runs on this many items
    recommender: str = "small"
    train_epochs: int = 3
    micro_batch: int = 128
    train_budget_s: float = 170.0
    eval_batch: int = 512
    sasrec_epochs: int = 200          # early stopping on validation (patience 10), as RecBole
    decode_users: int = 4096       # ours at a larger batch (labelled, beside the fair figure)
    stock_users: int = 256         # ours and transformers with / without the trie callback, same users
    decode_batch: int = 64         # the batch of that comparison
    decode_large_batch: int = 256
    train_bench_steps: int = 60


SMOKE = Sizes(users=80, kcore=1, vocab_size=600, generator="tiny", warmstart_steps=300, warmstart_batch=32,
              warmstart_lr=1e-2,
              idgen_batch=64, serial_items=8, recommender="tiny", train_epochs=2, micro_batch=16, train_budget_s=0,
              eval_batch=64, sasrec_epochs=2, decode_users=64, stock_users=8, decode_batch=4, decode_large_batch=32,
              train_bench_steps=4)


class Run:
    """Results so far, rewritten to ``out/gpu_run.json`` after each phase; a failed phase is recorded, not fatal."""

    def __init__(self, out: Path, device: torch.device):
        self.out, self.device, self.results = out, device, {"phases": {}, "errors": {}}
        self.t0 = time.time()

    def phase(self, name: str, fn) -> object:
        log.info("== %s", name)
        reset_peak(self.device)
        t = time.time()
        try:
            value = fn()
        except Exception as e:  # keep going: the other phases still measure something
            log.error("%s failed: %s", name, e)
            self.results["errors"][name] = traceback.format_exc()[-3000:]
            value = None
        self.results["phases"][name] = round(time.time() - t, 2)
        self.save()
        return value

    def put(self, key: str, value) -> None:
        self.results[key] = value
        self.save()

    def save(self) -> None:
        from infra.atomic import write_json

        self.results["wall_s"] = round(time.time() - self.t0, 1)
        write_json(self.out / "gpu_run.json", self.results)


def peak_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def environment(device: torch.device) -> dict:
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
           "device": str(device), "date": time.strftime("%Y-%m-%d")}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


# ---------------------------------------------------------------- quality pipeline

def prepare_data(args, sz: Sizes, work: Path):
    from catalog.prepare import PrepareConfig, prepare
    from catalog.sample import write_slice

    data = Path(args.data)
    if sz.users:
        write_slice(data, work / "raw", sz.users, seed=0)
        data = work / "raw"
    return prepare(PrepareConfig(data=data, out=work / "catalog", domain="Beauty", kcore=sz.kcore))


def warm_start(sz: Sizes, work: Path, device: torch.device) -> dict:
    from catalog.store import read_catalog
    from catalog.tokenizer import build_tokenizer
    from idgen.warmstart import WarmStartConfig, warmstart

    build_tokenizer(read_catalog(work / "catalog").texts, work / "tokenizer", vocab_size=sz.vocab_size)
    report = warmstart(WarmStartConfig(catalog=[work / "catalog"], tokenizer=work / "tokenizer",
                                       out=work / "generator", model_size=sz.generator, steps=sz.warmstart_steps,
                                       batch_size=sz.warmstart_batch, lr=sz.warmstart_lr, device=str(device),
                                       bf16=device.type == "cuda"))
    return {k: report[k] for k in ("steps", "seconds", "first_loss", "last_loss",
                                   "overlap_with_published_initial_ids")} | {"peak_mb": peak_mb(device)}


def generator(work: Path, device: torch.device):
    from catalog.tokenizer import load_tokenizer
    from seq2seq.model import load_model

    model = load_model(work / "generator").to(device).eval()
    return (model.to(torch.bfloat16) if device.type == "cuda" else model), load_tokenizer(work / "generator")


def item_ids(sz: Sizes, work: Path, device: torch.device) -> dict:
    """Algorithm 1 over the whole catalog in this process (ours, batched, every escalation round), the table
    written as ``idgenrec ids`` writes it. Speed against the stock one-item loop on the same items and the same
    single attempt (k = 10 groups, lambda 1, window [1, 10])."""
    from catalog.id_table import ITEM_TABLE, write_id_table
    from catalog.store import read_catalog
    from cluster.idjob import escalation
    from idgen.algorithm1 import Algorithm1Config, State, escalation_fractions, run_algorithm1
    from idgen.proposer import Proposer

    cat = read_catalog(work / "catalog")
    model, tok = generator(work, device)
    a1 = Algorithm1Config()
    ours = Proposer(model, tok, a1, batch_size=sz.idgen_batch, max_source_tokens=64, device=device)
    ours(cat.texts[: min(64, len(cat.texts))], State())  # warm-up
    reset_peak(device)
    t = time.time()
    result = run_algorithm1(list(range(len(cat.texts))), lambda items, st: ours([cat.texts[i] for i in items], st),
                            a1, names=cat.item_ids)
    sync(device)
    all_s = time.time() - t
    assignments = [result[i] for i in range(len(cat.texts))]
    write_id_table(work / "ids" / ITEM_TABLE, {"item_id": cat.item_ids}, [a.id for a in assignments], tok,
                   escalation(assignments))
    ours_peak = peak_mb(device)
    texts = cat.texts[: sz.serial_items]
    serial = Proposer(model, tok, a1, batch_size=1, max_source_tokens=64, device=device)
    serial(texts[:2], State())
    reset_peak(device)
    t = time.time()
    for text in texts:
        serial([text], State())
    sync(device)
    serial_s = time.time() - t
    serial_peak = peak_mb(device)
    t = time.time()
    ours(texts, State())  # the same items, the same one attempt
    sync(device)
    same_s = time.time() - t
    return {"items": len(cat.texts), "unique": len({a.id for a in assignments}) == len(assignments),
            "compared_items": len(texts), "ours_items_per_s": len(texts) / same_s,
            "one_at_a_time_items_per_s": len(texts) / serial_s, "ratio": serial_s / same_s,
            "baseline_setup": f"the published code's way: one item at a time, same model, same {len(texts)} items, "
                              f"one attempt (k=10, lambda 1, window [1,10]); ours batched {sz.idgen_batch}",
            "algorithm1_all_items_per_s": len(cat.texts) / all_s, "algorithm1_seconds": round(all_s, 2),
            **escalation_fractions(assignments, a1), "ours_peak_mb": ours_peak, "one_at_a_time_peak_mb": serial_peak,
            "examples": [{"text": cat.texts[i][:80], "id": assignments[i].id} for i in range(min(5, len(cat.texts)))],
            "dtype": str(next(model.parameters()).dtype)}


def train_recommender(sz: Sizes, work: Path, device: torch.device) -> dict:
    from pretrain.shards import ShardsConfig, write_shards
    from pretrain.train import TrainConfig, train

    write_shards(ShardsConfig(catalog=[work / "catalog"], ids=[work / "ids"], out=work / "shards",
                              samples_per_shard=20000))
    reset_peak(device)
    summary = train(TrainConfig(
        shards=work / "shards", out=work / "recommender", tokenizer=work / "generator", model_size=sz.recommender,
        engine="torch", zero_stage=0, micro_batch=sz.micro_batch, lr=1e-3, warmup_steps=100, epochs=sz.train_epochs,
        save_every=10 ** 9, log_every=50, bf16=device.type == "cuda", valid_catalog=work / "catalog",
        valid_ids=work / "ids", eval_batch_size=sz.eval_batch, time_budget_s=sz.train_budget_s))
    return {"test": summary.get("test_at_best"), "best": summary["best"], "stopped_early": summary["stopped_early"],
            "epochs": [{k: h.get(k) for k in ("epoch", "train_loss", "samples_per_s", "valid")}
                       for h in summary["history"]], "peak_mb": peak_mb(device)}


def sasrec(sz: Sizes, work: Path, device: torch.device) -> dict:
    from catalog.store import read_catalog
    from eval.baselines import popularity_metrics
    from eval.sasrec import SASRecConfig, train_sasrec

    cat = read_catalog(work / "catalog")
    r = train_sasrec(cat.sequences, cat.item_ids, SASRecConfig(epochs=sz.sasrec_epochs, device=str(device)))
    return {"test": r["test"], "valid": r["valid"], "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
            "converged": r["converged"], "seconds": r["seconds"],
            "popularity_test": popularity_metrics(cat.sequences, "test")}


# ---------------------------------------------------------------- speed

def decoding(sz: Sizes, work: Path, device: torch.device) -> dict:
    """The trained recommender (bf16 on a GPU), real prompts (test split), the trie of every item's ID. Ours and
    stock ``generate`` on the same users at the same batch size (the headline ratio); ours at a larger batch over
    more users beside it, labelled."""
    from catalog.id_table import item_id_tokens
    from catalog.split import samples
    from catalog.store import read_catalog
    from seq2seq.model import load_model_and_tokenizer
    from recommender.decode import recommend
    from recommender.prompts import EVAL_TEMPLATE, render_prompt
    from recommender.trie import PythonTrie, Trie

    cat = read_catalog(work / "catalog")
    model, tok = load_model_and_tokenizer(work / "recommender" / "best")
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(torch.bfloat16)
    texts, tokens = item_id_tokens(work / "ids", cat.item_ids, tok)
    trie, ptrie = Trie.build(tokens, tok.eos_token_id, len(tok)).to(device), PythonTrie(tokens, tok.eos_token_id)
    id_of = dict(zip(cat.item_ids, texts))
    prompts = [render_prompt([id_of[i] for i in s.history], None, EVAL_TEMPLATE)
               for s in samples(cat.sequences, "test")]
    prompts = (prompts * (sz.decode_users // max(len(prompts), 1) + 1))[: sz.decode_users]

    def batches(n: int, size: int) -> list:
        return [tok(prompts[i:min(i + size, n)], truncation=True, max_length=512, padding=True,
                    return_tensors="pt").to(device) for i in range(0, n, size)]

    gen = stock_generate_kwargs(20, trie.max_depth)
    same = batches(sz.stock_users, sz.decode_batch)
    out: dict = {"items": len(tokens), "beams": 20, "dtype": str(next(model.parameters()).dtype),
                 "compared_users": sz.stock_users, "batch": sz.decode_batch,
                 "baseline_setup": f"transformers generate(num_beams=20, prefix_allowed_tokens_fn=Python trie), same "
                                   f"{sz.stock_users} users, same batch {sz.decode_batch}, same model and dtype",
                 "large_batch": sz.decode_large_batch, "large_batch_users": sz.decode_users}

    def timed(name: str, fn, bs):
        with torch.inference_mode():
            fn({k: v[:4] for k, v in bs[0].items()})  # warm-up
            reset_peak(device)
            t = time.time()
            res = [fn(b) for b in bs]
            sync(device)
        out[f"{name}_users_per_s"] = sum(b["input_ids"].shape[0] for b in bs) / (time.time() - t)
        out[f"{name}_peak_mb"] = peak_mb(device)
        return res

    ours_fn = lambda b: recommend(model, b["input_ids"], b["attention_mask"], trie, 20, 20, tok.eos_token_id,
                                  tok.pad_token_id)
    hf = timed("transformers_python_trie", lambda b: model.generate(
        **b, **gen, prefix_allowed_tokens_fn=ptrie.prefix_allowed_tokens_fn(tok.pad_token_id)), same)
    timed("transformers_unconstrained", lambda b: model.generate(**b, **gen), same)
    ours_same = timed("ours", ours_fn, same)
    timed("ours_large_batch", ours_fn, batches(sz.decode_users, sz.decode_large_batch))
    agree = top1 = n = 0
    for h, o in zip(hf, ours_same):
        for stock, mine in zip(stock_rankings(h, o.items.shape[0], 20, tokens, tok.eos_token_id), o.items.tolist()):
            agree += stock == mine
            top1 += stock[0] == mine[0]
            n += 1
    out["same_top20_fraction"], out["same_top1_fraction"] = agree / max(n, 1), top1 / max(n, 1)
    out["ratio_vs_python_trie"] = out["ours_users_per_s"] / out["transformers_python_trie_users_per_s"]
    out["ratio_vs_unconstrained"] = out["ours_users_per_s"] / out["transformers_unconstrained_users_per_s"]
    return out


def training_speed(sz: Sizes, work: Path, device: torch.device) -> dict:
    """Samples/s over the same optimizer steps (after the same warm-up) on the same shards at the same micro-batch
    and precision: the best plain loop a user would write (bf16 autocast and fused AdamW on a GPU, tokenizing in the
    loop, ``loss.item()`` each step) against our trainer (``pretrain.train``, engine torch), both fresh models of
    the recommender's size."""
    from catalog.tokenizer import load_tokenizer
    from eval.runs import TrainingRun
    from seq2seq.model import build_model, model_config
    from seq2seq.batching import seq2seq_batch
    from pretrain.data import rank_batches
    from pretrain.train import TrainConfig, train

    bf16, warm, steps = device.type == "cuda", 5, sz.train_bench_steps
    precision = "bf16 autocast, fused AdamW" if bf16 else "fp32, AdamW (CPU)"
    tok = load_tokenizer(work / "generator")
    model = build_model(model_config(sz.recommender), tok).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, fused=True if bf16 else None)
    reset_peak(device)
    seen, t = 0, None
    for step, batch in enumerate(rank_batches(work / "shards", sz.micro_batch)):
        if step == warm:
            sync(device)
            t, seen = time.time(), 0
        if step >= warm + steps:
            break
        inputs = seq2seq_batch(tok, [b["src"] for b in batch], [b["tgt"] for b in batch], 512, 32, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        seen += len(batch)
    sync(device)
    plain = seen / (time.time() - t) if t else float("nan")
    plain_peak = peak_mb(device)
    del model, opt
    reset_peak(device)
    run = work / "train_speed"
    train(TrainConfig(shards=work / "shards", out=run, tokenizer=work / "generator", model_size=sz.recommender,
                      engine="torch", zero_stage=0, micro_batch=sz.micro_batch, lr=1e-3, warmup_steps=0, epochs=1,
                      save_every=10 ** 9, log_every=1, bf16=bf16, max_steps=warm + steps))
    log = {r["step"]: r for r in TrainingRun(run).records()}
    a, b = log[warm], log[warm + steps]
    ours = (b["samples"] - a["samples"]) / (b["elapsed_s"] - a["elapsed_s"])
    return {"plain_transformers_samples_per_s": plain, "ours_samples_per_s": ours, "ratio": ours / plain,
            "plain_peak_mb": plain_peak, "ours_peak_mb": peak_mb(device), "steps": steps, "warmup_steps": warm,
            "micro_batch": sz.micro_batch, "precision": precision,
            "baseline_setup": f"plain transformers loop, {precision}, micro-batch {sz.micro_batch}, same shards, "
                              f"same {steps} steps after {warm} warm-up steps"}


# ---------------------------------------------------------------- table

def table(r: dict) -> str:
    def f(x, nd=1):
        return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, (int, float)) else str(x))

    rows = [f"IDGenRec GPU run, {r.get('env', {}).get('gpu', r.get('env', {}).get('device'))}, "
            f"{r.get('env', {}).get('date')}, wall {r.get('wall_s')} s"]
    q, s = r.get("recommender") or {}, r.get("sasrec") or {}
    rows.append("quality (Beauty test)      HR@5    HR@10   NDCG@5  NDCG@10")
    for name, m in (("IDGenRec (ours)", q.get("test")), ("SASRec", s.get("test")),
                    ("popularity", s.get("popularity_test"))):
        m = m or {}
        rows.append(f"  {name:22s} " + " ".join(f"{f(m.get(k), 4):7s}" for k in ("HR@5", "HR@10", "NDCG@5",
                                                                                   "NDCG@10")))
    d, i, t = r.get("decoding") or {}, r.get("item_ids") or {}, r.get("training") or {}
    rows.append("speed                          ours        stock       ratio   peak MB ours / stock")
    rows.append(f"  decoding users/s           {f(d.get('ours_users_per_s')):>10s}  "
                f"{f(d.get('transformers_python_trie_users_per_s')):>10s}  {f(d.get('ratio_vs_python_trie')):>6s}x  "
                f"{f(d.get('ours_peak_mb'))} / {f(d.get('transformers_python_trie_peak_mb'))}")
    rows.append(f"    (same {d.get('compared_users')} users, batch {d.get('batch')}; unconstrained generate "
                f"{f(d.get('transformers_unconstrained_users_per_s'))} users/s; same top-20 as stock: "
                f"{f(d.get('same_top20_fraction'), 3)}, top-1: {f(d.get('same_top1_fraction'), 3)}; ours at batch "
                f"{d.get('large_batch')} over {d.get('large_batch_users')} users: "
                f"{f(d.get('ours_large_batch_users_per_s'))} users/s)")
    rows.append(f"  ID generation items/s      {f(i.get('ours_items_per_s')):>10s}  "
                f"{f(i.get('one_at_a_time_items_per_s')):>10s}  {f(i.get('ratio')):>6s}x  "
                f"{f(i.get('ours_peak_mb'))} / {f(i.get('one_at_a_time_peak_mb'))}")
    rows.append(f"    (Algorithm 1 over all {i.get('items')} items, every round: "
                f"{f(i.get('algorithm1_all_items_per_s'))} items/s)")
    rows.append(f"  training samples/s         {f(t.get('ours_samples_per_s')):>10s}  "
                f"{f(t.get('plain_transformers_samples_per_s')):>10s}  {f(t.get('ratio')):>6s}x  "
                f"{f(t.get('ours_peak_mb'))} / {f(t.get('plain_peak_mb'))}")
    rows.append("baselines:")
    rows += [f"  {name}: {x.get('baseline_setup', '-')}" for name, x in (("decoding", d), ("ID generation", i),
                                                                         ("training", t))]
    if r.get("errors"):
        rows.append(f"  failed phases: {', '.join(r['errors'])} (tracebacks in gpu_run.json)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / ".gpu_data" / "Beauty",
                    help="Beauty in the shared layout (user_sequence.txt, items.jsonl.gz)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_run")))
    ap.add_argument("--work", type=Path, default=Path("/tmp/idgenrec_gpu_run"), help="work files (not returned)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: checks the script end to end")
    ap.add_argument("--device", default=None, help="default: cuda if available (cpu with --smoke)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sz = SMOKE if args.smoke else Sizes()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    random.seed(0)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    run = Run(args.out, device)
    run.put("env", environment(device) | {"smoke": args.smoke})
    run.put("sizes", asdict(sz))
    w = args.work
    cat = run.phase("prepare", lambda: prepare_data(args, sz, w))
    if cat is not None:
        run.put("catalog", {k: cat.stats.get(k) for k in ("users", "items", "interactions")})
    run.put("warmstart", run.phase("warm start", lambda: warm_start(sz, w, device)))
    run.put("item_ids", run.phase("item IDs", lambda: item_ids(sz, w, device)))
    run.put("recommender", run.phase("recommender", lambda: train_recommender(sz, w, device)))
    run.put("sasrec", run.phase("sasrec", lambda: sasrec(sz, w, device)))
    run.put("decoding", run.phase("decoding speed", lambda: decoding(sz, w, device)))
    run.put("training", run.phase("training speed", lambda: training_speed(sz, w, device)))
    text = table(run.results)
    (args.out / "table.txt").write_text(text + "\n")
    print("\n" + text)
    return 1 if run.results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

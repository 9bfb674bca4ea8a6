"""Why a recommender misses: run on a finished standard run folder (``idgenrec standard`` / ``bench/quality.py``),
after its test evaluation, to tell a model that spreads its top-10 lists over the catalog from one that writes the
same few IDs for everyone, and a search error (the beams lost an item the model scores higher) from a model error
(the model scores the target below everything it recommended).

- coverage@10 of ours against the Markov chain (the share of the catalog in at least one user's top 10), the share
  of ours' top-10 slots taken by the 100 most popular items, and the overlap of ours' top 10 with the Markov chain's;
- for the first ``users`` test users that ours misses: the target's teacher-forced score against the scores of the
  10 items ours recommended, computed the same way (mean token log-probability over the full vocabulary, as the beams
  score with length penalty 1). A target above the 10th item is a search error: more beams would have found it.

Writes ``run/diagnose.json`` and prints it.

    python bench/diagnose.py runs/quality/Office_Industrial [--users 400]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO  # noqa: E402  (puts the repo on the path)

from catalog.id_table import item_id_texts, user_id_texts  # noqa: E402
from catalog.split import LEGACY_MAX_HISTORY, samples  # noqa: E402
from catalog.store import read_catalog  # noqa: E402
from eval.baselines import markov_rankings, popularity_ranking  # noqa: E402
from eval.evaluate import EvalConfig  # noqa: E402
from eval.metrics import coverage  # noqa: E402
from infra.atomic import write_json  # noqa: E402
from pretrain.shards import read_manifest  # noqa: E402
from recommender.prompts import render_prompt  # noqa: E402
from seq2seq.model import load_model_and_tokenizer  # noqa: E402
from seq2seq.scoring import target_scores  # noqa: E402


def forced_scores(model, tok, prompt: str, targets: list[str],
                  max_source_tokens: int = EvalConfig.max_source_tokens) -> list[float]:
    """Beam score of each target ID after ``prompt`` (teacher forcing, full-vocabulary softmax, length penalty 1):
    ``seq2seq.scoring.target_scores``, which repeat-aware ranking uses too."""
    enc = tok([prompt], truncation=True, max_length=max_source_tokens, return_tensors="pt")
    tokens = tok(list(targets), add_special_tokens=False)["input_ids"]
    return target_scores(model, enc["input_ids"], enc["attention_mask"], [0] * len(tokens), tokens,
                         tok.eos_token_id).tolist()


def diagnose(run: Path, users: int) -> dict:
    import pyarrow.parquet as pq

    cat = read_catalog(run / "catalog")
    id_of = dict(zip(cat.item_ids, item_id_texts(run / "ids", cat.item_ids)))
    best = run / "recommender" / "best"
    topk = pq.read_table(best / "eval" / "topk_test.parquet").to_pydict()
    manifest = read_manifest(run / "shards")  # the prompts as evaluation made them
    user_ids = user_id_texts(run / "ids") if manifest.get("user_ids") else {}
    todo = list(samples(cat.sequences, "test", manifest.get("max_history", LEGACY_MAX_HISTORY)))
    if [s.target for s in todo] != topk["target"]:
        raise ValueError(f"{best / 'eval' / 'topk_test.parquet'}: not this catalog's test users")
    ours = [r[:10] for r in topk["topk"]]
    markov = markov_rankings(cat.sequences, "test", 10)  # one list per test sample, in the same order
    popular = set(popularity_ranking(cat.sequences, "test", 100))
    model, tok = load_model_and_tokenizer(best)
    model.eval()
    search = model_errors = 0
    for s, recs in zip(todo, ours):
        if s.target in recs:
            continue
        if search + model_errors == users:
            break
        prompt = render_prompt([id_of[i] for i in s.history], user_ids.get((cat.users[s.user], s.position)))
        target, *others = forced_scores(model, tok, prompt, [id_of[s.target]] + [id_of[i] for i in recs])
        search += target > min(others)
        model_errors += target <= min(others)
    n = len(cat.item_ids)
    return {"run": str(run), "users": len(todo), "items": n,
            "coverage@10": {"ours": coverage(ours, n), "markov": coverage(markov, n), "popularity": 10 / n},
            "top10_slots_from_top100_popular": sum(i in popular for r in ours for i in r) / max(10 * len(ours), 1),
            "top10_overlap_with_markov": sum(len(set(a) & set(b)) for a, b in zip(ours, markov)) / max(
                10 * len(ours), 1),
            "misses_examined": search + model_errors, "search_errors": search, "model_errors": model_errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a standard run folder (catalog, ids, shards, recommender/best/eval), "
                                           f"e.g. {REPO.name}/runs/quality/Scientific")
    ap.add_argument("--users", type=int, default=400, help="missed test users to score (default 400)")
    args = ap.parse_args(argv)
    result = diagnose(args.run, args.users)
    write_json(args.run / "diagnose.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The quality recipe's levers on tiny data: grounding samples in the shards with the right targets, templates drawn
again every epoch, a schedule that counts steps only, one that anneals on a plateau (beyond noise), label
smoothing, weight decay groups, dropout."""
import math
import statistics
from dataclasses import replace

import pytest
import torch

from catalog.id_table import ITEM_TABLE, read_id_table
from catalog.store import read_catalog
from pretrain.data import Redraw, cropped_history, prompt
from pretrain.engine import TorchEngine
from seq2seq.schedule import PlateauControl, shortfall_in_se, warmup_stable_anneal
from pretrain.shards import ShardsConfig, rank_samples, read_manifest, write_shards
from pretrain.distributed import param_groups
from seq2seq.model import seq2seq_loss
from recommender.prompts import TEMPLATES, grounding_prompt
from seq2seq.model import set_dropout
from tests.models import tiny_t5


@pytest.fixture(scope="module")
def grounded(collide_catalog, word_ids, tmp_path_factory):
    out = tmp_path_factory.mktemp("grounded") / "shards"
    write_shards(ShardsConfig(catalog=[collide_catalog], ids=[word_ids], out=out, samples_per_shard=50,
                              grounding=["text_to_id", "id_to_title"]))
    return out, {s["key"]: s for s in rank_samples(out)}


def test_grounding_samples_have_the_right_targets(grounded, collide_catalog, word_ids):
    out, shards = grounded
    cat = read_catalog(collide_catalog)
    ids = dict(zip(*(read_id_table(word_ids / ITEM_TABLE)[k] for k in ("item_id", "id"))))
    assert read_manifest(out)["per_task"] == {"id_to_title": 48, "rec": 60, "text_to_id": 48}
    by_task: dict[str, list] = {}
    for s in shards.values():
        by_task.setdefault(s["meta"]["task"], []).append(s)
    for s in by_task["text_to_id"]:  # item text -> that item's ID
        item = s["meta"]["target"]
        assert s["tgt"] == ids[item] and s["src"].startswith("item : ") and "what is its id" in s["src"]
    titles = {i: f["title"] for i, f in zip(cat.item_ids, cat.fields)}
    for s in by_task["id_to_title"]:  # ID -> that item's title
        item = s["meta"]["target"]
        assert s["src"] == f"what is item {ids[item]} ?" and s["tgt"] == titles[item].lower()
    assert {s["meta"]["target"] for s in by_task["text_to_id"]} == set(cat.item_ids)  # every item once
    assert grounding_prompt("id_to_title", "x", "red car", "A Very Long Title Indeed", max_words=2)[1] == "a very"


def test_shards_with_the_old_history_order_are_refused(grounded, tmp_path):
    """A model must be trained on the history order that evaluation and `recommend` write (most recent first)."""
    import json
    import shutil

    from pretrain.shards import check_prompt_format

    out, _ = grounded
    check_prompt_format(out)  # written by this version
    old = tmp_path / "old"
    shutil.copytree(out, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["prompt_format"]  # shards from before the order changed
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"old/manifest.json: prompts written oldest-first.*write the shards again"):
        check_prompt_format(old)


def test_templates_are_drawn_again_every_epoch(grounded):
    _, shards = grounded
    rec = [s for s in shards.values() if s["meta"]["task"] == "rec"]
    epoch0 = [prompt(s, Redraw(0, 0, 10)) for s in rec]
    assert epoch0 == [prompt(s, Redraw(0, 0, 10)) for s in rec]  # deterministic for an epoch (ranks, reruns)
    epoch1 = [prompt(s, Redraw(0, 1, 10)) for s in rec]
    assert sum(a != b for a, b in zip(epoch0, epoch1)) > len(rec) // 2  # most samples change template
    written = [" ; ".join(reversed(s["meta"]["history"])) for s in rec]  # the most recent item first
    assert all(h in p for h, p in zip(written, epoch1))  # same history, other words
    assert len({p.replace(h, "") for h, p in zip(written, epoch1)}) > 3
    ground = [s for s in shards.values() if s["meta"]["task"] != "rec"]
    assert all(prompt(s, Redraw(0, 1, 10)) == s["src"] for s in ground)  # grounding prompts stay
    assert all(prompt(s, None) == s["src"] for s in rec)  # off: the shard's own prompt
    assert len(TEMPLATES) == 10


def test_history_crop_keeps_the_most_recent_items(grounded):
    import random

    rng = random.Random(0)
    history = [f"item {i}" for i in range(8)]
    crops = [cropped_history(history, 1.0, rng) for _ in range(400)]
    assert all(c and c == history[-len(c):] for c in crops)  # a suffix: the most recent items, never empty
    assert {len(c) for c in crops} == set(range(1, 9))  # every length from the last item alone to all
    assert all(cropped_history(history, 0.0, rng) == history for _ in range(20))
    half = sum(cropped_history(history, 0.5, rng) != history for _ in range(2000)) / 2000
    assert 0.38 < half < 0.5  # half are drawn, and a draw of all 8 items leaves the history as it was

    _, shards = grounded
    rec = [s for s in shards.values() if s["meta"]["task"] == "rec" and len(s["meta"]["history"]) > 1]
    kept = [prompt(s, Redraw(0, 0, 0, history_crop=0.0)) for s in rec]
    assert kept == [s["src"] for s in rec]  # no crop, the shard's template: as written
    cut = [prompt(s, Redraw(0, 0, 0, history_crop=1.0)) for s in rec]
    assert cut == [prompt(s, Redraw(0, 0, 0, history_crop=1.0)) for s in rec]  # the same on every rank and rerun
    assert cut != [prompt(s, Redraw(0, 1, 0, history_crop=1.0)) for s in rec]  # drawn again each epoch
    shorter = [len(c) < len(s["src"]) for c, s in zip(cut, rec)]
    assert sum(shorter) > len(rec) // 3
    for c, s in zip(cut, rec):  # the template stays and the most recent item always leads the history
        assert c.startswith(s["src"].split(s["meta"]["history"][-1])[0] + s["meta"]["history"][-1])


def test_successor_targets_draw_what_follows_the_last_item(grounded, sample_tokenizer_dir, monkeypatch):
    from catalog.tokenizer import load_tokenizer
    from pretrain.data import successor_table, target, tokenized_batches
    from pretrain.shards import all_samples

    out, shards = grounded
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    mine = {s["key"] for s in rank_samples(out)}
    every = list(all_samples(out))
    assert len(mine) < len(every) == len(shards)  # the table is built from every rank's samples
    table = successor_table(every)
    rec = [s for s in shards.values() if s["meta"]["task"] == "rec"]
    assert sum(len(v) for v in table.values()) == len(rec)  # each training transition once: the Markov chain
    assert successor_table(reversed(every)) == table  # in key order: the same on every rank and rerun

    ground = [s for s in shards.values() if s["meta"]["task"] != "rec"]
    assert [target(s, Redraw(0, 0, successor_targets=1.0, successors=table)) for s in ground] == [
        s["tgt"] for s in ground]  # grounding targets stay

    def sample(key, history, tgt):
        return {"key": key, "src": "", "tgt": tgt, "meta": {"task": "rec", "history": history}}

    # after "a": "b" 3 times, "c" once; after "x": "y" only
    rec = [sample(f"u{i}", ["q", "a"], "b") for i in range(3)] + [sample("u3", ["a"], "c"),
                                                                  sample("u4", ["a", "x"], "y")]
    table = successor_table(rec)
    assert table == {"a": ["b", "b", "b", "c"], "x": ["y"]}
    on = Redraw(0, 0, successor_targets=1.0, successors=table)
    drawn = [[target(s | {"key": f"{s['key']}-{n}"}, on) for n in range(400)] for s in rec]
    assert all(set(d) <= set(table[s["meta"]["history"][-1]]) for d, s in zip(drawn, rec))  # successors only
    share_c = sum(d.count("c") for d in drawn[:4]) / 1600
    assert 0.19 < share_c < 0.31  # as often as each follows: c one time in four
    assert set(drawn[4]) == {"y"}
    assert [target(s, on) for s in rec] == [target(s, on) for s in rec]  # seeded: every rank and rerun alike
    half = Redraw(0, 0, successor_targets=0.5, successors=table)
    kept = sum(target(s | {"key": f"k{n}"}, half) == "c" for n in range(1000) for s in rec[3:4]) / 1000
    assert 0.55 < kept < 0.7  # c kept half the time, and drawn again as c a quarter of the other half
    assert [target(s, Redraw(0, 0, successor_targets=0.0, successors=table)) for s in rec] == [
        s["tgt"] for s in rec]

    # the trainer's batches carry the drawn targets: every item followed by one ID only
    monkeypatch.delenv("RANK")
    tok = load_tokenizer(sample_tokenizer_dir)
    only = {last: ["red red 0"] for last in successor_table(shards.values())}
    labels = [row[row >= 0].tolist() for b in tokenized_batches(
        out, 8, tok, 256, 32, 0, 0, redraw=Redraw(0, 0, successor_targets=1.0, successors=only))
        for row in b.tensors["labels"]]
    wanted = tok("red red 0").input_ids
    assert sum(x == wanted for x in labels) == sum(s["meta"]["task"] == "rec" or s["tgt"] == "red red 0"
                                                   for s in shards.values())  # (a grounding sample of that item)


def test_one_template_trains_on_the_evaluation_prompt(collide_catalog, word_ids, tmp_path):
    from recommender.prompts import EVAL_TEMPLATE, render_prompt

    out = tmp_path / "shards"
    write_shards(ShardsConfig(catalog=[collide_catalog], ids=[word_ids], out=out, templates=1))
    rec = list(rank_samples(out))
    assert read_manifest(out)["templates"] == 1 and len(rec) == 60
    assert all(s["meta"]["template"] == EVAL_TEMPLATE for s in rec)
    assert all(s["src"] == render_prompt(s["meta"]["history"]) for s in rec)  # what evaluation writes
    assert all(prompt(s, Redraw(0, e, 1)) == s["src"] for s in rec for e in (1, 2))  # a redraw keeps to the set
    with pytest.raises(ValueError, match="templates must be 1..10"):
        ShardsConfig(catalog=[collide_catalog], ids=[word_ids], templates=11).check()


def test_the_schedule_counts_steps_only_and_a_plateau_needs_a_margin_and_a_minimum():
    model = tiny_t5()
    engine = TorchEngine(model, param_groups(model, 0.01, False), torch.device("cpu"), lr=1e-3, warmup=10,
                         total_steps=100, clip=1.0, grad_accum=1, bf16=False)
    assert engine.get_lr()[0] == pytest.approx(1e-4)  # the first step already at lr / warmup
    engine.global_steps = 55
    assert engine.get_lr()[0] == pytest.approx(1e-3 * 45 / 90)  # a function of the step, whatever the clock says
    control = PlateauControl(patience=2, anneal_steps=10, margin=1.0, min_epochs=3)
    assert control.left_is_one_anneal(90, 100) and not control.left_is_one_anneal(89, 100)
    assert control.after_validation(1, False, shortfall_se=0.5, epochs_done=5) == (2, False)  # within noise
    assert control.after_validation(1, False, shortfall_se=1.5, epochs_done=5) == (2, True)
    assert control.after_validation(1, False, shortfall_se=1.5, epochs_done=2) == (2, False)  # too early
    assert control.after_validation(1, True, shortfall_se=0.0, epochs_done=5) == (0, False)
    assert PlateauControl(2, 10).after_validation(1, False) == (2, True)  # no margin: the plain patience rule
    assert shortfall_in_se(0.0148, 0.0146, 0.0024) == pytest.approx(0.0833, abs=1e-3)
    assert shortfall_in_se(0.0148, 0.0150, 0.0024) == 0.0 and shortfall_in_se(0.1, 0.05, None) == float("inf")


def test_standard_errors_are_those_of_the_users_mean():
    from eval.metrics import leave_one_out_metrics, standard_errors

    ranked, targets = [[1, 2], [3, 4], [5, 6], [7, 8]], [1, 9, 6, 9]  # ranks 1, none, 2, none
    se = standard_errors(ranked, targets)
    assert leave_one_out_metrics(ranked, targets)["HR@10"] == 0.5
    assert se["HR@10"] == pytest.approx((1 / 3) ** 0.5 / 2)  # sample sd of 1, 0, 1, 0 over sqrt(4)
    assert se["NDCG@5"] == pytest.approx(statistics.stdev([1.0, 0.0, 1 / math.log2(3), 0.0]) / 2)


def test_plateau_schedule_holds_the_rate_until_the_anneal_and_a_checkpoint_keeps_it(tmp_path):
    assert warmup_stable_anneal(0.05, 1.0, 0.1, None) == pytest.approx(0.5)
    assert warmup_stable_anneal(0.9, 1.0, 0.1, None) == 1.0  # no decay before the anneal starts
    assert warmup_stable_anneal(0.9, 1.0, 0.1, 0.25) == pytest.approx(0.75)
    assert warmup_stable_anneal(0.2, 1.0, 0.1, 1.0) == 0.0
    model = tiny_t5()
    engine = TorchEngine(model, param_groups(model, 0.01, False), torch.device("cpu"), lr=1e-3, warmup=2,
                         total_steps=1000, clip=1.0, grad_accum=1, bf16=False, plateau=True)
    schedule = engine.lr_scheduler
    for _ in range(5):
        engine.step()
    assert engine.get_lr()[0] == 1e-3 and schedule.annealed() is None
    engine.save_checkpoint(str(tmp_path), "held", {})
    schedule.start_anneal(4)
    engine.step(), engine.step()
    assert schedule.annealed() == 0.5 and engine.get_lr()[0] == pytest.approx(5e-4)
    engine.save_checkpoint(str(tmp_path), "annealing", {})
    engine.load_checkpoint(str(tmp_path), "held")  # a rewind to an earlier epoch: the anneal had not started
    assert engine.global_steps == 5 and schedule.anneal is None and engine.get_lr()[0] == 1e-3
    engine.load_checkpoint(str(tmp_path))  # the latest: a resumed run goes on annealing
    assert schedule.anneal == [5, 4] and engine.get_lr()[0] == pytest.approx(5e-4)


def test_label_smoothing_weight_decay_groups_and_dropout():
    model = tiny_t5().train()
    inputs = {"input_ids": torch.tensor([[3, 4, 5, 1]]), "labels": torch.tensor([[6, 7, 1]])}
    out = model(**inputs)
    assert seq2seq_loss(out, inputs["labels"], 0.0) is out.loss
    assert seq2seq_loss(out, inputs["labels"], 0.1) != out.loss
    decay, keep = param_groups(model, 0.01, decay_norms=False)
    assert decay["weight_decay"] == 0.01 and keep["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in keep["params"])
    set_dropout(model, 0.3)
    drops = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and set(drops) == {0.3} and model.config.dropout_rate == 0.3
    config = model.config
    config.dropout_rate = 0.2  # a checkpoint trained with dropout: its attention modules hold 0.2 as a float
    model = type(model)(config).train()
    set_dropout(model, 0.0)  # off means off, the attention weights' dropout included
    torch.manual_seed(0)
    first = model(**inputs).logits
    torch.manual_seed(1)
    assert model.training and torch.equal(first, model(**inputs).logits)


def test_a_checkpoint_trains_with_its_dropout_on(tiny_generator):
    """from_pretrained returns a model in eval mode: started from it as is, training would run without dropout."""
    from pretrain.train import TrainConfig, initial_model

    model, _ = initial_model(TrainConfig(init=tiny_generator))
    assert model.training and all(m.training for m in model.modules())
    model, _ = initial_model(TrainConfig(init=tiny_generator, dropout=0.3))
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    assert model.config.dropout_rate == 0.3


def test_warm_start_makes_enough_passes_and_reports_its_loss_curve(collide_catalog, sample_tokenizer_dir, tmp_path):
    import json
    import math

    from idgen.warmstart import WarmStartConfig, loss_curve, warmstart

    assert WarmStartConfig(steps=1500, min_epochs=20, batch_size=32).steps_for(1585) == 1500  # a small catalog
    assert WarmStartConfig(steps=1500, min_epochs=20, batch_size=32).steps_for(6858) == 4287  # ceil(20 * 6858 / 32)
    assert WarmStartConfig(steps=1500, min_epochs=0).steps_for(10 ** 6) == 1500  # min_epochs off
    assert loss_curve([1.0, 3.0, 5.0, 7.0], points=2) == [[2, 2.0], [4, 6.0]]

    report = warmstart(WarmStartConfig(catalog=[collide_catalog], tokenizer=sample_tokenizer_dir, out=tmp_path / "g",
                                       model_size="tiny", steps=3, min_epochs=2, batch_size=16, lr=1e-2, dropout=0.2))
    assert report["steps"] == max(3, math.ceil(2 * report["items"] / 16)) > 3
    assert report["loss_curve"][-1][0] <= report["steps"] and len(report["loss_curve"]) >= 2
    assert json.loads((tmp_path / "g" / "config.json").read_text())["dropout_rate"] == 0.2  # the size's 0.0 replaced


def test_simulated_unseen_items_are_targets_never_inputs(collide_catalog, word_ids, tmp_path):
    """unseen_share: a seeded share of the items leaves every history and every ID -> title prompt, and stays a
    target (of recommendation and text -> ID samples); share 0 writes the shards it always wrote."""
    from catalog.id_table import item_id_texts
    from pretrain.shards import build_samples, unseen_items

    cat = read_catalog(collide_catalog)
    id_of = dict(zip(cat.item_ids, item_id_texts(word_ids, cat.item_ids)))
    hidden = unseen_items(cat.item_ids, 0.3, seed=0)
    assert len(hidden) == round(0.3 * len(cat.item_ids)) and hidden == unseen_items(cat.item_ids[::-1], 0.3, seed=0)
    cfg = ShardsConfig(catalog=[collide_catalog], ids=[word_ids], grounding=["text_to_id", "id_to_title"],
                       unseen_share=0.3)
    rows = build_samples(cfg)
    rec = [r for r in rows if r["meta"]["task"] == "rec"]
    assert rec and not {id_of[i] for i in hidden} & {h for r in rec for h in r["meta"]["history"]}
    assert {r["meta"]["target"] for r in rec} & hidden  # still predicted
    assert not {r["meta"]["target"] for r in rows if r["meta"]["task"] == "id_to_title"} & hidden
    assert {r["meta"]["target"] for r in rows if r["meta"]["task"] == "text_to_id"} >= hidden
    off = ShardsConfig(catalog=[collide_catalog], ids=[word_ids], out=tmp_path / "a")
    before = write_shards(off)
    assert before["config_hash"] == write_shards(replace(off, out=tmp_path / "b", unseen_share=0.0))["config_hash"]
    with pytest.raises(ValueError, match="unseen_share"):
        ShardsConfig(unseen_share=1.0).check()

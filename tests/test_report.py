import json

import matplotlib.image as mpimg

from cluster.cli import main


def test_report_tables_json_and_pngs(tmp_path):
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    m = {"users": 100, "HR@5": 0.05, "HR@10": 0.08, "NDCG@5": 0.03, "NDCG@10": 0.04, "catalog": str(tmp_path / "nope"),
         "popularity": {"users": 100, "HR@5": 0.01, "HR@10": 0.02, "NDCG@5": 0.005, "NDCG@10": 0.008}}
    (run / "eval" / "metrics_test.json").write_text(json.dumps(m))
    (run / "sasrec.json").write_text(json.dumps({"dataset": "eval", "best_epoch": 4, "epochs_run": 5, "test": {
        "users": 100, "HR@5": 0.04, "HR@10": 0.07, "NDCG@5": 0.02, "NDCG@10": 0.03}}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 5.0 / s}) + "\n" for s in range(1, 9)))
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## eval" in md and "| IDGenRec (ours) | 100 | 0.0500 | 0.0800 | 0.0300 | 0.0400 |" in md
    assert "| Popularity | 100 |" in md and "SASRec (supervised, in-domain)" in md
    # a baseline whose best epoch is its last had not converged: the report says so
    assert "| SASRec (supervised, in-domain) | 100 | 0.0400 | 0.0700 | 0.0200 | 0.0300 | not converged: best epoch 4 " \
           "is the last of 5 |" in md
    assert "leave-one-out" in md and "Paper reference" in md
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["datasets"]["eval"]["IDGenRec (ours)"]["HR@10"] == 0.08
    for png in ("metrics.png", "loss.png"):
        img = mpimg.imread(tmp_path / "rep" / png)
        assert img.shape[0] > 100 and img.shape[1] > 100


def test_report_names_the_dataset_of_a_moved_run_folder(tmp_path):
    from eval.report import collect

    ds = tmp_path / "moved" / "Beauty"  # the standard layout, moved after its evaluation stored absolute paths
    (ds / "catalog").mkdir(parents=True)
    (ds / "catalog" / "stats.json").write_text(json.dumps({"domain": "Beauty"}))
    (ds / "recommender" / "best" / "eval").mkdir(parents=True)
    m = {"users": 10, "HR@5": 0.1, "HR@10": 0.2, "NDCG@5": 0.05, "NDCG@10": 0.07,
         "catalog": str(tmp_path / "before-the-move" / "Beauty" / "catalog"),
         "popularity": {"users": 10, "HR@5": 0.0, "HR@10": 0.1, "NDCG@5": 0.0, "NDCG@10": 0.03}}
    m["model"] = str(tmp_path / "before-the-move" / "Beauty" / "recommender" / "best")
    (ds / "recommender" / "best" / "eval" / "metrics_test.json").write_text(json.dumps(m))
    summary = {"best": {"epoch": 1, "NDCG@10": 0.07}, "history": [{"epoch": 0}, {"epoch": 1}]}
    (ds / "recommender" / "summary.json").write_text(json.dumps(summary))
    rows = collect([tmp_path / "moved"])["datasets"]
    assert set(rows["Beauty"]) >= {"IDGenRec (ours)", "Popularity"} and "eval" not in rows
    assert rows["Beauty"]["IDGenRec (ours)"]["note"] == "not converged: best epoch 1 is the last of 2"


def test_rows_on_other_users_are_marked_and_a_second_evaluation_is_its_own_row(tmp_path):
    from eval.report import collect

    def evaluation(folder, users, hr):
        folder.mkdir(parents=True)
        m = {"users": users, "HR@5": hr, "HR@10": hr, "NDCG@5": hr, "NDCG@10": hr, "catalog": "",
             "popularity": {"users": users, "HR@5": 0.0, "HR@10": 0.0, "NDCG@5": 0.0, "NDCG@10": 0.0}}
        (folder / "metrics_test.json").write_text(json.dumps(m))

    evaluation(tmp_path / "runs" / "a" / "eval", 1000, 0.1)
    evaluation(tmp_path / "runs" / "b" / "eval", 20, 0.5)  # `eval --max-users 20` of the same dataset
    rows = collect([tmp_path / "runs"])["datasets"]["eval"]
    assert set(rows) == {"IDGenRec (ours)", "IDGenRec (ours) #2", "Popularity", "Popularity #2"}
    assert rows["IDGenRec (ours)"]["HR@10"] == 0.1 and rows["IDGenRec (ours) #2"]["HR@10"] == 0.5
    assert rows["IDGenRec (ours) #2"]["note"].startswith("NOT COMPARABLE: scored on 20 users, other rows on 1000")
    assert "NOT COMPARABLE" not in rows["IDGenRec (ours)"].get("note", "")
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    assert "NOT COMPARABLE" in (tmp_path / "rep" / "report.md").read_text()


def test_a_zero_shot_row_shows_its_peers_and_labels_in_domain_references(tmp_path):
    from eval.report import collect

    def metrics(v, **extra):
        return {"users": 50, "HR@5": v, "HR@10": v, "NDCG@5": v, "NDCG@10": v, **extra}

    folder = tmp_path / "zs" / "Toys"
    folder.mkdir(parents=True)
    m = metrics(0.03, zero_shot=True, catalog="", text_prior=2.0, without_text_prior=metrics(0.01),
                baselines={"random": metrics(0.001, in_domain=False), "text_similarity": metrics(0.05, in_domain=False),
                           "popularity": metrics(0.004, in_domain=True), "markov": metrics(0.06, in_domain=True)})
    (folder / "metrics_test.json").write_text(json.dumps(m))
    rows = collect([tmp_path / "zs"])["datasets"]["Toys"]
    assert rows["IDGenRec (ours + text prior, zero-shot)"]["HR@10"] == 0.03
    assert rows["IDGenRec (ours + text prior, zero-shot), without the text prior"]["HR@10"] == 0.01
    assert rows["Random (analytic)"]["HR@10"] == 0.001 and "Text similarity (TF-IDF, last 3 items)" in rows
    assert rows["Popularity [in-domain reference]"]["HR@10"] == 0.004
    assert rows["Markov chain (last item's successors) [in-domain reference]"]["HR@10"] == 0.06
    # with the repeat mode: its own row without it, and the earlier levers' rows say they lack it too
    folder = tmp_path / "zs2" / "Yelp"
    folder.mkdir(parents=True)
    m |= {"repeat_mode": {"rate": 0.03, "prior": 8.0, "mean_p_repeat": 0.03}, "without_repeat_mode": metrics(0.02)}
    (folder / "metrics_test.json").write_text(json.dumps(m))
    rows = collect([tmp_path / "zs2"])["datasets"]["Yelp"]
    ours = "IDGenRec (ours + text prior + repeat mode, zero-shot)"
    assert rows[ours]["HR@10"] == 0.03 and rows[f"{ours}, without the repeat mode"]["HR@10"] == 0.02
    assert rows[f"{ours}, without the text prior, nor the repeat mode"]["HR@10"] == 0.01


def test_published_figures_are_labelled_rows_of_their_setting(tmp_path):
    """The paper's Table 4 (standard, leaky user IDs) and Table 7 (zero-shot) and other models' published figures
    come from one cited file; a report on a dataset of that name, evaluated on all its users, shows them as labelled
    rows, never as ours."""
    import pytest

    from eval.published import published

    standard = published("Beauty", "standard")
    assert standard["IDGenRec (paper Table 4; leaky user IDs)"] == {"HR@5": .0618, "HR@10": .0814, "NDCG@5": .0486,
                                                                   "NDCG@10": .0541}
    assert {"HSTU (published)", "OneRec-SFT 1.7B (published)"} <= set(standard)
    assert list(published("Yelp", "zero-shot")) == ["IDGenRec (paper Table 7)"]
    assert published("Scientific") == {}
    assert published("Beauty", "standard", users=2000) == {}  # a sample is not the split the figures are on
    assert published("Beauty", "standard", users=22363) == standard
    with pytest.raises(ValueError, match="unknown setting"):
        published("Beauty", "few-shot")
    run = tmp_path / "run"
    (run / "Beauty").mkdir(parents=True)
    m = {"users": 10, "HR@5": 0.1, "HR@10": 0.2, "NDCG@5": 0.05, "NDCG@10": 0.07}
    (run / "Beauty" / "metrics_test.json").write_text(json.dumps(m))
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    assert "HSTU" not in (tmp_path / "rep" / "report.md").read_text()  # 10 users: a slice, no published rows
    (run / "Beauty" / "metrics_test.json").write_text(json.dumps(m | {"users": 22363}))
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| IDGenRec (paper Table 4; leaky user IDs) |  | 0.0618 | 0.0814 | 0.0486 | 0.0541 |" in md
    assert "| HSTU (published) |" in md and "| IDGenRec (paper Table 7) |" in md

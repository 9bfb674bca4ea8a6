"""``idgenrec report``: tables, JSON and plots from run folders, with the protocol stated.

Reads, under each run folder (layout in eval.runs): evaluations' test metrics (idgenrec eval / zeroshot: ours and
the popularity baseline), SASRec results, trainer loss curves. The paper's published figures, kept as
cited reference data (``eval.published``), are shown beside ours where they exist.
"""
from __future__ import annotations

import json
from pathlib import Path

from eval.metrics import METRICS
from eval.published import paper_record, published
from eval.runs import SASREC_FILE, TrainingRun, find, metrics_path
from infra.atomic import atomic_path, write_json, write_text


def _dataset(folder: Path, m: dict) -> str:
    """The evaluated catalog's domain: from the catalog path the evaluation stored, or, when the run folder has been
    moved since, from a ``catalog`` folder beside one of the evaluation's nearest parents (the standard layout
    ``<dataset>/recommender/best/eval`` next to ``<dataset>/catalog``); else the folder's name."""
    stored = [Path(m["catalog"])] if m.get("catalog") else []
    for catalog in stored + [parent / "catalog" for parent in list(folder.parents)[:4]]:
        stats = catalog / "stats.json"
        if stats.exists():
            return json.loads(stats.read_text()).get("domain") or folder.name
    return folder.name


def convergence_note(best_epoch: int | None, epochs_run: int | None) -> str:
    """A warning when the epoch selected on validation is the last one run: the model may not have converged, so
    the comparison may understate it."""
    if best_epoch is None or not epochs_run or best_epoch < epochs_run - 1:
        return ""
    return f"not converged: best epoch {best_epoch} is the last of {epochs_run}"


def _training_note(folder: Path, model_dir: str | None) -> str:
    """The note for a model exported by our trainer (``<run>/best``, evaluated in ``<run>/best/eval``): none without
    validation selection. The model path the evaluation stored first, then the evaluation's parent (a moved run)."""
    for model in ([Path(model_dir)] if model_dir else []) + [folder.parent]:
        selected = TrainingRun(model.parent).best_epoch_note()
        if selected:
            return convergence_note(*selected)
    return ""


def _free_label(methods: dict, label: str) -> str:
    """``label``, or ``label #2``, ``#3``... when the dataset already has a row of that name (a second evaluation is
    shown as its own row, never silently in place of the first)."""
    n, free = 1, label
    while free in methods:
        n += 1
        free = f"{label} #{n}"
    return free


def mark_unequal_users(methods: dict[str, dict]) -> None:
    """Rows of one dataset table scored on other users than the largest set there get a note saying so: their
    figures cannot be compared with the others'."""
    counts = {name: m["users"] for name, m in methods.items() if isinstance(m.get("users"), int)}
    if len(set(counts.values())) <= 1:
        return
    most = max(counts.values())
    for name, users in counts.items():
        if users != most:
            note = f"NOT COMPARABLE: scored on {users} users, other rows on {most}"
            methods[name]["note"] = "; ".join(x for x in (note, methods[name].get("note", "")) if x)


BASELINE_NAMES = {"random": "Random (analytic)", "text_similarity": "Text similarity (TF-IDF, last 3 items)",
                  "recent_then_text": "Recent items, then text similarity", "popularity": "Popularity",
                  "markov": "Markov chain (last item's successors)"}


def baseline_label(name: str, metrics: dict, zero_shot: bool) -> str:
    """A baseline's row name; beside a zero-shot row, those counted on the dataset's own training interactions
    (which the zero-shot model never saw) are labelled in-domain references."""
    label = BASELINE_NAMES.get(name, name)
    in_domain = metrics.get("in_domain", name in ("popularity", "markov"))
    return f"{label} [in-domain reference]" if zero_shot and in_domain else label


def ours_label(m: dict) -> str:
    """Ours, named by what its ranking used: a text prior makes it ours plus a content signal."""
    parts = (["ours"] + (["+ text prior"] if m.get("text_prior") is not None else [])
             + (["+ ID prior"] if m.get("id_prior") is not None else [])
             + (["+ repeat mode"] if (m.get("repeat_mode") or {}).get("rate") else []))
    return f"IDGenRec ({' '.join(parts)}{', zero-shot' if m.get('zero_shot') else ''})"


def _row(m: dict) -> dict:
    return {k: m[k] for k in METRICS} | {"users": m["users"]}


def collect(run_dirs: list[Path]) -> dict:
    """{dataset: {method: {metric: value, users}}}, loss curves, and where each number came from."""
    rows: dict[str, dict[str, dict]] = {}
    curves: dict[str, list[tuple[int, float]]] = {}
    for run in run_dirs:
        for folder, m in find(run, "test"):
            ds = _dataset(folder, m)
            label = _free_label(rows.setdefault(ds, {}), ours_label(m))
            rows[ds][label] = {k: m[k] for k in METRICS} | {
                "users": m["users"], "file": str(metrics_path(folder, "test")),
                "note": _training_note(folder, m.get("model"))}
            nor = ", nor the repeat mode" if m.get("without_repeat_mode") else ""  # each lever's row is before it
            for key, what in (("without_repeat_mode", "without the repeat mode"),
                              ("without_id_prior", f"without the ID prior{nor}"),
                              ("without_text_prior", f"without the text prior{nor}"),
                              ("without_repeat_bias", "beams only: no repeat bias, no text prior")):
                if m.get(key):
                    rows[ds][_free_label(rows[ds], f"{label}, {what}")] = _row(m[key])
            for name, b in (m.get("baselines") or {"popularity": m.get("popularity")}).items():
                if b:
                    rows[ds][_free_label(rows[ds], baseline_label(name, b, bool(m.get("zero_shot"))))] = _row(b)
        for folder, s in find(run, "sasrec"):
            rows.setdefault(s["dataset"], {})["SASRec (supervised, in-domain)"] = (
                {k: s["test"][k] for k in METRICS} | {
                    "users": s["test"]["users"], "file": str(folder / SASREC_FILE), "best_epoch": s.get("best_epoch"),
                    "note": convergence_note(s.get("best_epoch"), s.get("epochs_run"))})
        for folder, pts in find(run, "training_log"):
            curves[str(folder)] = [(p["step"], p["loss"]) for p in pts if "loss" in p]
    for methods in rows.values():
        mark_unequal_users(methods)
    for ds, methods in rows.items():  # beside a dataset evaluated on all its users only
        rows[ds].update(published(ds, users=max((m.get("users") or 0 for m in methods.values()), default=0)))
    return {"datasets": rows, "loss_curves": curves, "paper": paper_record()}


PROTOCOL = """Protocol: leave-one-out per user (last item = test target, second-to-last = validation target, earlier
positions = training), users with fewer than 3 items skipped; every eligible user counted exactly once; HR@k and
NDCG@k ranked over all items of the dataset (generative models: beam search constrained to the trie of all item IDs,
20 beams; SASRec: scores over all items). Models are selected on validation, never on test. Zero-shot rows saw no
interaction of that dataset in training. Seeds and data versions are in each run folder (configs, stats.json,
SOURCE.md of the data)."""


def write_report(run_dirs: list[Path], out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = collect(run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# IDGenRec report", "", PROTOCOL, ""]
    for ds, methods in sorted(data["datasets"].items()):
        lines += [f"## {ds}", "", "| method | users | " + " | ".join(METRICS) + " | note |",
                  "|---|---|" + "---|" * len(METRICS) + "---|"]
        for name, m in methods.items():
            lines.append(f"| {name} | {m.get('users', '')} | " + " | ".join(
                f"{m[k]:.4f}" if isinstance(m.get(k), (int, float)) else "" for k in METRICS)
                + f" | {m.get('note', '')} |")
        lines.append("")
    paper = data["paper"]
    lines += ["## Paper reference", "", f"Source: {paper['source']}.", "", paper["note"], "",
              f"ID generation on {paper['id_generation']['items']:,} items: needed lambda > 1: "
              f"{paper['id_generation']['needed_higher_lambda']:.2%}, needed a longer window: "
              f"{paper['id_generation']['needed_longer_window']:.2%}.", ""]
    plots = []
    if data["datasets"]:
        names = sorted(data["datasets"])
        methods = sorted({m for ds in names for m in data["datasets"][ds]})
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        width = 0.8 / max(len(methods), 1)
        for ax, metric in zip(axes, ("HR@10", "NDCG@10")):
            for j, method in enumerate(methods):
                vals = [data["datasets"][ds].get(method, {}).get(metric, 0.0) for ds in names]
                ax.bar([i + j * width for i in range(len(names))], vals, width, label=method)
            ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(names))], names)
            ax.set_title(metric)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out / "metrics.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        plots.append("metrics.png")
    if data["loss_curves"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, pts in data["loss_curves"].items():
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=Path(label).name)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out / "loss.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        plots.append("loss.png")
    lines += [f"![{p}]({p})" for p in plots]
    write_text(out / "report.md", "\n".join(lines) + "\n")
    write_json(out / "report.json", data)
    return data

"""The zero-shot job on two tiny unseen domains: Ray tasks, per-dataset caches, resume."""
import json

from catalog.tokenizer import load_tokenizer
from cluster.zeroshot import ZeroShotConfig, run_zeroshot
from idgen.model import build_model, model_config, save_model
from tests.conftest import write_shared


def test_two_domains_then_resume(tiny_generator, collide_catalog, tmp_path):
    tok = load_tokenizer(tiny_generator)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    other = write_shared(tmp_path / "Games", {f"g{n}": [f"x{(n + k) % 9}" for k in range(4)] for n in range(12)},
                         [{"item_id": f"x{i}", "title": f"board game {w}", "categories": ["Games"]}
                          for i, w in enumerate("chess dice cards puzzle maze quiz trivia bingo dominoes".split())])
    cfg = ZeroShotConfig(generator=tiny_generator, recommender=tmp_path / "rec",
                         data=[collide_catalog.parent / "data", other], out=tmp_path / "zs", groups=4, beams=10)
    result = run_zeroshot(cfg)
    assert set(result) == {"data", "Games"}
    assert result["Games"]["users"] == 12 and result["data"]["users"] == 30
    for name in ("data", "Games"):
        assert (tmp_path / "zs" / name / "ids" / "item_ids.parquet").exists()
        assert (tmp_path / "zs" / name / "topk_test.parquet").exists()
        assert json.loads((tmp_path / "zs" / name / "metrics_test.json").read_text())["zero_shot"] is True
    kept = (tmp_path / "zs" / "data" / "metrics_test.json").stat().st_mtime_ns
    ids_kept = (tmp_path / "zs" / "Games" / "ids" / "item_ids.parquet").stat().st_mtime_ns
    (tmp_path / "zs" / "Games" / "metrics_test.json").unlink()  # as if the job died before finishing Games
    again = run_zeroshot(cfg)
    assert again == result
    assert (tmp_path / "zs" / "data" / "metrics_test.json").stat().st_mtime_ns == kept  # not redone
    assert (tmp_path / "zs" / "Games" / "ids" / "item_ids.parquet").stat().st_mtime_ns == ids_kept  # IDs cached
    assert json.loads((tmp_path / "zs" / "zeroshot.json").read_text()) == json.loads(json.dumps(result))

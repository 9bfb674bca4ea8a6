"""Raw public formats, written as small fixture files in those formats."""
import gzip
import json

import pytest

from catalog.prepare import PrepareConfig, prepare
from infra.errors import DataError


def _gz(path, lines):
    path.write_bytes(gzip.compress("".join(l + "\n" for l in lines).encode()))


def test_amazon_2014_dict_literals_and_reviews_in_time_order(tmp_path):
    d = tmp_path / "amz14"
    d.mkdir()
    # 2014 metadata: Python dict literals (single quotes), which json cannot read
    _gz(d / "meta_Beauty.json.gz", [
        "{'asin': 'A1', 'title': 'Red Lipstick', 'categories': [['Beauty', 'Makeup', 'Lips']], "
        "'salesRank': {'Beauty': 12}, 'imUrl': 'http://x', 'related': {'also_bought': ['A2']}, 'price': 3.5}",
        "{'asin': 'A2', 'title': 'Blue <i>Mascara</i>', 'categories': [['Beauty', 'Makeup', 'Eyes']], 'brand': 'Z'}",
        "{'asin': 'A3', 'title': 'Nail Polish', 'categories': [['Beauty']], 'description': 'Shiny &amp; bold'}",
        "{'asin': 'A4', 'title': 'Only one review'}",
        "__import__('os').system('echo pwned')",
    ])
    reviews = []
    for u, t0 in (("U1", 300), ("U2", 100), ("U3", 200)):
        for k, item in enumerate(["A3", "A1", "A2"]):  # given out of time order below
            reviews.append({"reviewerID": u, "asin": item, "unixReviewTime": t0 - k, "overall": 5.0})
    reviews.append({"reviewerID": "U1", "asin": "A4", "unixReviewTime": 999})
    _gz(d / "reviews_Beauty_5.json.gz", [json.dumps(r) for r in reviews])
    with pytest.raises(DataError, match=r"meta_Beauty.json.gz:5: malformed record"):
        prepare(PrepareConfig(data=d, out=tmp_path / "out", kcore=3))
    cat = prepare(PrepareConfig(data=d, out=tmp_path / "out", kcore=3, skip_bad=True))
    assert cat.users == ["U1", "U2", "U3"]
    assert cat.sequences == [["A2", "A1", "A3"]] * 3  # oldest first; A4 removed by the 3-core filter
    assert cat.item_ids == ["A1", "A2", "A3"]
    assert cat.texts[0] == "title: Red Lipstick; categories: Beauty, Makeup, Lips; price: 3.5; sales rank: Beauty 12"
    assert cat.texts[1] == "title: Blue Mascara; categories: Beauty, Makeup, Eyes; brand: Z"
    assert cat.texts[2] == "title: Nail Polish; categories: Beauty; description: Shiny & bold"
    assert cat.stats["skipped"] == {"malformed_line": 1}


def test_amazon_ratings_csv(tmp_path):
    d = tmp_path / "csv"
    d.mkdir()
    _gz(d / "meta_Toys.json.gz", [json.dumps({"asin": a, "title": a}) for a in ("X", "Y")])
    (d / "ratings_Toys.csv").write_text("U1,Y,5.0,20\nU1,X,4.0,10\nU2,X,1.0,5\n")
    cat = prepare(PrepareConfig(data=d, out=tmp_path / "out", kcore=1))
    assert dict(zip(cat.users, cat.sequences)) == {"U1": ["X", "Y"], "U2": ["X"]}


def test_amazon_2018_json_lines(tmp_path):
    d = tmp_path / "amz18"
    d.mkdir()
    _gz(d / "meta_Office_Products.json.gz", [json.dumps(
        {"asin": "B1", "title": "Stapler", "category": ["Office Products", "Staplers"], "brand": "Swingline",
         "description": ["<p>Heavy duty</p>", "Metal"], "feature": ["20 sheets"], "price": "$12.99",
         "image": ["http://img"], "also_buy": ["B2"]}),
        json.dumps({"asin": "B2", "title": "Paper", "category": ["Office Products"]})])
    _gz(d / "Office_Products_5.json.gz", [json.dumps({"reviewerID": "U", "asin": a, "unixReviewTime": t})
                                          for a, t in (("B2", 2), ("B1", 1))])
    cat = prepare(PrepareConfig(data=d, out=tmp_path / "out", kcore=1))
    assert cat.sequences == [["B1", "B2"]]
    assert cat.texts[0] == ("title: Stapler; categories: Office Products, Staplers; brand: Swingline; "
                            "price: $12.99; description: Heavy duty, Metal; features: 20 sheets")


def test_yelp_academic_dataset(tmp_path):
    d = tmp_path / "yelp"
    d.mkdir()
    (d / "business.json").write_text("".join(json.dumps(b) + "\n" for b in [
        {"business_id": "b1", "name": "Joe's Pizza", "categories": "Pizza, Restaurants", "city": "Tempe",
         "state": "AZ", "stars": 4.5, "hours": {"Monday": "9-5"}},
        {"business_id": "b2", "name": "Sushi Bar", "categories": None, "city": "Tempe", "state": "AZ"}]))
    (d / "review.json").write_text("".join(json.dumps(r) + "\n" for r in [
        {"review_id": "r1", "user_id": "u1", "business_id": "b2", "stars": 5, "date": "2019-01-02 10:00:00"},
        {"review_id": "r2", "user_id": "u1", "business_id": "b1", "stars": 4, "date": "2018-05-01 09:00:00"},
        {"review_id": "r3", "user_id": "u1", "business_id": "b1", "stars": 4, "date": "2020-05-01 09:00:00"}]))
    cat = prepare(PrepareConfig(data=d, out=tmp_path / "out", kcore=1))
    assert cat.sequences == [["b1", "b2", "b1"]]  # repeat visits kept, time order
    assert cat.texts == ["title: Joe's Pizza; categories: Pizza, Restaurants; city: Tempe; state: AZ",
                         "title: Sushi Bar; city: Tempe; state: AZ"]


def test_kcore_is_iterative():
    from catalog.sequences import Interaction, kcore

    xs = [Interaction(u, i, 0, n) for n, (u, i) in enumerate(
        [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")])]
    # 2-core: item c has 1 -> drop; then u3 has 1 -> drop; then a has 2, b has 2: stable
    assert {(x.user, x.item) for x in kcore(xs, 2)} == {("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")}

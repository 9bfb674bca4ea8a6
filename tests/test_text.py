from catalog.text import clean, render_item, truncate_words, value_text


def test_render_key_value_pairs_in_field_order():
    fields = {"brand": "CHI", "title": "Pro Hair Dryer", "categories": ["Beauty", "Hair Care"], "price": 49.5}
    assert render_item(fields) == "title: Pro Hair Dryer; categories: Beauty, Hair Care; brand: CHI; price: 49.5"
    assert render_item(fields, field_order=["brand"]).startswith("brand: CHI; title: Pro Hair Dryer")


def test_html_and_markup_are_stripped_and_whitespace_collapsed():
    raw = "<p>Great&nbsp;<b>dryer</b></p>\n\n  <!-- .css {color:red} --> <script>x()</script> 2 &amp; 3 &lt;i&gt;"
    assert clean(raw) == "Great dryer 2 & 3"


def test_empty_values_dropped_lists_flattened_and_deduplicated():
    fields = {"title": "T", "brand": "", "price": None, "categories": [["Beauty", "Face"], ["Beauty", "Eyes"]],
              "sales_rank": {"Beauty": 10486}, "idgenrec_phase0_id": "not metadata", "item_id": "X1"}
    assert render_item(fields) == "title: T; categories: Beauty, Face, Eyes; sales rank: Beauty 10486"
    assert value_text([]) == ""


def test_word_budgets_truncate_fields_and_text():
    fields = {"title": " ".join(f"w{i}" for i in range(10)), "description": "d " * 50}
    text = render_item(fields, max_field_words=3, max_text_words=6)
    assert text == "title: w0 w1 w2; description: d"
    assert truncate_words("a b c", 0) == "a b c"

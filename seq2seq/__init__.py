"""T5 seq2seq machinery shared by the ID generator and the recommender: building, loading and saving models
(sizes ship in ``sizes/``), the cached decoder, the beam search engine (plain, diverse/group, constrained through the
``edges()/advance()`` protocol), and teacher-forcing batches. It knows nothing of items, IDs or prompts."""

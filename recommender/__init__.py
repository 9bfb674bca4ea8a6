"""The recommender's own parts: prompts, the prefix trie over item IDs, trie-constrained beam decoding to a ranked
top-k. It never imports idgen/."""

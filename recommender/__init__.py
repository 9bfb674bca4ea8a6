"""Recommender (T5): prompts, model, prefix trie over item IDs, constrained beam decoding."""

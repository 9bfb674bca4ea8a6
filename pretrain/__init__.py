"""Corpus building, WebDataset shards, the DeepSpeed trainer."""

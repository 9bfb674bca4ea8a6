"""Training the recommender: WebDataset shards (the format's one owner), batching, the trainer (DeepSpeed ZeRO or
one process), its launcher, and the ID-generator phase of alternate training, where generator and recommender meet."""

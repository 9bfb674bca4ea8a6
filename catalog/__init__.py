"""Bottom layer: items, text rendering, sequences, leave-one-out splits, tokenizer.

Nothing here imports a higher layer (idgen, recommender, eval, pretrain, cluster).
"""

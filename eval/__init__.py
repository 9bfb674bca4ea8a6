"""Measuring: HR@k and NDCG@k, leave-one-out evaluation of a recommender, the baselines (popularity, SASRec), the
run folders results live in, and reports."""

"""Metrics (HR@k, NDCG@k), leave-one-out evaluation, reports, baselines."""

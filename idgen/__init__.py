"""The ID generator: the paper's Algorithm 1 (unique IDs by diverse beam search with escalation), candidate
proposals from a T5, user IDs from history only, warm start on extractive tags. It never imports recommender/."""

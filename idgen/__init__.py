"""ID generator (T5), our diverse (group) beam search, and the paper's Algorithm 1."""

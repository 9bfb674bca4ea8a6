"""Item data: readers of the public formats, text rendering, user sequences, leave-one-out splits, samples, the
multi-domain corpus merge, the catalog store, the tokenizer trained on item text, the ID table, held-out checks.

It imports only infra/."""

"""Orchestration: the Ray ID job (generator actors, the uniqueness registry), the ``idgenrec`` command line, and the
recipes that string components together, one readable file each (standard setting, alternate training, zero-shot,
demo)."""

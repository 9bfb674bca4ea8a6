"""Top layer: Ray actors, job entry points, pipelines, and the ``idgenrec`` command line."""

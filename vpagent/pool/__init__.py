"""Running one piece of work over every item of a dataset: resumable, in worker pools or on Ray.

``vpagent eval`` and ``vpagent distill traces`` both go through :func:`run_items`.
"""

"""Execution: many independent tasks run in-process, on this machine's cores, or on a Ray cluster.

`tasks.run_tasks` is the one layer the sweeps (`pareto`), the recipe suites,
the export fuzz and fleet personalization run their units of work through;
`journal.Journal` writes each result as it arrives so that an interrupted run
re-run with the same arguments computes only the rest.
"""
from hypertiny_keras.execution.journal import Journal, digest
from hypertiny_keras.execution.tasks import check_placement, run_tasks

__all__ = ["Journal", "check_placement", "digest", "run_tasks"]

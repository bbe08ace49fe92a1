"""Running a job's source samples: in chunks of :data:`CHUNK_SIZE`, here or in a pool of forked
worker processes (the job is inherited by the fork, set once per run, never changed per image).
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

from maskbench.pipeline.job import VariantJob

_JOB: VariantJob | None = None  # set once per run before forking workers; never changed per image


#: Source samples per unit of work (see :meth:`VariantJob.process_chunk`).
CHUNK_SIZE = 8


def _one_thread_each() -> None:
    """Each worker runs torch on one thread: the pool is the parallelism, and a forked child never enters an
    OpenMP pool its parent may have started (torch is imported in the worker when not here)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _process_in_worker(keys: list[str]) -> list[dict[str, Any]]:
    assert _JOB is not None
    return _JOB.process_chunk(keys)  # the worker's journal is closed (flushed already) when it exits


def _chunks(keys: list[str], workers: int) -> list[list[str]]:
    """Consecutive chunks of at most :data:`CHUNK_SIZE`, small enough that every worker gets some."""
    size = max(1, min(CHUNK_SIZE, len(keys) // (4 * workers)))
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def run_job(job: VariantJob, todo: list[str], workers: int, bar: Any) -> list[dict[str, Any]]:
    """Process the source keys ``todo``: in a pool of ``workers`` forked processes, or here."""
    global _JOB
    records: list[dict[str, Any]] = []
    if workers > 1 and len(todo) > 1:
        _JOB = job
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers, initializer=_one_thread_each) as pool:
                for chunk_records in pool.imap_unordered(_process_in_worker, _chunks(todo, workers)):
                    records.extend(chunk_records)
                    bar.update(len(chunk_records))
        finally:
            _JOB = None
    else:
        try:
            for chunk in _chunks(todo, 1):
                records.extend(job.process_chunk(chunk))
                bar.update(len(chunk))
        finally:
            job.close_journal()
    return records

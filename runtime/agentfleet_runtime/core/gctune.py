"""Garbage-collector settings of a worker process.

With a thousand tasks in flight, a worker holds many live containers (each task's messages,
steps and coroutine frames) and creates more on every step. CPython's default thresholds
(700 net allocations per young collection) then promote much of that per-step data, which
dies a step or a task later, into the older generations, and every older collection scans
the whole heap, the imported modules' objects included: with the defaults about a fifth of a
busy worker's CPU per step goes to the collector.

``tune()`` (called by ``python -m agentfleet_runtime worker`` once the worker has started) moves everything
alive at that point (modules, classes, configuration: never garbage) out of the collector's
sight with ``gc.freeze()``, and makes young collections rarer, so that most per-step objects
die of reference counting before a collection sees them. Reference cycles are still collected;
a young collection now handles up to YOUNG_THRESHOLD objects at once, against CPython's 700.

Why so many: a young collection can free almost nothing here. A step's short-lived objects die of
reference counting; what is young and still alive at a collection is the running tasks' state
(steps, messages, usage), which lives until its task ends, so the collection scans it and keeps
it. The young count is net (every freed container lowers it), so it passes the threshold only when
that many young objects are alive, and a collection's pause grows with the threshold. The
threshold sits above the live state of 1,000 tasks of 15 steps, so collections stay rare and each
pause stays near what the older generation's collections took with the defaults (the
measurements behind the figure: docs/runtime.md, "Garbage collector").
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 300_000


def tune(young_threshold: int = YOUNG_THRESHOLD) -> None:
    gc.collect()  # what is garbage now is not frozen with the rest
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)

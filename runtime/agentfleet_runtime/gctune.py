"""Garbage-collector settings of a worker process.

With a thousand tasks in flight, a worker holds many live containers (each task's messages,
steps and coroutine frames) and creates more on every step. CPython's default thresholds
(700 net allocations per young collection) then promote much of that per-step data, which
dies a step or a task later, into the older generations, and every older collection scans
the whole heap, the imported modules' objects included: about a fifth of a worker's CPU per step
went to the collector.

``tune()`` (called by ``python -m agentfleet_runtime worker`` once the worker has started) moves everything
alive at that point (modules, classes, configuration: never garbage) out of the collector's
sight with ``gc.freeze()``, and makes young collections rarer, so that most per-step objects
die of reference counting before a collection sees them. Reference cycles are still collected;
a young collection now handles up to YOUNG_THRESHOLD objects at once, against 700 before.

Why so many: a young collection can free almost nothing here. A step's short-lived objects die of
reference counting; what is young and still alive at a collection is the running tasks' state
(steps, messages, usage), which lives until its task ends, so the collection scans it and keeps
it. Measured with 1000 tasks of 15 steps (e2e/bench/runtime_concurrency.py, --long-tasks 8000,
120,000 steps): with collection off, a final full collection found 377 unreachable objects; with
the threshold at 100,000 there were 9-15 young collections of 65-110 ms (0.7-1.1 s, 3-4 % of the
run) plus a 150 ms middle-generation one; at 300,000, one of 140 ms. The young count is net
(every freed container lowers it), so it passes the threshold only when that many young objects
are alive: a collection's pause grows with the threshold (~0.5 us per object, ~140 ms here),
while the collections come only when the tasks' state outgrows it, or from the little garbage
that reference counting cannot free. 300,000 is above the state of 1000 tasks of 15 steps (the
net young count peaks at ~260,000; with 30 steps at ~470,000, and 2000 such tasks saw 2
collections of up to 160 ms against 8 at 100,000) and keeps a pause near what the older
generation's collections took before.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 300_000


def tune(young_threshold: int = YOUNG_THRESHOLD) -> None:
    gc.collect()  # what is garbage now is not frozen with the rest
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)

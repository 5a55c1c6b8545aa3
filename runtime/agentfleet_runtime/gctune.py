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

Why so many: most of what survives a step lives for its task (its steps, messages, usage), so a
young collection mostly scans objects that will not die yet, and fewer, larger collections scan
each of them fewer times. And the young count is net (every freed container lowers it, including
old ones of finished tasks), so the young generation holds several times the threshold when it
is collected. With 1000 tasks of 15 steps (e2e/bench/runtime_concurrency.py): 20,000 gave ~21
young collections of ~19 ms (0.4-0.5 s of GC per 30,000 steps); 100,000 gives 5 of ~40 ms
(0.2 s). A 40 ms pause every few seconds is noise next to a model call.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000


def tune(young_threshold: int = YOUNG_THRESHOLD) -> None:
    gc.collect()  # what is garbage now is not frozen with the rest
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)

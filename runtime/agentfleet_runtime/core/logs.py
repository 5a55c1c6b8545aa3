"""Structured logs: one JSON object per line, carrying the task id and step of the code that logs.

The loop sets ``task_id``/``step`` context variables; every record logged inside it (the tools',
the model client's) carries them without passing them around.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any


class StepRef:
    """The step a task's loop is on, changed in place: the loop sets ``step_var`` to one of these
    once per task, since setting a context variable on every step builds a new context mapping."""

    __slots__ = ("n",)

    def __init__(self, n: int | None = None) -> None:
        self.n = n


task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)
step_var: contextvars.ContextVar[int | StepRef | None] = contextvars.ContextVar("step", default=None)
_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str = "") -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.component:
            out["component"] = self.component
        tid = task_id_var.get()
        if tid is not None:
            out["task_id"] = tid
        step = step_var.get()
        if isinstance(step, StepRef):
            step = step.n
        if step is not None:
            out["step"] = step
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: str = "INFO", component: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log duplicates our own request metrics at info level.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.Formatter.converter = time.gmtime

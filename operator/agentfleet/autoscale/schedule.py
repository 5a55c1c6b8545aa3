"""Scheduled capacity: replicas a person asks for at known times (pure).

For events the history cannot predict (a batch at 09:00, a launch), as KEDA's cron scaler does:
each entry holds ``replicas`` from each match of its five-field cron ``start`` for
``duration_seconds``, in its time zone. The policy merges the largest active entry with its other
terms by max, so a schedule never lowers what load asks for. The replicas are ordered a learned
load time before the start, so they are serving when the event begins.

Cron fields: minute hour day-of-month month day-of-week, each ``*``, a number, a range ``a-b``,
a list ``a,b``, or a step ``*/n`` / ``a-b/n``; day-of-week 0-7 (0 and 7 are Sunday). When both
day fields are restricted, either may match (as in cron).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
# Longest duration walked back minute by minute to find the match an instant falls in.
MAX_DURATION_SECONDS = 7 * 86400


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/", 1)
            if not s.isdigit() or int(s) < 1:
                raise CronError(f"{name}: step {s!r} must be a positive number")
            step = int(s)
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            if not (x.isdigit() and y.isdigit()):
                raise CronError(f"{name}: {part!r} is not a range of numbers")
            a, b = int(x), int(y)
        elif part.isdigit():
            a = b = int(part)
        else:
            raise CronError(f"{name}: {part!r} is not *, a number, a range or a list")
        if a < lo or b > hi or a > b:
            raise CronError(f"{name}: {part!r} is outside {lo}-{hi}")
        out.update(range(a, b + 1, step))
    return frozenset(out)


def parse_cron(text: str) -> Cron:
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{text!r} needs five fields (minute hour day-of-month month day-of-week), got {len(parts)}")
    vals = [_field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in vals[4])
    return Cron(vals[0], vals[1], vals[2], vals[3], weekdays, parts[2] == "*", parts[4] == "*")


@dataclass(frozen=True)
class Window:
    name: str
    start: str  # cron
    duration_seconds: int
    replicas: int
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Scheduled:
    replicas: int
    name: str
    started: datetime  # the match the active window began at (in its time zone)


def active(window: Window, at: float, lead: float = 0.0) -> Scheduled | None:
    """The window's replicas if ``at + lead`` falls in one of its matches' durations."""
    cron = parse_cron(window.start)
    try:
        tz = ZoneInfo(window.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CronError(f"time zone {window.time_zone!r} is unknown") from e
    when = datetime.fromtimestamp(at + lead, UTC).astimezone(tz).replace(second=0, microsecond=0)
    minutes = min(window.duration_seconds, MAX_DURATION_SECONDS) // 60
    for back in range(math.ceil(minutes) + (1 if window.duration_seconds % 60 else 0)):
        t = when - timedelta(minutes=back)
        if cron.matches(t):
            # The minute boundary rounding above: the instant must lie before the match's end.
            end = t.timestamp() + window.duration_seconds
            if at + lead < end:
                return Scheduled(window.replicas, window.name, t)
            return None
    return None


def scheduled(windows: Sequence[Window], at: float, lead: float = 0.0) -> Scheduled | None:
    """The largest active window (ties: the first listed)."""
    best: Scheduled | None = None
    for w in windows:
        s = active(w, at, lead)
        if s is not None and (best is None or s.replicas > best.replicas):
            best = s
    return best

"""The learned demand profile, and the predictive and standing terms built on it (pure).

Why: a burst is served only by the replicas already running or loading when it begins; anything
ordered at its onset loads for minutes (150-240 s for a 70B model here), and the last rounds'
benchmark put 79-100 % of the goodput gap in those first minutes. No reactive rule closes that.
What can: knowing, before the burst, what to hold. This module learns that from the fleet's own
history and turns it into two replica counts the policy merges by max with its reactive terms:

- **predictive**: the replicas the learned time-of-day curve of demand needs over the next load
  time (``lead``), so a diurnal rise is met by replicas ordered a load time before it;
- **standing**: in the times of day where burst onsets have been seen, that curve plus a share
  (``coverage``, the user's knob ``burstCoveragePercent``) of a typical onset's demand, held
  ready ahead of time. Its price, the standby GPU-hours per day, is reported beside it.

Demand is counted in the units the reactive task term already uses: agent tasks queued and in
flight at the AgentFleets calling the model (``Observation.tasks``), and a replica carries
``capacity`` of them within the SLO: the larger of 0.8 x the fewest tasks per replica at which
the SLO was seen to fail (the policy's figure, which a lagging goodput window can set low) and
the most tasks per replica seen within the SLO (``ok_level``, fading slowly): a replica has
carried that many, so sizing below it would only buy idle GPUs. Without a task layer nothing is learned: the engine's
own queue is a symptom of the fleet size, not a measure of demand.

What is learned (``Profile``, kept in a ConfigMap the autoscaler owns so an operator restart
keeps it; see controllers/autoscaler/):

- ``curve``: per time-of-day bin (``bins`` per ``period_seconds``), the highest demand seen in
  the bin outside bursts, averaged over days (EWMA, ``curve_alpha`` per day); with a week of
  history a day-of-week curve (``week``) takes over where it has data;
- ``onsets``: when each burst began and its size: the peak demand above the trailing level over
  the first load time (what the replicas standing at the onset must carry). An onset is a rise
  to at least twice the trailing level (EWMA over ``level_seconds`` outside bursts) and by at
  least two replicas' capacity (``ONSET_REPLICAS``). One that lasts over ``max_burst_seconds`` is no burst but the new
  level (a busy day): the curve then follows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agentfleet.autoscale.floors import PREDICTIVE, SCHEDULED, STANDING, Floor, Hold
from agentfleet.autoscale.schedule import CronError, Scheduled, Window, scheduled

PROFILE_VERSION = 1
MAX_ONSETS = 64
# An onset must add at least this many replicas' worth of demand: a rise of a task or two at a
# quiet hour is noise, and holding replicas for it would cost GPUs for nothing.
ONSET_REPLICAS = 2.0


@dataclass(frozen=True)
class ForecastConfig:
    # Share (0-1) of a typical burst onset's demand held ready, where onsets have been seen.
    coverage: float = 0.0
    predictive: bool = True
    period_seconds: float = 86400.0  # one day
    bins: int = 96  # 15 min bins
    # An onset seen at some time of day makes the standing term hold within this distance of it.
    season_seconds: float = 3600.0
    level_seconds: float = 300.0  # trailing level of demand outside bursts (onset detection)
    # A "burst" that lasts longer is the new normal (a busy day, a launch): the level jumps to it.
    max_burst_seconds: float = 1800.0
    memory_periods: int = 14  # onsets older than this many periods are forgotten
    curve_alpha: float = 0.5  # weight of the newest period in a bin's curve value
    gpus_per_replica: int = 1  # for pricing the standing term

    @property
    def bin_seconds(self) -> float:
        return self.period_seconds / self.bins


@dataclass(frozen=True)
class Onset:
    at: float  # when the burst began (seconds since the epoch)
    size: float  # peak demand above the trailing level over its first load time
    seconds: float | None = None  # how long demand stayed up (None: not ended when last seen)


@dataclass(frozen=True)
class Profile:
    """What the autoscaler learned about one ModelReplicaSet's demand (persisted as JSON)."""

    capacity: float | None = None  # demand one replica carries within the SLO
    ok_level: float | None = None  # the most demand per replica seen within the SLO
    curve: tuple[float | None, ...] = ()
    week: tuple[float | None, ...] = ()  # 7 x bins, day-of-week curve (periods counted from the epoch)
    onsets: tuple[Onset, ...] = ()
    started_at: float | None = None
    # Tracking between evaluations (persisted too, so a restart mid-burst records it once).
    level: float | None = None
    seen_at: float | None = None
    bin_index: int | None = None  # absolute bin number of the bin being filled
    bin_peak: float = 0.0
    burst_at: float | None = None
    burst_peak: float = 0.0
    burst_recorded: bool = False

    def periods_seen(self, now: float, config: ForecastConfig) -> float:
        return 0.0 if self.started_at is None else max(0.0, now - self.started_at) / config.period_seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "capacity": self.capacity,
            "okLevel": self.ok_level,
            "curve": list(self.curve),
            "week": list(self.week),
            "onsets": [
                [round(o.at, 1), round(o.size, 3)] + ([] if o.seconds is None else [round(o.seconds, 1)])
                for o in self.onsets
            ],
            "startedAt": self.started_at,
            "level": self.level,
            "seenAt": self.seen_at,
            "binIndex": self.bin_index,
            "binPeak": self.bin_peak,
            "burstAt": self.burst_at,
            "burstPeak": self.burst_peak,
            "burstRecorded": self.burst_recorded,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], config: ForecastConfig) -> Profile:
        """The stored profile; an unknown version or a different bin count starts afresh (a
        curve binned differently cannot be read bin for bin)."""
        if data.get("version") != PROFILE_VERSION:
            return cls()
        curve = tuple(None if v is None else float(v) for v in data.get("curve") or ())
        week = tuple(None if v is None else float(v) for v in data.get("week") or ())
        if curve and len(curve) != config.bins:
            return cls()
        return cls(
            capacity=_opt(data.get("capacity")),
            ok_level=_opt(data.get("okLevel")),
            curve=curve,
            week=week if len(week) == 7 * config.bins else (),
            onsets=tuple(
                Onset(float(o[0]), float(o[1]), float(o[2]) if len(o) > 2 else None) for o in data.get("onsets") or ()
            ),
            started_at=_opt(data.get("startedAt")),
            level=_opt(data.get("level")),
            seen_at=_opt(data.get("seenAt")),
            bin_index=None if data.get("binIndex") is None else int(data["binIndex"]),
            bin_peak=float(data.get("binPeak") or 0.0),
            burst_at=_opt(data.get("burstAt")),
            burst_peak=float(data.get("burstPeak") or 0.0),
            burst_recorded=bool(data.get("burstRecorded")),
        )


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else (1 - alpha) * old + alpha * new


OK_LEVEL_DECAY = 0.9995  # per evaluation: halves in about 6 h at 15 s periods


def within_slo(
    tasks: float | None, ready: int, fraction: float | None, significant: bool, target: float
) -> float | None:
    """Demand per ready replica, when the window's goodput met its target (else None)."""
    if tasks is None or ready <= 0 or fraction is None or not significant or fraction < target:
        return None
    return tasks / ready


def learn(
    config: ForecastConfig,
    p: Profile,
    at: float,
    demand: float | None,
    capacity: float | None,
    load_s: float,
    within_slo: float | None = None,
) -> Profile:
    """Fold one observation of demand into the profile. ``capacity``: the policy's figure (0.8 x
    its failure level); ``within_slo``: demand per ready replica now, when goodput met its target."""
    ok = p.ok_level * OK_LEVEL_DECAY if p.ok_level else None
    if within_slo is not None and within_slo > 0:
        ok = max(ok or 0.0, within_slo)
    best = max([c for c in (capacity, ok) if c is not None and c > 0], default=None)
    p = replace(p, ok_level=ok, capacity=best if best is not None else p.capacity)
    if demand is None:
        return p
    if p.started_at is None:
        p = replace(p, started_at=at)
    cap = p.capacity or 1.0
    level = p.level
    burst_at, peak, recorded = p.burst_at, p.burst_peak, p.burst_recorded
    onsets = list(p.onsets)
    if level is None:
        level = demand
    excess = demand - level
    if burst_at is None:
        if excess >= max(ONSET_REPLICAS * cap, level):
            burst_at, peak, recorded = at, excess, False
        else:
            dt = max(0.0, at - (p.seen_at if p.seen_at is not None else at))
            level += (demand - level) * (1 - math.exp(-dt / config.level_seconds))
    else:
        if at - burst_at <= load_s:
            peak = max(peak, excess)
        ended = excess < 0.5 * max(ONSET_REPLICAS * cap, level)
        if not recorded and (ended or at - burst_at > load_s):
            onsets.append(Onset(burst_at, peak))
            recorded = True
        if ended:
            # How long it lasted, backlog included: what replicas ordered at its onset would serve.
            onsets = [replace(o, seconds=at - burst_at) if o.at == burst_at else o for o in onsets]
            burst_at, peak, recorded = None, 0.0, False
        elif at - burst_at > config.max_burst_seconds:
            burst_at, peak, recorded, level = None, 0.0, False, demand
    horizon = at - config.memory_periods * config.period_seconds
    onsets = [o for o in onsets if o.at > horizon][-MAX_ONSETS:]

    # The time-of-day curve: a bin's highest demand outside bursts (the trailing level stands in
    # during a burst), committed when the next bin begins.
    value = demand if burst_at is None else level
    index = int(at // config.bin_seconds)
    curve = list(p.curve) or [None] * config.bins
    week = list(p.week) or [None] * (7 * config.bins)
    bin_index, bin_peak = p.bin_index, p.bin_peak
    if bin_index is None or index != bin_index:
        if bin_index is not None:
            b = bin_index % config.bins
            curve[b] = _ewma(curve[b], bin_peak, config.curve_alpha)
            w = bin_index % (7 * config.bins)
            week[w] = _ewma(week[w], bin_peak, config.curve_alpha)
        bin_index, bin_peak = index, value
    else:
        bin_peak = max(bin_peak, value)
    return replace(
        p,
        curve=tuple(curve),
        week=tuple(week),
        onsets=tuple(onsets),
        level=level,
        seen_at=at,
        bin_index=bin_index,
        bin_peak=bin_peak,
        burst_at=burst_at,
        burst_peak=peak,
        burst_recorded=recorded,
    )


@dataclass(frozen=True)
class Forecast:
    """The learned terms at one instant; ``None`` where the profile cannot say yet."""

    predictive: int | None = None
    standing: int | None = None
    base_demand: float | None = None  # the curve's demand over the next load time
    typical_onset: float | None = None  # median onset size (demand)
    season_onset: float | None = (
        None  # the same over the onsets seen near this time of day (what standing holds a share of)
    )
    onsets_per_period: float | None = None
    in_season: bool = False
    standby_gpu_hours_per_period: float | None = None
    # In a burst that bursts seen at this time of day outlived by less than a load time: replicas
    # ordered now would load after it (hold_until: when it outlives them, hold_burst_s: their median).
    hold_until: float | None = None
    hold_burst_s: float | None = None
    # Or: the burst just ended (demand back under the onset threshold) less than the readings'
    # window ago, and their goodput still shows it (when it ended; hold_until: a window after).
    hold_ended_at: float | None = None
    # The standby was released for the rest of this burst season: today's bursts in it have come
    # and ended (when the last ended), as many as any remembered day brought in it.
    released_at: float | None = None
    notes: tuple[str, ...] = field(default=())


def _curve_at(config: ForecastConfig, p: Profile, index: int, weekly: bool) -> float | None:
    if weekly and p.week:
        v = p.week[index % (7 * config.bins)]
        if v is not None:
            return v
    return p.curve[index % config.bins] if p.curve else None


def _tod_distance(a: float, b: float, period: float) -> float:
    d = abs(a - b) % period
    return min(d, period - d)


def _near(config: ForecastConfig, onsets: Sequence[Onset], start: float, lead: float) -> list[Onset]:
    """The onsets seen, on some remembered day, within season_seconds of [start, start + lead] in
    time of day."""
    period = config.period_seconds
    s = start % period
    # Distance from an onset's time of day to the interval [s, s + lead] on the circle.
    return [
        o
        for o in onsets
        if (o.at % period - s) % period <= lead
        or min(_tod_distance(o.at % period, s, period), _tod_distance(o.at % period, s + lead, period))
        <= config.season_seconds
    ]


def typical_size(onsets: Sequence[Onset]) -> float | None:
    """The onset size half of all onset demand came in (the size-weighted median). A plain median
    is set by the many small rises a diurnal morning also shows, and standing capacity sized on it
    holds a fraction of what a real burst brings; weighting by size keeps those small rises from
    outvoting the bursts that carry the demand, without ignoring a season of only small rises."""
    sizes = sorted((o.size for o in onsets if o.size > 0), reverse=True)
    total = sum(sizes)
    acc = 0.0
    for size in sizes:
        acc += size
        if acc >= total / 2:
            return size
    return None


# Bursts seen (with a known end) before the learned length is trusted to hold back an order.
HOLD_MIN_BURSTS = 2
# Remembered days with a burst in a season before "as many as a day brings" releases its standby.
RELEASE_MIN_DAYS = 2
# Seasons are drawn, and today's bursts counted, from onsets at least this share of the typical
# one: a diurnal morning also shows small rises, and counted they would chain every time of day
# into one season and "use up" a season before its burst came.
MAJOR_SHARE = 0.5


def _season(
    config: ForecastConfig, onsets: Sequence[Onset], at: float, lead: float
) -> tuple[list[Onset], float] | None:
    """The burst season ``at`` falls in, and when its occurrence today began.

    Each onset seen makes the standing term hold over [its time of day - lead - season, + season];
    a season is a run of those intervals that touch (the spread of times a daily burst starts
    at, learned from the onsets rather than fixed around each one). Today's occurrence of it
    begins where its first interval does. None when ``at`` is in no season or the season covers
    the whole period (it has no start)."""
    period = config.period_seconds
    span = lead + 2 * config.season_seconds  # onsets closer than this in time of day share a season
    tods = sorted(o.at % period for o in onsets)
    if not tods:
        return None
    runs: list[list[float]] = [[tods[0]]]
    for t in tods[1:]:
        if t - runs[-1][-1] <= span:
            runs[-1].append(t)
        else:
            runs.append([t])
    if tods[0] + period - tods[-1] <= span:
        if len(runs) == 1:
            return None  # every time of day is in season: there is no "rest of the season"
        runs[0] = [t - period for t in runs.pop()] + runs[0]  # the season across the period's end
    s = at % period
    for run in runs:
        start = run[0] - lead - config.season_seconds
        into = (s - start) % period
        if into <= run[-1] - run[0] + span:
            began = at - into
            # Today's burst may start earlier or later than any seen: the whole span counts.
            inside = [o for o in onsets if (o.at % period - start) % period <= run[-1] - run[0] + span]
            return inside, began
    return None


def _released(config: ForecastConfig, p: Profile, at: float, lead: float) -> tuple[float | None, int]:
    """When today's bursts in the season ``at`` falls in have all come and gone, as many as the
    most any remembered day brought in it (a daily batch that starts at some time between 09:00
    and 09:15 comes once): the standby for the rest of the season buys nothing, and is released.
    Returns when the last of today's ended (None: hold on) and that most a day."""
    typical = typical_size(p.onsets)
    if typical is None:
        return None, 0
    major = [o for o in p.onsets if o.size >= MAJOR_SHARE * typical]
    found = _season(config, major, at, lead)
    # A burst on now that has grown to a major one's size is more than any day brought: the
    # standby stands for it. A small rise (a diurnal step) does not bring it back.
    if found is None or (p.burst_at is not None and p.burst_peak >= MAJOR_SHARE * typical):
        return None, 0
    inside, began = found
    per_day: dict[int, int] = {}
    today: list[Onset] = []
    for o in inside:
        k = math.floor((o.at - began) / config.period_seconds)
        if k >= 0:
            today.append(o)
        else:
            per_day[k] = per_day.get(k, 0) + 1
    if len(per_day) < RELEASE_MIN_DAYS:
        return None, 0
    most = max(per_day.values())
    if len(today) < most or any(o.seconds is None for o in today):
        return None, most
    return max(o.at + (o.seconds or 0.0) for o in today), most


def _short_burst(
    p: Profile, near: Sequence[Onset], at: float, lead: float, lag: float = 0.0
) -> tuple[float | None, float | None]:
    """While a burst is on (p.burst_at): when the bursts seen near this time of day typically end
    before replicas ordered now could serve (their median length, backlog included, ends within
    ``lead``, a load time and a period), until when to hold the reactive order back: that end,
    plus ``lag``, the window the reactive terms read over, which still shows the burst that long
    after it ended. A burst that outlives that is not a typical one, and the hold ends."""
    if p.burst_at is None:
        return None, None
    lengths = sorted(o.seconds for o in near if o.seconds is not None)
    if len(lengths) < HOLD_MIN_BURSTS:
        return None, None
    typical = lengths[len(lengths) // 2]
    until = p.burst_at + typical
    if at <= until + lag and until < at + lead:
        return until + lag, typical
    return None, None


def _just_ended(p: Profile, at: float, lag: float) -> float | None:
    """When the last burst ended, if that was at most ``lag`` (the reactive terms' window) ago
    and none is on now: their goodput still shows it, and a rise ordered on it loads to a fleet
    whose demand is back to its level. The typical-burst hold (_short_burst) ends with the burst
    as the profile sees it; without this, every short burst drew a rise at the evaluation its end
    was seen (docs/autoscaling.md)."""
    if p.burst_at is not None or lag <= 0:
        return None
    ends = [o.at + o.seconds for o in p.onsets if o.seconds is not None]
    end = max(ends, default=None)
    return end if end is not None and 0.0 <= at - end < lag else None


def forecast(config: ForecastConfig, p: Profile, at: float, lead: float, lag: float = 0.0) -> Forecast:
    """What the profile asks for now, to be ready ``lead`` seconds (a load time) ahead."""
    cap = p.capacity
    if cap is None or cap <= 0 or not p.curve:
        return Forecast(notes=("no demand profile learned yet",))
    weekly = p.periods_seen(at, config) >= 7
    first = int(at // config.bin_seconds)
    last = int((at + lead) // config.bin_seconds)
    values = [v for i in range(first, last + 1) if (v := _curve_at(config, p, i, weekly)) is not None]
    base = max(values) if values else None
    predictive = math.ceil(base / cap) if base is not None and config.predictive else None
    typical = typical_size(p.onsets)
    periods = p.periods_seen(at, config)
    per_period = len(p.onsets) / max(1.0, periods) if p.onsets else 0.0
    # What is held in a time of day is sized on the onsets seen near it: a season of small
    # morning rises holds little, the afternoon's big bursts hold much.
    seen_near = _near(config, p.onsets, at, lead)
    near = typical_size(seen_near)
    season = near is not None
    standing = None
    price = None
    released_at = None
    notes: tuple[str, ...] = ()
    if typical is not None and config.coverage > 0:
        if near is not None:
            released_at, most = _released(config, p, at, lead)
            if released_at is None:
                standing = math.ceil(((base or 0.0) + config.coverage * near) / cap)
            else:
                notes = (
                    (
                        f"standby released for the rest of this burst season: it brought at most {most} a day, and "
                        f"today's ended {at - released_at:.0f}s ago"
                    ),
                )
        # The standby's price: in each bin of a day, the extra replicas its season holds.
        step = config.bin_seconds
        extra = 0
        for b in range(config.bins):
            size = typical_size(_near(config, p.onsets, b * step, lead))
            extra += math.ceil(config.coverage * size / cap) if size is not None else 0
        price = extra * config.gpus_per_replica * step / 3600.0
    # The bursts seen at the time of day this one began (it may be minutes in by now).
    began_near = _near(config, p.onsets, p.burst_at, 0.0) if p.burst_at is not None else []
    hold_until, hold_burst_s = _short_burst(p, began_near, at, lead, lag)
    ended_at = _just_ended(p, at, lag) if hold_until is None else None
    if ended_at is not None:
        hold_until = ended_at + lag
    return Forecast(
        hold_until=hold_until,
        hold_burst_s=hold_burst_s,
        hold_ended_at=ended_at,
        predictive=predictive,
        standing=standing,
        base_demand=base,
        typical_onset=typical,
        season_onset=near,
        onsets_per_period=per_period,
        in_season=season,
        standby_gpu_hours_per_period=price,
        released_at=released_at,
        notes=notes,
    )


@dataclass(frozen=True)
class Lookahead:
    """One evaluation's learned and scheduled floors, and the profile after learning."""

    profile: Profile
    floors: tuple[Floor, ...]
    forecast: Forecast
    scheduled: Scheduled | None = None
    schedule_error: str | None = None
    hold: Hold | None = None


def look_ahead(
    config: ForecastConfig,
    profile: Profile,
    windows: Sequence[Window],
    at: float,
    demand: float | None,
    capacity: float | None,
    load_s: float,
    period_s: float,
    within_slo: float | None = None,
    lag_s: float = 0.0,
) -> Lookahead:
    """Learn from this evaluation's demand, then the floors for the policy: ordered a load time
    (plus one evaluation period) ahead, so they are serving when the rise or the event begins.
    ``lag_s``: the window the reactive terms read over (how long a burst still shows in them)."""
    profile = learn(config, profile, at, demand, capacity, load_s, within_slo)
    lead = load_s + period_s
    f = forecast(config, profile, at, lead, lag_s)
    out: list[Floor] = []
    cap = profile.capacity
    if f.predictive is not None and f.base_demand is not None and cap:
        out.append(
            Floor(
                f.predictive,
                PREDICTIVE,
                f"learned curve: {f.base_demand:.0f} agent tasks within the next {lead:.0f}s, {cap:.1f} per replica",
            )
        )
    if f.standing is not None and f.season_onset is not None and cap:
        out.append(
            Floor(
                f.standing,
                STANDING,
                (
                    f"burst season: {config.coverage:.0%} of a typical onset at this time of day "
                    f"({f.season_onset:.0f} agent tasks) held over {f.base_demand or 0:.0f} expected, {cap:.1f} per "
                    "replica"
                ),
            )
        )
    sched, error = None, None
    try:
        sched = scheduled(windows, at, lead)
    except CronError as e:
        error = str(e)
    if sched is not None:
        out.append(
            Floor(
                sched.replicas,
                SCHEDULED,
                f"schedule {sched.name!r} from {sched.started:%Y-%m-%d %H:%M %Z} (ordered {lead:.0f}s ahead)",
            )
        )
    hold = None
    if f.hold_until is not None and f.hold_ended_at is not None:
        hold = Hold(
            f.hold_until,
            (
                f"the burst ended {at - f.hold_ended_at:.0f}s ago (agent tasks back near their level), and the last "
                f"{lag_s:.0f}s of readings still show it"
            ),
        )
    elif f.hold_until is not None and f.hold_burst_s is not None:
        hold = Hold(
            f.hold_until,
            (
                f"bursts at this time of day end {f.hold_burst_s:.0f}s after they begin, before a replica ordered now "
                f"loads ({load_s:.0f}s)"
            )
            + (f", and show in the last {lag_s:.0f}s of readings after" if lag_s else ""),
        )
    return Lookahead(profile, tuple(out), f, sched, error, hold)

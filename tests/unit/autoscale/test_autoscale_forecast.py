"""The learned demand profile and the predictive, standing and scheduled floors, on hand-made days."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agentfleet.autoscale import floors
from agentfleet.autoscale.forecast import ForecastConfig, Onset, Profile, forecast, learn, look_ahead
from agentfleet.autoscale.policy import (
    FleetView,
    Observation,
    PolicyConfig,
    PolicyState,
    ReplicaSample,
    Starting,
    decide,
)
from agentfleet.autoscale.schedule import CronError, Window, active, parse_cron, scheduled

DAY = 3600.0  # a compressed day: 96 bins of 37.5 s
CFG = ForecastConfig(period_seconds=DAY, bins=96, season_seconds=150.0, level_seconds=300.0)


def day_of(
    demand,
    days: int = 1,
    start: float = 0.0,
    profile: Profile | None = None,
    capacity: float = 4.0,
    load_s: float = 200.0,
) -> Profile:  # type: ignore[no-untyped-def]
    p = profile or Profile()
    for d in range(days):
        t = 0.0
        while t < DAY:
            p = learn(CFG, p, start + d * DAY + t, demand(t), capacity, load_s)
            t += 15.0
    return p


def quiet(t: float) -> float:
    # 4 tasks all day, rising over 15 min to 20 at 40 min: a diurnal rise, slow enough to be no burst.
    if t < 1500:
        return 4.0
    if t < 2400:
        return 4.0 + 16.0 * (t - 1500) / 900
    return 20.0 if t < 3000 else 4.0


def with_burst(t: float) -> float:
    # A burst of +40 tasks for 150 s at 20 min, on top of 4.
    return 44.0 if 1200 <= t < 1350 else 4.0


def test_the_curve_learns_the_time_of_day_demand_and_orders_a_load_time_ahead() -> None:
    p = day_of(quiet, days=2)
    # At 36 min the curve reads 15 now, and within the next 215 s (load + period) 20:
    f = forecast(CFG, p, 2 * DAY + 2190.0, 215.0)
    assert f.base_demand == pytest.approx(20.0, abs=0.5)
    assert f.predictive == 5  # ceil(20 / 4 per replica)
    # Far from the rise it asks for what the night needs.
    assert forecast(CFG, p, 2 * DAY + 300.0, 215.0).predictive == 1
    # A slow rise is no burst.
    assert p.onsets == ()


def test_a_burst_is_an_onset_with_its_size_not_part_of_the_curve() -> None:
    p = day_of(with_burst)
    assert len(p.onsets) == 1
    assert p.onsets[0].at == pytest.approx(1200.0)
    assert p.onsets[0].size == pytest.approx(40.0)
    # The curve holds the trailing level over the burst, not the burst.
    assert max(v for v in p.curve if v is not None) == pytest.approx(4.0)


def test_standing_capacity_holds_the_chosen_share_of_an_onset_only_in_burst_season() -> None:
    p = day_of(with_burst, days=2)
    half = replace(CFG, coverage=0.5)
    # The next day 2 min before the time bursts came: 4 expected + 50 % of 40 = 24 tasks -> 6.
    f = forecast(half, p, 2 * DAY + 1080.0, 215.0)
    assert f.in_season and f.standing == 6
    # Mid-morning, far from any onset seen: nothing held beyond the curve.
    f = forecast(half, p, 2 * DAY + 300.0, 215.0)
    assert not f.in_season and f.standing is None
    # The price: 5 extra replicas over the part of a day in season: from a load time + the season
    # before the onset's time to the season after it, 150 + 215 + 150 s, in 37.5 s bins.
    assert f.standby_gpu_hours_per_period == pytest.approx(5 * (150 + 215 + 150) / 3600.0, rel=0.1)
    # No coverage, no standing term.
    assert forecast(CFG, p, 2 * DAY + 1080.0, 215.0).standing is None


def test_the_profile_survives_a_round_trip_through_its_configmap() -> None:
    p = day_of(with_burst, days=2)
    data = json.loads(json.dumps(p.to_json()))
    q = Profile.from_json(data, CFG)
    assert q == p
    # A profile binned differently is not read bin for bin: it starts afresh.
    assert Profile.from_json(data, replace(CFG, bins=48)) == Profile()


def test_plan_merges_into_the_policy_by_max_and_names_the_term() -> None:
    p = day_of(with_burst, days=2)
    half = replace(CFG, coverage=0.5)
    planned = look_ahead(half, p, (), 2 * DAY + 1080.0, 4.0, 4.0, 200.0, 15.0)
    assert {f.term for f in planned.floors} == {floors.PREDICTIVE, floors.STANDING}
    c = PolicyConfig(min_replicas=1, max_replicas=20, up_window_seconds=0.0, max_up_step=8)
    obs = Observation(at=2 * DAY + 1080.0, samples=(ReplicaSample("r0", 0.0, 2.0, 0.1),), tasks=4.0)
    out = decide(c, PolicyState.initial(c), FleetView(current=1, ready=("r0",)), obs, floors=planned.floors)
    assert out.decision.desired == 6 and out.decision.term == floors.STANDING
    assert out.decision.reason.startswith("1 -> 6 (standing): burst season")
    # Never below the reactive terms: a queue asking for 10 wins over the floors.
    busy = replace(obs, samples=(ReplicaSample("r0", 80.0, 2.0, 0.1),))
    out = decide(c, PolicyState.initial(c), FleetView(current=1, ready=("r0",)), busy, floors=planned.floors)
    assert out.decision.recommendation == 10 and out.decision.term == floors.REACTIVE


def test_a_floor_is_not_cancelled_as_a_burst_order() -> None:
    # Replicas the floor ordered are loading while the tasks are few: the reactive burst cancel
    # must not take them back (they are there for the onset to come).
    c = PolicyConfig(min_replicas=1, max_replicas=20, up_window_seconds=0.0, down_window_seconds=60.0)
    state = PolicyState.initial(c)
    state = replace(state, tight_tasks_per_replica=5.0, burst_floor=1)
    starting = tuple(Starting(f"s{i}", 30.0) for i in range(5))
    fleet = FleetView(current=6, ready=("r0",), starting=starting)
    obs = Observation(at=1000.0, samples=(ReplicaSample("r0", 0.0, 1.0, 0.1),), tasks=1.0)
    floor = floors.Floor(6, floors.STANDING, "burst season")
    assert decide(c, state, fleet, obs, floors=(floor,)).decision.desired == 6


def test_scheduled_capacity_from_a_cron_window_ordered_a_load_time_ahead() -> None:
    w = Window("batch", "0 9 * * 1-5", 3600, 8, "Europe/Berlin")
    mon_9 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC).timestamp()  # 09:00 in Berlin (CET), a Monday
    assert active(w, mon_9 + 600) is not None
    assert active(w, mon_9 + 3600) is None  # ended
    assert active(w, mon_9 - 200) is None
    assert active(w, mon_9 - 200, lead=215.0) is not None  # ordered to be serving at 09:00
    sat_9 = mon_9 - 2 * 86400
    assert active(w, sat_9 + 600) is None  # weekdays only
    two = [w, Window("launch", "30 9 23 11 *", 600, 12)]
    assert scheduled(two, mon_9 + 600).replicas == 8  # type: ignore[union-attr]
    assert scheduled(two, datetime(2026, 11, 23, 9, 35, tzinfo=UTC).timestamp()).replicas == 12  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0 9 * *", "five fields"),
        ("61 * * * *", "minute"),
        ("* 9-7 * * *", "hour"),
        ("*/0 * * * *", "step"),
        ("a * * * *", "minute"),
    ],
)
def test_bad_cron_is_refused_with_the_field_named(text: str, fragment: str) -> None:
    with pytest.raises(CronError, match=fragment):
        parse_cron(text)


def test_an_unknown_time_zone_is_reported_not_raised_by_look_ahead() -> None:
    planned = look_ahead(
        CFG, Profile(), (Window("x", "0 9 * * *", 60, 3, "Mars/Olympus"),), 0.0, None, None, 200.0, 15.0
    )
    assert planned.floors == () and "Mars/Olympus" in str(planned.schedule_error)


def test_onsets_older_than_the_memory_are_forgotten() -> None:
    p = Profile(capacity=4.0, onsets=(Onset(0.0, 40.0),))
    short = replace(CFG, memory_periods=2)
    p = learn(short, p, 3 * DAY, 4.0, 4.0, 200.0)
    assert p.onsets == ()


def test_with_a_week_of_history_the_day_of_week_curve_takes_over() -> None:
    # Day 5 of each week is busy (40 tasks), the others quiet (4): after 8 days the weekday curve
    # says so, where the daily curve would average them.
    p = Profile()
    for d in range(8):
        p = day_of(lambda t, d=d: 40.0 if d % 7 == 5 else 4.0, start=d * DAY, profile=p)
    # (The jump to 40 at the busy day's start counts as a burst for max_burst_seconds, 1800 s,
    # then as the day's level.)
    busy = forecast(CFG, p, 12 * DAY + 2400.0, 215.0)  # day 12 = weekday 5
    quiet_day = forecast(CFG, p, 9 * DAY + 2400.0, 215.0)  # weekday 2
    assert busy.predictive == 10 and quiet_day.predictive == 1


def test_a_schedule_raises_the_count_even_while_metrics_are_unavailable() -> None:
    c = PolicyConfig(min_replicas=1, max_replicas=20, max_up_step=4)
    obs = Observation(at=0.0, error="connection refused")
    fleet = FleetView(current=3, ready=("r0", "r1", "r2"))
    floor = floors.Floor(6, floors.SCHEDULED, "schedule 'batch'")
    d = decide(c, PolicyState.initial(c), fleet, obs, floors=(floor,)).decision
    assert d.desired == 6 and d.term == floors.SCHEDULED and d.recommendation is None
    assert d.reason.startswith("3 -> 6 (scheduled): schedule 'batch'; metrics unavailable")
    # Blind, a floor below the count changes nothing: it holds.
    low = floors.Floor(2, floors.SCHEDULED, "schedule 'batch'")
    assert decide(c, PolicyState.initial(c), fleet, obs, floors=(low,)).decision.desired == 3


def test_capacity_is_at_least_what_a_replica_was_seen_to_carry_within_the_slo() -> None:
    # The policy's failure level says 2 (a lagging window blamed a quiet moment), but replicas
    # have carried 6 tasks each within the SLO: size on 6, not 2.
    p = learn(CFG, Profile(), 0.0, 12.0, 2.0, 200.0, within_slo=6.0)
    assert p.capacity == 6.0 and p.ok_level == 6.0
    # It fades slowly, and a higher failure-derived figure wins when there is one.
    p = learn(CFG, p, 15.0, 12.0, 8.0, 200.0)
    assert p.capacity == 8.0 and p.ok_level == pytest.approx(6.0 * 0.9995)


def small_mornings_big_afternoons(t: float) -> float:
    # Every day: three rises of +10 tasks for 150 s in the morning (10, 14, 18 min), and one burst
    # of +60 tasks for 150 s in the afternoon (40 min), on top of 4.
    for start, height in ((600.0, 10.0), (840.0, 10.0), (1080.0, 10.0), (2400.0, 60.0)):
        if start <= t < start + 150.0:
            return 4.0 + height
    return 4.0


def test_standing_is_sized_on_the_onsets_seen_at_that_time_of_day() -> None:
    # Pins: the small morning rises (6 of the 8 onsets seen) neither set the afternoon's standing
    # capacity (a plain median of all onsets would: 10 tasks) nor inherit the afternoon's size.
    p = day_of(small_mornings_big_afternoons, days=2)
    assert len(p.onsets) == 8
    half = replace(CFG, coverage=0.5)
    afternoon = forecast(half, p, 2 * DAY + 2280.0, 215.0)
    assert afternoon.standing == math.ceil((4 + 0.5 * 60) / 4)  # 9, where the median of all gives 3
    morning = forecast(half, p, 2 * DAY + 780.0, 215.0)
    assert morning.standing == math.ceil((4 + 0.5 * 10) / 4)  # 3, not the afternoon's 9
    # The status figure: the onset size half of all onset demand came in (60 x 2 of 180 total).
    assert afternoon.typical_onset == pytest.approx(60.0)


def test_the_standing_floor_names_the_onset_size_it_was_sized_on() -> None:
    # Pins the reason's words: the morning holds 3 replicas for its 10-task rises, and says so; it
    # used to name the size over all onsets (60 tasks, the afternoon's), which would hold 9.
    p = day_of(small_mornings_big_afternoons, days=2)
    planned = look_ahead(replace(CFG, coverage=0.5), p, (), 2 * DAY + 780.0, 4.0, 4.0, 200.0, 15.0)
    standing = [f for f in planned.floors if f.term == floors.STANDING]
    assert standing == [
        floors.Floor(
            3,
            floors.STANDING,
            (
                "burst season: 50% of a typical onset at this time of day (10 agent tasks) held over 4 expected, 4.0 "
                "per replica"
            ),
        )
    ]


def test_a_burst_records_how_long_it_lasted_and_keeps_it_through_the_configmap() -> None:
    p = day_of(with_burst)
    assert p.onsets[0].seconds == pytest.approx(150.0, abs=15.0)
    q = Profile.from_json(json.loads(json.dumps(p.to_json())), CFG)
    assert q.onsets == p.onsets
    # A profile written before lengths were kept reads as lengths unknown.
    old = {**p.to_json(), "onsets": [[o.at, o.size] for o in p.onsets]}
    assert Profile.from_json(old, CFG).onsets[0].seconds is None


def test_no_replicas_are_ordered_for_a_burst_that_ends_before_they_load() -> None:
    # Pins the hold: bursts at this time of day have lasted 150 s and a replica loads in 200 s, so
    # the queue the burst builds orders nothing until the burst outlives the ones seen (150 s);
    # after that it is no typical burst and the rise goes ahead.
    p = day_of(with_burst, days=2)
    c = PolicyConfig(min_replicas=1, max_replicas=20, up_window_seconds=0.0, max_up_step=8)
    onset = 2 * DAY + 1200.0
    busy = (ReplicaSample("r0", 80.0, 2.0, 0.1),)
    fleet = FleetView(current=1, ready=("r0",))
    p = learn(CFG, p, onset - 15.0, 4.0, 4.0, 200.0)
    planned = look_ahead(CFG, p, (), onset, 44.0, 4.0, 200.0, 15.0)
    assert planned.hold is not None and planned.hold.until == pytest.approx(onset + p.onsets[0].seconds)  # type: ignore[operator]
    out = decide(c, PolicyState.initial(c), fleet, Observation(at=onset, samples=busy, tasks=44.0), hold=planned.hold)
    assert out.decision.desired == 1
    assert "not ordering 9 more for 150s: bursts at this time of day end 150s after they begin" in out.decision.reason
    # Past the length of the bursts seen, the same queue orders.
    late = planned.hold.until + 15.0  # type: ignore[union-attr]
    out = decide(c, PolicyState.initial(c), fleet, Observation(at=late, samples=busy, tasks=44.0), hold=planned.hold)
    assert out.decision.desired == 9
    # Bursts that outlast the load time hold nothing back.
    long_p = day_of(lambda t: 44.0 if 1200 <= t < 1600 else 4.0, days=2)
    long_p = learn(CFG, long_p, onset - 15.0, 4.0, 4.0, 200.0)
    assert look_ahead(CFG, long_p, (), onset, 44.0, 4.0, 200.0, 15.0).hold is None


def bursts_at(*starts: float):  # type: ignore[no-untyped-def]
    # +40 tasks for 150 s at each start, on top of 4.
    return lambda t: 44.0 if any(s <= t < s + 150.0 for s in starts) else 4.0


def test_the_standby_is_released_once_the_days_burst_in_its_season_has_come_and_gone() -> None:
    # Pins the release: bursts came once a day somewhere in 20-25 min (one season: their times of
    # day are closer than a load time and two seasons). Today's came early, at 16:30, and ended;
    # nothing more came on any day in that season, so holding through 25 min buys nothing.
    p = day_of(bursts_at(1200.0), days=1)
    p = day_of(bursts_at(1500.0), days=1, start=DAY, profile=p)
    half = replace(CFG, coverage=0.5)
    today = 2 * DAY
    t = 0.0
    while t <= 1200.0:
        p = learn(CFG, p, today + t, bursts_at(990.0)(t), 4.0, 200.0)
        t += 15.0
    assert [round(o.at % DAY) for o in p.onsets] == [1200, 1500, 990]
    # Between the two days' onsets, after today's burst ended: released, with the reason.
    f = forecast(half, p, today + 1200.0, 215.0)
    assert f.in_season and f.standing is None
    assert f.released_at == pytest.approx(today + 990.0 + p.onsets[-1].seconds)  # type: ignore[operator]
    assert "standby released for the rest of this burst season: it brought at most 1 a day" in f.notes[0]
    # The same day's profile before today's burst came: held (4 + 50 % of 40 -> 6).
    before = replace(p, onsets=p.onsets[:2])
    assert forecast(half, before, today + 1200.0, 215.0).standing == 6
    # A small rise after the release (a diurnal step, 6 tasks) does not bring the standby back; a
    # second burst that grows to half a typical one's size (20 of 40 tasks) does: no day brought that.
    assert forecast(half, replace(p, burst_at=today + 1185.0, burst_peak=6.0), today + 1200.0, 215.0).standing is None
    assert forecast(half, replace(p, burst_at=today + 1185.0, burst_peak=20.0), today + 1200.0, 215.0).standing == 6


def test_a_season_that_brought_two_bursts_a_day_keeps_its_standby_after_the_first() -> None:
    # Pins the count: a day that brought two bursts in the season means one today is not the end.
    p = day_of(bursts_at(990.0, 1500.0), days=2)
    today = 2 * DAY
    t = 0.0
    while t <= 1200.0:
        p = learn(CFG, p, today + t, bursts_at(990.0)(t), 4.0, 200.0)
        t += 15.0
    f = forecast(replace(CFG, coverage=0.5), p, today + 1200.0, 215.0)
    assert f.standing == 6 and f.released_at is None


def test_a_burst_seen_to_end_holds_the_rise_while_the_readings_still_show_it() -> None:
    # The typical-burst hold is the burst's, and ends with it as the profile sees it; the goodput
    # window still shows the burst's misses for a window after, and a rise ordered then loads to
    # demand back at its level. On the tuning seeds nearly every reactive rise outside a burst
    # came at the very evaluation the profile saw a burst end.
    p = day_of(with_burst, days=2)
    today = 2 * DAY
    t = 1185.0
    while t <= 1500.0:  # today's burst at 20 min, and its end, as the evaluations see them
        p = learn(CFG, p, today + t, with_burst(t), 4.0, 200.0)
        t += 15.0
    assert p.burst_at is None
    end = max(o.at + (o.seconds or 0.0) for o in p.onsets)
    assert end <= today + 1500.0
    for at, held in ((end, True), (end + 45.0, True), (end + 60.0, False)):
        assert (forecast(CFG, p, at, 215.0, lag=60.0).hold_until is not None) is held, at - end
    f = forecast(CFG, p, end + 15.0, 215.0, lag=60.0)
    assert f.hold_until == pytest.approx(end + 60.0) and f.hold_ended_at == end
    assert forecast(CFG, p, end + 15.0, 215.0).hold_until is None  # no window, nothing to wait out
    hold = look_ahead(CFG, p, (), end + 15.0, 4.0, 4.0, 200.0, 15.0, None, 60.0).hold
    assert hold is not None and "the burst ended" in hold.why and "last 60s of readings" in hold.why


def test_the_hold_lasts_as_long_as_the_readings_still_show_the_burst() -> None:
    # Pins the hold's lag: the reactive terms read over a 60 s window, so for 60 s after a typical
    # burst's end their goodput still shows it; a rise ordered then loads to an empty queue too.
    p = day_of(with_burst, days=2)
    onset = 2 * DAY + 1200.0
    p = learn(CFG, p, onset - 15.0, 4.0, 4.0, 200.0)
    p = learn(CFG, p, onset, 44.0, 4.0, 200.0)
    typical = p.onsets[0].seconds
    assert typical is not None
    for at, held in ((onset + typical + 45.0, True), (onset + typical + 75.0, False)):
        f = forecast(CFG, p, at, 215.0, lag=60.0)
        assert (f.hold_until is not None) is held
    assert forecast(CFG, p, onset + typical + 45.0, 215.0).hold_until is None  # no lag: over at the typical end
    assert look_ahead(CFG, p, (), onset + 15.0, 44.0, 4.0, 200.0, 15.0, None, 60.0).hold.until == pytest.approx(
        onset + typical + 60.0
    )  # type: ignore[union-attr]

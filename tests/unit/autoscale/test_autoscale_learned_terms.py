"""The learned and scheduled terms at their edges: what mutation testing (issue 21, fifth round)
found that the day-long scenarios of test_autoscale_forecast.py leave unpinned. Expected values
are worked by hand in the comments."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agentfleet.autoscale import floors
from agentfleet.autoscale.credit import OrderInFlight, lift
from agentfleet.autoscale.forecast import (
    Forecast,
    ForecastConfig,
    Onset,
    Profile,
    forecast,
    learn,
    look_ahead,
    typical_size,
    within_slo,
)
from agentfleet.autoscale.goodput import TPOT_METRIC, TTFT_METRIC, Goodput, Objective, Share, goodput
from agentfleet.autoscale.schedule import CronError, Window, active, parse_cron, scheduled
from agentfleet.autoscale.witness import QUEUE_METRIC, goodput_with_witnesses, queue_witness, witness_metrics

DAY = 3600.0  # a compressed day: 96 bins of 37.5 s
CFG = ForecastConfig(period_seconds=DAY, bins=96, season_seconds=150.0, level_seconds=300.0)
FLAT = (4.0,) * 96  # a curve of 4 tasks in every bin
MON_9 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC).timestamp()  # a Monday, 09:00 UTC


# --- floors and the credit ---------------------------------------------------------------------


def test_a_floor_that_only_ties_the_reactive_count_is_not_named() -> None:
    # Pins: on a tie the reactive terms keep the decision (the floor adds nothing).
    tie = floors.Floor(5, floors.SCHEDULED, "schedule 'batch'")
    assert floors.merge_floors(5, (tie,)) == (5, floors.REACTIVE, None)
    assert floors.merge_floors(4, (tie,)) == (5, floors.SCHEDULED, tie)


def test_the_credit_is_lifted_at_exactly_twice_the_tasks_one_replica_more_and_a_whole_window_of_zero() -> None:
    # Pins: the lift's bounds are inclusive (2x the tasks, one replica's worth, 0.01 goodput, the window).
    order = OrderInFlight(at=None, tasks=4.0)
    assert (
        lift(order, 0.0, 60.0, 8.0, 4.0, None)
        == "8 agent tasks, up from 4 when the replicas loading were ordered: credit lifted"
    )
    assert lift(order, 0.0, 60.0, 7.9, 4.0, None) is None  # under twice
    # Tasks that still fit the fleet ordered (room 2 x 4.0 = 8) keep the credit: the order was
    # big enough for them, however much they rose; more tasks than the room lift it.
    assert lift(order, 0.0, 60.0, 8.0, 4.0, None, fleet=2) is None
    assert lift(order, 0.0, 60.0, 8.5, 4.0, None, fleet=2) is not None
    # Without a per-replica figure one task is a replica's worth: 1 -> 2 lifts.
    assert lift(OrderInFlight(at=None, tasks=1.0), 0.0, 60.0, 2.0, None, None) is not None
    late = OrderInFlight(at=1000.0, tasks=None)
    assert (
        lift(late, 1060.0, 60.0, None, None, 0.01)
        == "goodput 0.01 for the whole 60s window since the last order: credit lifted"
    )
    assert lift(late, 1059.9, 60.0, None, None, 0.0) is None  # the window is not over yet
    assert lift(late, 1060.0, 60.0, None, None, 0.02) is None  # some requests met the SLO


# --- the cron schedule -------------------------------------------------------------------------


def test_cron_steps_lists_and_ranges_give_the_values_they_name() -> None:
    # Pins: a step keeps every n-th value from the range's start, a list joins its parts.
    cron = parse_cron("*/15 0,12 1-5 * *")
    assert cron.minutes == frozenset({0, 15, 30, 45})
    assert cron.hours == frozenset({0, 12})
    assert cron.days == frozenset({1, 2, 3, 4, 5})
    assert parse_cron("10-50/20 * * * *").minutes == frozenset({10, 30, 50})
    assert len(parse_cron("*/1 * * * *").minutes) == 60  # a step of 1 is allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("*/2/3 * * * *", "minute: step '2/3' must be a positive number"),
        ("1-2-3 * * * *", "minute: '1-2-3' is not a range of numbers"),
        ("1-x * * * *", "minute: '1-x' is not a range of numbers"),
    ],
)
def test_a_malformed_step_or_range_is_a_cron_error_naming_it(text: str, message: str) -> None:
    # Pins: only the first '/' and '-' split a part; what is left must be numbers, else a CronError.
    with pytest.raises(CronError) as e:
        parse_cron(text)
    assert str(e.value) == message


def test_sunday_is_0_or_7_and_two_restricted_day_fields_match_either() -> None:
    # Pins cron's day rules: 7 is Sunday too; day-of-month OR day-of-week when both are restricted.
    sunday = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    tuesday_1st = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert parse_cron("0 9 * * 0").matches(sunday)
    assert parse_cron("0 9 * * 7").matches(sunday) and parse_cron("0 9 * * 7").weekdays == frozenset({0})
    either = parse_cron("0 9 1 * 1")  # the 1st of a month, or a Monday
    assert either.matches(monday) and either.matches(tuesday_1st)
    assert not parse_cron("0 9 1 * *").matches(monday)  # only the day of month restricted
    assert not parse_cron("0 9 * * 1").matches(tuesday_1st)


def test_a_window_holds_from_its_start_to_the_second_its_duration_ends() -> None:
    # Pins active(): the walk back covers a duration that is not whole minutes, and the end is exclusive.
    w90 = Window("short", "0 9 * * *", 90, 3)
    assert active(w90, MON_9 + 70) is not None  # 09:01:10, one minute back from 09:01
    assert active(w90, MON_9 + 89.5) is not None  # the default lead is 0
    assert active(w90, MON_9 + 90) is None  # 09:01:30: over
    # Led: the instant that counts is at + lead (09:01:40, over), not at - lead.
    assert active(w90, MON_9 + 100 - 200, lead=200.0) is None
    hour = Window("hour", "0 9 * * *", 3600, 5)
    assert active(hour, MON_9 + 3599) is not None and active(hour, MON_9 + 3600) is None
    odd = Window("odd", "0 9 * * *", 122, 2)  # 2 min 2 s: 09:02:01 is still in it
    assert active(odd, MON_9 + 121) is not None and active(odd, MON_9 + 122) is None


def test_scheduled_leads_by_its_lead_and_a_tie_goes_to_the_first_window() -> None:
    # Pins scheduled(): the lead is passed on, its default is 0, ties keep the first listed.
    w90 = Window("short", "0 9 * * *", 90, 3)
    assert scheduled([w90], MON_9 + 89.5) is not None
    assert scheduled([w90], MON_9 - 100, lead=150.0) is not None
    tie = scheduled([Window("a", "0 9 * * *", 600, 3), Window("b", "0 9 * * *", 600, 3)], MON_9 + 10)
    assert tie is not None and tie.name == "a"


# --- the queue-time witness --------------------------------------------------------------------

TTFT_1S = Objective("ttft", TTFT_METRIC, 1.0)
NOTE_10 = (
    "ttft: 10% of requests queued longer than 1s, above the TTFT SLO, "
    "whatever the engine's TTFT histogram says (its clock may start at scheduling): counted as misses"
)


def test_queue_witness_counts_requests_queued_past_the_slo_edge_as_misses() -> None:
    # Pins: total from the last bucket without +Inf, the edge at the SLO itself, 1 miss of 10 noted.
    share = queue_witness(TTFT_1S, [(0.5, 6.0), (1.0, 9.0), (2.0, 10.0)])
    assert share == Share(Objective("ttft-queue", QUEUE_METRIC, 1.0), 9.0, 10.0, 1.0, NOTE_10)
    # No miss: no note at all.
    assert queue_witness(TTFT_1S, [(1.0, 5.0), (math.inf, 5.0)]) == Share(
        Objective("ttft-queue", QUEUE_METRIC, 1.0), 5.0, 5.0, 1.0, None
    )
    # A single request is a share; none is none; an SLO past the last finite edge gives no witness.
    one = queue_witness(TTFT_1S, [(1.0, 1.0), (math.inf, 1.0)])
    assert one is not None and one.fraction == 1.0
    assert queue_witness(TTFT_1S, [(1.0, 0.0), (math.inf, 0.0)]) is None
    assert queue_witness(Objective("ttft", TTFT_METRIC, 5.0), [(1.0, 3.0), (2.0, 4.0), (math.inf, 4.0)]) is None


def test_the_witness_is_asked_for_only_with_a_ttft_objective() -> None:
    # Pins witness_metrics(): the queue histogram is fetched only when TTFT is an objective.
    tpot = Objective("tpot", TPOT_METRIC, 0.1)
    assert witness_metrics([]) == () and witness_metrics([tpot]) == ()
    assert witness_metrics([tpot, TTFT_1S]) == (QUEUE_METRIC,)


def test_goodput_with_witnesses_takes_the_lower_share_and_notes_it_only_when_it_is_lower() -> None:
    # Pins the merge: min of the shares, the note only when the witness lowers goodput, the counts kept.
    tpot = Objective("tpot", TPOT_METRIC, 0.1)
    queue_90 = [(1.0, 9.0), (math.inf, 10.0)]
    only_tpot = {TPOT_METRIC: [(0.1, 8.0), (math.inf, 10.0)], QUEUE_METRIC: queue_90}
    assert goodput_with_witnesses([tpot], only_tpot) == goodput([tpot], only_tpot)  # no TTFT: no witness
    # No TTFT histogram at all: the witness alone, without a note (nothing was missed).
    alone = goodput_with_witnesses([TTFT_1S], {QUEUE_METRIC: [(1.0, 5.0), (math.inf, 5.0)]})
    assert alone == Goodput(1.0, 5.0, (queue_witness(TTFT_1S, [(1.0, 5.0), (math.inf, 5.0)]),), ())  # type: ignore[arg-type]
    # The engine's own TTFT says 0.6: the witness (0.9) is not the lower, so no note.
    higher = goodput_with_witnesses([TTFT_1S], {TTFT_METRIC: [(1.0, 6.0), (math.inf, 10.0)], QUEUE_METRIC: queue_90})
    assert higher.fraction == 0.6 and higher.notes == ()
    # A tie notes nothing either.
    assert goodput_with_witnesses([TTFT_1S], {TTFT_METRIC: queue_90, QUEUE_METRIC: queue_90}).notes == ()
    lower = goodput_with_witnesses([TTFT_1S], {TTFT_METRIC: [(1.0, 10.0), (math.inf, 10.0)], QUEUE_METRIC: queue_90})
    assert lower.fraction == 0.9 and lower.requests == 10.0 and lower.notes == (NOTE_10,)


# --- learning the profile ----------------------------------------------------------------------


def test_within_slo_is_demand_per_ready_replica_only_when_goodput_met_its_target() -> None:
    # Pins every refusal of within_slo() and the division (8 tasks on 2 replicas: 4 each).
    assert within_slo(8.0, 2, 0.9, True, 0.9) == 4.0  # exactly at the target counts
    assert within_slo(8.0, 1, 0.95, True, 0.9) == 8.0
    assert within_slo(8.0, 0, 0.95, True, 0.9) is None
    assert within_slo(8.0, 2, None, True, 0.9) is None
    assert within_slo(8.0, 2, 0.95, False, 0.9) is None
    assert within_slo(8.0, 2, 0.8, True, 0.9) is None
    assert within_slo(None, 2, 0.95, True, 0.9) is None


def test_capacity_takes_only_positive_figures_and_keeps_the_last_one_without_any() -> None:
    # Pins learn()'s capacity: a figure under one task counts, zero does not, none keeps the old.
    p = learn(CFG, Profile(), 0.0, None, None, 200.0, within_slo=0.5)
    assert p.ok_level == 0.5 and p.capacity == 0.5
    p = learn(CFG, Profile(capacity=3.0), 0.0, None, 0.0, 200.0, within_slo=0.0)
    assert p.capacity == 3.0 and p.ok_level is None
    assert learn(CFG, Profile(capacity=3.0), 0.0, None, None, 200.0).capacity == 3.0


def test_periods_seen_counts_from_the_first_observation_and_never_below_zero() -> None:
    # Pins periods_seen(): (now - started) / period, 0 before the start or without one.
    assert Profile().periods_seen(5000.0, CFG) == 0.0
    assert Profile(started_at=1800.0).periods_seen(3600.0, CFG) == 0.5
    assert Profile(started_at=4000.0).periods_seen(3600.0, CFG) == 0.0


def test_an_onset_is_a_rise_of_two_replicas_worth_or_the_level_itself() -> None:
    # Pins the onset threshold max(2 x capacity, level), inclusive; one task per replica without a capacity.
    p = learn(CFG, Profile(), 0.0, 1.0, None, 200.0)
    p = learn(CFG, p, 15.0, 3.0, None, 200.0)  # +2 over a level of 1: max(2 x 1, 1) = 2
    assert (p.burst_at, p.burst_peak) == (15.0, 2.0)
    # Capacity 4: +6 over a level of 4 is under 8, no burst; the level moves 1 - e^(-15/300) of the way.
    q = learn(CFG, Profile(capacity=4.0, level=4.0, seen_at=0.0, started_at=0.0), 15.0, 10.0, 4.0, 200.0)
    assert q.burst_at is None and q.level == pytest.approx(4.0 + 6.0 * (1 - math.exp(-15.0 / 300.0)))
    # The level follows by the time since the last look: none, nothing; 300 s, 1 - 1/e of the way.
    r = Profile(capacity=4.0, level=4.0, seen_at=100.0, started_at=0.0)
    assert learn(CFG, r, 100.0, 6.0, 4.0, 200.0).level == 4.0
    assert learn(CFG, r, 400.0, 6.0, 4.0, 200.0).level == pytest.approx(4.0 + 2.0 * (1 - math.exp(-1.0)))


def test_a_burst_records_its_peak_over_one_load_time_once_and_its_length_when_it_ends() -> None:
    # Pins the burst's life: the peak over [onset, onset + load_s], recorded once after load_s,
    # ended below half the onset threshold (4 of 8 here), its length set on its own onset only.
    earlier = Onset(100.0, 20.0, 60.0)
    p = Profile(capacity=4.0, level=4.0, seen_at=985.0, started_at=0.0, onsets=(earlier,))

    def step(p: Profile, at: float, demand: float) -> Profile:
        return learn(CFG, p, at, demand, 4.0, 200.0)

    p = step(p, 1000.0, 12.0)  # +8: exactly the threshold
    assert (p.burst_at, p.burst_peak, p.burst_recorded) == (1000.0, 8.0, False)
    p = step(p, 1200.0, 20.0)  # 200 s in: still within the load time, the peak is +16, not recorded yet
    assert p.burst_peak == 16.0 and p.onsets == (earlier,)
    p = step(p, 1215.0, 30.0)  # past the load time: +26 no longer counts; recorded at +16
    assert p.onsets == (earlier, Onset(1000.0, 16.0)) and p.burst_recorded
    p = step(p, 1230.0, 30.0)  # recorded once
    assert p.onsets == (earlier, Onset(1000.0, 16.0))
    p = step(p, 1245.0, 8.0)  # +4 is not below half the threshold
    assert p.burst_at == 1000.0
    p = step(p, 1260.0, 7.9)  # +3.9 is: over after 260 s
    assert p.onsets == (earlier, Onset(1000.0, 16.0, 260.0))
    assert (p.burst_at, p.burst_peak, p.burst_recorded, p.level) == (None, 0.0, False, 4.0)


def test_a_burst_that_outlasts_max_burst_seconds_becomes_the_level() -> None:
    # Pins: a rise held longer than max_burst_seconds (1800 s) is the new level, the burst state cleared.
    p = Profile(
        capacity=4.0,
        level=4.0,
        seen_at=1785.0,
        started_at=0.0,
        burst_at=0.0,
        burst_peak=8.0,
        burst_recorded=True,
        onsets=(Onset(0.0, 8.0),),
    )
    p = learn(CFG, p, 1800.0, 20.0, 4.0, 200.0)
    assert p.burst_at == 0.0  # exactly 1800 s: still a burst
    p = learn(CFG, p, 1815.0, 20.0, 4.0, 200.0)
    assert (p.burst_at, p.burst_peak, p.burst_recorded, p.level) == (None, 0.0, False, 20.0)


def test_an_onset_exactly_the_memory_old_is_forgotten() -> None:
    # Pins the horizon: onsets must be strictly newer than memory_periods periods.
    short = replace(CFG, memory_periods=2)
    assert learn(short, Profile(capacity=4.0, onsets=(Onset(0.0, 40.0),)), 2 * DAY, 4.0, 4.0, 200.0).onsets == ()


def test_a_bins_peak_is_committed_to_the_day_and_week_curves_as_a_moving_average() -> None:
    # Pins the curves: a bin's highest demand, committed when the next bin begins, averaged with
    # the same bin of earlier days (curve) and weeks (week) at curve_alpha 0.5.
    p = Profile(capacity=4.0, level=6.0, seen_at=0.0, started_at=0.0)
    p = learn(CFG, p, 0.0, 4.0, 4.0, 200.0)
    p = learn(CFG, p, 15.0, 6.0, 4.0, 200.0)  # same bin: the peak is 6
    p = learn(CFG, p, 37.5, 5.0, 4.0, 200.0)  # bin 1 begins: bin 0 gets 6
    assert p.curve[0] == 6.0 and p.week[0] == 6.0 and p.bin_peak == 5.0
    p = learn(CFG, p, 7 * DAY, 2.0, 4.0, 200.0)  # a week later, bin 0 of the day and of the week
    p = learn(CFG, p, 7 * DAY + 37.5, 2.0, 4.0, 200.0)
    assert p.curve[1] == 5.0
    assert p.curve[0] == 4.0 and p.week[0] == 4.0  # (6 + 2) / 2


def test_the_profile_round_trips_every_field_mid_burst_and_rounds_onsets() -> None:
    # Pins to_json/from_json: every field under its own key (a restart mid-burst resumes it), onsets
    # rounded to 0.1 s and 0.001 tasks, defaults for missing keys, a week of the wrong length dropped.
    p = Profile(
        capacity=4.0,
        ok_level=5.5,
        curve=(None, *(float(i) for i in range(95))),
        week=(*(None,) * 671, 3.0),
        onsets=(Onset(1200.0, 16.0, 150.0), Onset(5000.0, 8.0)),
        started_at=10.0,
        level=4.5,
        seen_at=5985.0,
        bin_index=159,
        bin_peak=7.0,
        burst_at=5000.0,
        burst_peak=8.0,
        burst_recorded=True,
    )
    assert Profile.from_json(json.loads(json.dumps(p.to_json())), CFG) == p
    rounded = Profile(onsets=(Onset(1200.46, 16.0006, 150.46), Onset(5000.0, 8.0))).to_json()["onsets"]
    assert rounded == [[1200.5, 16.001, 150.5], [5000.0, 8.0]]
    assert Profile.from_json({"version": 1}, CFG) == Profile()
    assert Profile.from_json({"version": 1, "week": [1.0] * 5}, CFG).week == ()


# --- the forecast and the plan -----------------------------------------------------------------


def test_no_capacity_figure_no_forecast_and_one_under_a_task_still_sizes() -> None:
    # Pins forecast()'s guard: a capacity of 0 gives nothing; 0.5 task per replica sizes 1 task at 2.
    assert forecast(CFG, Profile(capacity=0.0, curve=FLAT), 0.0, 215.0) == Forecast(
        notes=("no demand profile learned yet",)
    )
    assert forecast(CFG, Profile(capacity=0.5, curve=(1.0,) * 96), 0.0, 215.0).predictive == 2


def test_the_week_curve_takes_over_at_exactly_seven_periods() -> None:
    # Pins: the day-of-week curve is read from the 7th period on, not before, even when it is there.
    p = Profile(capacity=4.0, started_at=0.0, curve=FLAT, week=(40.0,) * 672)
    assert forecast(CFG, p, 7 * DAY, 215.0).predictive == 10
    assert forecast(CFG, p, 7 * DAY - 1.0, 215.0).predictive == 1


def test_the_curve_is_read_over_the_bins_of_the_next_lead_only() -> None:
    # Pins the bins read: from now's to (now + lead)'s, inclusive; bin 6 starts at 225 s > 215 s.
    curve = (4.0,) * 6 + (40.0,) + (4.0,) * 89
    assert forecast(CFG, Profile(capacity=4.0, curve=curve), 0.0, 215.0).predictive == 1
    # Nothing learned for those bins: no predictive term (the curve elsewhere does not count).
    blank = Profile(capacity=4.0, curve=(None,) * 95 + (8.0,))
    f = forecast(CFG, blank, 0.0, 215.0)
    assert f.base_demand is None and f.predictive is None
    off = forecast(replace(CFG, predictive=False), Profile(capacity=4.0, curve=FLAT), 0.0, 215.0)
    assert off.predictive is None and off.base_demand == 4.0


def test_onsets_per_period_counts_at_least_one_period() -> None:
    # Pins the figure: 3 onsets over half a period count as 3 per period, over 2 periods as 1.5.
    p = Profile(
        capacity=4.0, curve=FLAT, started_at=0.0, onsets=(Onset(100.0, 8.0), Onset(200.0, 8.0), Onset(300.0, 8.0))
    )
    assert forecast(CFG, p, 1800.0, 215.0).onsets_per_period == 3.0
    assert forecast(CFG, p, 2 * DAY, 215.0).onsets_per_period == 1.5
    assert forecast(CFG, replace(p, onsets=()), 1800.0, 215.0).onsets_per_period == 0.0


def test_standing_without_a_curve_value_and_its_price_in_gpu_hours() -> None:
    # Pins: standing holds coverage x the onset over no base (0, not 1), and the price sums, per
    # bin in season, the extra replicas x GPUs per replica x the bin's hours.
    half = replace(CFG, coverage=0.5)
    blank = Profile(capacity=4.0, curve=(None,) * 95 + (8.0,), onsets=(Onset(100.0, 16.0),))
    assert forecast(half, blank, 0.0, 215.0).standing == 2  # ceil((0 + 0.5 x 16) / 4)
    # An onset at 1200 s, seasons of 150 s, a lead of 215 s: bins starting in [835, 1350] are in
    # season (23 to 36: 14 bins), each holding ceil(0.5 x 16 / 4) = 2 replicas of 2 GPUs for 37.5 s.
    two_gpus = replace(half, gpus_per_replica=2)
    f = forecast(two_gpus, Profile(capacity=4.0, curve=FLAT, onsets=(Onset(1200.0, 16.0),)), 0.0, 215.0)
    assert f.standby_gpu_hours_per_period == pytest.approx(14 * 2 * 2 * 37.5 / 3600.0)


def test_the_season_wraps_around_midnight() -> None:
    # Pins the time-of-day distance on the circle: an onset at 23:59:50 is 70 s from 00:01:00.
    half = replace(CFG, coverage=0.5)
    f = forecast(half, Profile(capacity=4.0, curve=FLAT, onsets=(Onset(3590.0, 16.0),)), DAY + 60.0, 15.0)
    assert f.in_season and f.standing == 3  # ceil((4 + 8) / 4)


def test_typical_size_is_the_size_weighted_median() -> None:
    # Pins typical_size(): the size at which half the total, counted from the largest down, is reached.
    assert typical_size([Onset(0.0, 2.0), Onset(1.0, 6.0), Onset(2.0, 4.0)]) == 6.0  # 6 of 12
    assert typical_size([Onset(0.0, 5.0), Onset(1.0, 4.0), Onset(2.0, 3.0)]) == 4.0  # 5, then 9 of 12
    assert typical_size([Onset(0.0, 0.0)]) is None
    assert typical_size([Onset(0.0, 0.5)]) == 0.5


def test_the_hold_uses_the_median_burst_length_and_its_bounds() -> None:
    # Pins _short_burst(): the median of four lengths is the third (160 s); the hold ends at
    # burst_at + 160, which must lie in [now, now + lead). Seasons of 300 s keep the onsets near.
    wide = replace(CFG, season_seconds=300.0)
    base = 10 * DAY
    onsets = tuple(Onset(base - k * DAY + 1000.0, 16.0, s) for k, s in ((4, 100.0), (3, 150.0), (2, 160.0), (1, 170.0)))
    p = Profile(capacity=4.0, curve=FLAT, burst_at=base + 1000.0, onsets=onsets)
    f = forecast(wide, p, base + 1010.0, 215.0)
    assert (f.hold_until, f.hold_burst_s) == (base + 1160.0, 160.0)
    assert forecast(wide, p, base + 1160.0, 215.0).hold_until == base + 1160.0  # ends now: still held
    assert forecast(wide, p, base + 1160.0 - 215.0, 215.0).hold_until is None  # ends exactly a lead away


def test_plan_learns_with_every_figure_it_is_given() -> None:
    # Pins look_ahead()'s call to learn(): the capacity, the load time and the within-SLO figure all reach it.
    planned = look_ahead(CFG, Profile(), (), 0.0, 12.0, 8.0, 200.0, 15.0, within_slo=6.0)
    assert planned.profile.capacity == 8.0 and planned.profile.ok_level == 6.0
    bursting = Profile(capacity=4.0, level=4.0, seen_at=0.0, started_at=0.0, burst_at=0.0, burst_peak=8.0)
    assert look_ahead(CFG, bursting, (), 15.0, 20.0, 4.0, 200.0, 15.0).profile.burst_peak == 16.0


def test_plan_names_each_floor_with_its_figures_and_only_the_floors_there_are() -> None:
    # Pins the floors look_ahead() builds: the predictive one with lead = load + period (215 s), none when
    # the forecast has no count, the standing one's words with no base, the schedule led by the lead.
    p = Profile(capacity=4.0, curve=FLAT)
    assert look_ahead(CFG, p, (), 0.0, None, 4.0, 200.0, 15.0).floors == (
        floors.Floor(1, floors.PREDICTIVE, "learned curve: 4 agent tasks within the next 215s, 4.0 per replica"),
    )
    with_onset = replace(p, onsets=(Onset(100.0, 16.0),))
    assert (
        look_ahead(replace(CFG, predictive=False), with_onset, (), 0.0, None, 4.0, 200.0, 15.0).floors == ()
    )  # nor standing: coverage 0
    blank = Profile(capacity=4.0, curve=(None,) * 95 + (8.0,), onsets=(Onset(100.0, 16.0),))
    assert look_ahead(replace(CFG, coverage=0.5), blank, (), 0.0, None, 4.0, 200.0, 15.0).floors == (
        floors.Floor(
            2,
            floors.STANDING,
            (
                "burst season: 50% of a typical onset at this time of day (16 agent tasks) held over 0 expected, 4.0 "
                "per replica"
            ),
        ),
    )
    batch = Window("batch", "0 9 * * *", 600, 7)
    sched = look_ahead(replace(CFG, predictive=False), Profile(), (batch,), MON_9 - 100.0, None, None, 200.0, 15.0)
    assert sched.floors == (
        floors.Floor(7, floors.SCHEDULED, "schedule 'batch' from 2026-11-23 09:00 UTC (ordered 215s ahead)"),
    )

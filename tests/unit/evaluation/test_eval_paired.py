"""The paired comparison of two passes: Newcombe's interval against published worked examples,
the exact McNemar p-value, which tasks are paired, in which direction, and what a run prints and
writes of it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from statistics import NormalDist

import pytest
from agentfleet_eval.scoring import Outcome, TaskScore
from agentfleet_eval.taskset import EvalTask

from agentfleet_client.evaluation import cli, report
from agentfleet_client.evaluation.journal import Journal
from agentfleet_client.evaluation.paired import Z95, Paired, mcnemar_exact, newcombe, paired, phi, wilson


def scored(tid: str, success: bool | None, part: str = "heldout") -> TaskScore:
    t = EvalTask(id=tid, question=f"q {tid}", kind="default", part=part)
    return TaskScore(t, Outcome(status="done"), success, None, None, "ok")  # type: ignore[arg-type]


def passes(both: int, only_first: int, only_other: int, neither: int) -> tuple[list[TaskScore], list[TaskScore]]:
    """Two passes over the same tasks with the given paired table."""
    cells = [(True, True)] * both + [(True, False)] * only_first + [(False, True)] * only_other
    cells += [(False, False)] * neither
    first = [scored(f"t{i}", a) for i, (a, _) in enumerate(cells)]
    other = [scored(f"t{i}", b) for i, (_, b) in enumerate(cells)]
    return first, other


def test_altmans_worked_example() -> None:
    # Altman et al. (2000), Statistics with Confidence, Table 6.2: 41 thallium-201 scans read by the
    # clinics and by the core laboratory; 14 ischaemic by both, 5 by the clinics only, none by the
    # laboratory only, 22 by neither. The difference 5/41 = 0.122, its 95% interval 0.011 to 0.226
    # (the same in epiR's epi.conf and biostatUZH's confIntPairedProportion, which cite the example).
    first, other = passes(both=14, only_first=0, only_other=5, neither=22)
    p = paired(first, other)
    assert p is not None
    assert (p.n, p.both, p.only_first, p.only_other, p.neither) == (41, 14, 0, 5, 22)
    assert round(p.delta, 3) == 0.122
    assert (round(p.low, 3), round(p.high, 3)) == (0.011, 0.226)
    assert p.p == 0.0625


def test_fagerland_cavo_example_to_four_decimals() -> None:
    # Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, ch. 8: complete
    # response before (first) and after (other) consolidation therapy (Cavo et al. 2012); 59, 16, 6,
    # 80. Newcombe's square-and-add interval: -0.0621 (-0.1186 to -0.0046). Four decimals tell the
    # continuity correction of phi from none: without it the limits are -0.1174 and -0.0059.
    low, high = newcombe(both=59, only_first=16, only_other=6, neither=80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


def test_the_wilson_limits_are_where_the_score_statistic_is_the_normal_quantile() -> None:
    # What defines the Wilson interval: (p - limit)^2 = z^2 limit (1 - limit) / n at both limits,
    # with z the normal's 97.5th percentile, not a rounded 1.96.
    z = NormalDist().inv_cdf(0.975)
    assert Z95 == pytest.approx(z, rel=1e-15)
    for x, n in ((19, 41), (0, 7), (7, 7), (1, 25)):
        for limit in wilson(x, n):
            assert (x / n - limit) ** 2 == pytest.approx(z * z * limit * (1 - limit) / n, rel=1e-9, abs=1e-15)


def wilson_half(n: int) -> float:
    """The Wilson interval's half-width at p = 1/2 (symmetric there), from its closed form."""
    z2 = Z95 * Z95
    return Z95 * math.sqrt(1 / (4 * n) + z2 / (4 * n * n)) / (1 + z2 / n)


def test_no_discordant_task_gives_delta_zero_p_one_and_an_interval_with_width() -> None:
    # 10 right in both, 10 wrong in both: phi = (100 - 20/2) / 100 = 0.9 after the continuity
    # correction, so the limits are -+ h sqrt(2 (1 - 0.9)), h the Wilson half-width at 1/2 for 20.
    # Uncorrected, phi would be 1 and the interval [0, 0]: certainty from 20 tasks.
    first, other = passes(both=10, only_first=0, only_other=0, neither=10)
    p = paired(first, other)
    assert p is not None and p.delta == 0 and p.p == 1.0
    h = wilson_half(20) * math.sqrt(0.2)
    assert p.low == pytest.approx(-h, rel=1e-12) and p.high == pytest.approx(h, rel=1e-12)
    assert round(p.high, 3) == 0.090


def test_passes_that_never_agree_are_negatively_correlated() -> None:
    # Every task right in exactly one pass, as often in each: phi = -1, and the interval is twice
    # the Wilson half-width at 1/2 (phi dropped to 0 would give sqrt(2) times; its sign flipped, 0).
    low, high = newcombe(both=0, only_first=6, only_other=6, neither=0)
    assert low == pytest.approx(-2 * wilson_half(12), rel=1e-12) and high == pytest.approx(-low, rel=1e-12)


def test_a_weak_positive_association_is_corrected_to_none() -> None:
    # 2 right in both, 2 wrong in both, 1 discordant each way: ad - bc = 3, not above n/2 = 3, so
    # phi is 0 (1/3 uncorrected) and the limits are -+ sqrt(2) times the Wilson half-width at 1/2.
    low, high = newcombe(both=2, only_first=1, only_other=1, neither=2)
    assert high == pytest.approx(math.sqrt(2) * wilson_half(6), rel=1e-12) and low == pytest.approx(-high, rel=1e-12)


def test_one_pass_right_on_every_task_and_the_other_on_none_ends_at_exactly_one() -> None:
    # The limits of method 10 never pass -1 or 1, but rounding does: unclipped, 25 against 0 gives
    # an upper limit of 1 + 2e-16.
    assert newcombe(both=0, only_first=0, only_other=25, neither=0)[1] == 1.0
    assert newcombe(both=0, only_first=25, only_other=0, neither=0)[0] == -1.0


def test_a_pass_right_everywhere_has_no_correlation_and_the_interval_stays_in_range() -> None:
    # One task, right only in the other pass: every margin product is 0 (phi 0), the upper limit is
    # exactly 1 and the lower one is 1 less the Wilson interval of 0/1 seen from both sides.
    low, high = newcombe(both=0, only_first=0, only_other=1, neither=0)
    assert high == 1.0 and low == pytest.approx(1 - math.sqrt(2) * Z95**2 / (1 + Z95**2), rel=1e-12)
    assert newcombe(both=0, only_first=1, only_other=0, neither=0) == (-high, -low)


@pytest.mark.parametrize(
    ("only_first", "only_other", "p"),
    [(5, 0, 0.0625), (5, 1, 0.21875), (1, 5, 0.21875), (0, 0, 1.0), (1, 1, 1.0), (3, 0, 0.25), (10, 2, 0.03857421875)],
)
def test_mcnemar_exact(only_first: int, only_other: int, p: float) -> None:
    # 2 * P(X <= min) for X ~ Binomial(discordant, 1/2), at most 1: (1 + 6) / 2^6 * 2 for 5 against 1;
    # (1 + 12 + 66) / 2^12 * 2 for 10 against 2.
    assert mcnemar_exact(only_first, only_other) == p


def test_the_direction_is_other_minus_first() -> None:
    first, other = passes(both=14, only_first=0, only_other=5, neither=22)
    ahead, behind = paired(first, other), paired(other, first)
    assert ahead is not None and behind is not None
    assert (behind.only_first, behind.only_other) == (ahead.only_other, ahead.only_first) == (5, 0)
    assert behind.delta == -ahead.delta < 0 and (behind.low, behind.high) == (-ahead.high, -ahead.low)
    assert behind.p == ahead.p


def test_only_tasks_scored_in_both_passes_are_paired() -> None:
    first = [scored("a", True), scored("b", True), scored("c", None), scored("d", False), scored("e", True)]
    other = [scored("d", True), scored("c", True), scored("b", None), scored("a", False), scored("x", True)]
    # a: first only; b: unscored in other; c: unscored in first; d: other only; e and x: one pass only
    got = paired(first, other)
    assert got == Paired(
        n=2, both=0, only_first=1, only_other=1, neither=0, delta=0.0, low=got.low, high=got.high, p=1.0
    )
    assert paired(first, [scored("b", None), scored("x", True)]) is None and paired([], []) is None


def test_a_two_pass_run_prints_and_records_the_paired_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A resumed run whose two passes (the fleet, one-shot RAG) all finished: nothing runs again.
    rows = [("d1", "dev"), ("d2", "dev"), ("d3", "dev"), ("d4", "dev"), ("h1", "heldout"), ("h2", "heldout")]
    rows.append(("h3", "heldout"))
    fact = {"dev": "replica", "heldout": "logical"}  # the parts may share no fact
    lines = [
        f"- {{id: {t}, part: {part}, question: q {t}, facts: [{fact[part]}], supporting: [{part}.html]}}"
        for t, part in rows
    ]
    (tmp_path / "tasks.yaml").write_text("name: pg\ntasks:\n" + "\n".join(lines) + "\n")
    (tmp_path / "runtime.yaml").write_text(json.dumps({"fleet": "f", "tools": [{"name": "kb", "type": "Retrieval"}]}))
    (tmp_path / "tok").write_text("t\n")
    # first right: d1 d2 h1 h2; other right: d1 d3 d4. Overall both 1, first only 3, other only 2,
    # neither 1; dev 1/1/2/0; heldout 0/2/0/1.
    right = {"fleet": {"d1", "d2", "h1", "h2"}, "one-shot-rag": {"d1", "d3", "d4"}}
    out = tmp_path / "out"
    j = Journal.start(out, "run-1", "pg")
    for label, ok in right.items():
        for t, part in rows:
            j.add(label, t, Outcome(status="done", answer=fact[part] if t in ok else "minimal"), 1.0)
    monkeypatch.setattr(cli, "run_baseline", lambda *a, **k: pytest.fail("ran a baseline"))
    argv = [str(tmp_path / "tasks.yaml"), "--part", "all", "--api", "fleet=http://127.0.0.1:9"]
    argv += ["--token-file", str(tmp_path / "tok"), "--runtime-config", str(tmp_path / "runtime.yaml")]
    assert cli.main([*argv, "--baselines", "one-shot-rag", "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    overall, dev, heldout = paired_lines(printed)
    assert overall == (
        "one-shot-rag minus fleet: -14pp, 95% CI [-60pp, +40pp], McNemar p=1.000 "
        "(n=7: right only in fleet 3, only in one-shot-rag 2, in both 1, in neither 1)"
    )
    assert dev.startswith("  dev: +25pp, 95% CI [") and "(n=4: right only in fleet 1, only in one-shot-rag 2" in dev
    assert heldout.startswith("  heldout: -67pp, 95% CI [") and "McNemar p=0.500 (n=3:" in heldout
    first, other = json.loads((out / "report.json").read_text())["runs"]
    assert "paired" not in first and other["label"] == "one-shot-rag"
    got = other["paired"]
    first_scores = [scored(t, t in right["fleet"], part) for t, part in rows]
    other_scores = [scored(t, t in right["one-shot-rag"], part) for t, part in rows]
    assert got == {
        "against": "fleet",
        **asdict(paired(first_scores, other_scores)),
        "byPart": {part: asdict(p) for part, p in report.paired_by_part(first_scores, other_scores).items()},
    }
    assert (got["n"], got["only_first"], got["only_other"], got["byPart"]["heldout"]["only_first"]) == (7, 3, 2, 2)
    # The goals' unit as well: the agent pass minus the baseline, the sign the other way round.
    section = printed.split("\n== paired: each agent pass minus each baseline, on the same tasks\n", 1)[1]
    agent_line = section.split("\n\n==", 1)[0].splitlines()[0]
    assert agent_line == (
        "fleet minus one-shot-rag: +14pp, 95% CI [-40pp, +60pp], McNemar p=1.000 "
        "(n=7: right only in one-shot-rag 2, only in fleet 3, in both 1, in neither 1)"
    )
    (against,) = first["pairedBaselines"]
    assert against["against"] == "one-shot-rag" and (against["only_first"], against["only_other"]) == (2, 3)
    assert against["delta"] == pytest.approx(-got["delta"]) and "pairedBaselines" not in other


def paired_lines(printed: str) -> list[str]:
    """The lines of the paired section, between its heading and the next one."""
    section = printed.split("\n== paired: task success minus the first column's, on the same tasks\n", 1)[1]
    return section.split("\n\n==", 1)[0].splitlines()


def test_phi_shrinks_only_an_association_larger_than_half_the_tasks() -> None:
    # Cross-products between n/3 and 2n, where a moved threshold changes phi (two mutmut survivors):
    # 3*2 - 1*1 = 5 > 7/2, so 5 - 3.5 over sqrt(4*3*4*3) = 12; 2*2 - 5*0 = 4 <= 9/2, so no correlation.
    assert phi(3, 1, 1, 2) == pytest.approx(1.5 / 12)
    assert phi(2, 5, 0, 2) == 0.0

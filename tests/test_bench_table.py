"""`make bench` combines several runs into one row per measure and judges each against its goal."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from table import Row, combine, table


def test_the_median_run_is_shown_with_the_range_of_all_runs() -> None:
    runs = [[Row("discovery", "manifests", seconds, "yaml-rs", 1.0, "<= 1.5x")] for seconds in (1.2, 1.7, 1.4)]
    [row] = combine(runs)
    assert (row.seconds, row.low, row.high) == (1.4, 1.2, 1.7)
    assert row.verdict == "met"
    assert "1.20..1.70x" in table([row]) and "<= 1.5x, met" in table([row])


def test_a_median_over_the_goal_is_not_met_even_if_one_run_met_it() -> None:
    runs = [[Row("build", "lite", seconds, "save-images", 1.0, "<= 1.3x")] for seconds in (1.2, 1.6, 1.5)]
    assert combine(runs)[0].verdict == "NOT met"


def test_goals_in_seconds_and_over_the_baseline_are_judged_on_what_they_name() -> None:
    absolute = Row("kubefile", "1e5 lines", 1.2, goal="< 1 s")
    over = Row("startup", "--version", 0.15, "python -c pass", 0.04, "<= +0.1 s: +0.110 s, NOT met")
    assert absolute.verdict == "NOT met" and absolute.compared == 1.2
    assert over.verdict == "NOT met" and round(over.compared or 0, 3) == 0.11
    runs = [[Row("startup", "--version", s, "python -c pass", 0.04, f"<= +0.1 s: +{s - 0.04:.3f} s")]
            for s in (0.1, 0.2, 0.12)]
    [row] = combine(runs)
    assert row.goal == "<= +0.1 s" and row.verdict == "met"  # the median run: +0.08 s
    assert "+0.060..+0.160 s" in table([row])


def test_a_goal_with_a_note_of_its_own_is_kept_whole() -> None:
    runs = [[Row("scale", "preview", seconds, "discovery", 0.1, "< 2 s (the DataFrame alone: 0.18 s)")]
            for seconds in (0.3, 0.2, 0.25)]
    [row] = combine(runs)
    assert row.goal == "< 2 s (the DataFrame alone: 0.18 s)" and row.verdict == "met"
    judged = Row("scale", "save-images", 27.0, "floor", 36.0, "<= 1.2x (0.71x to 0.85x); peak RSS 53 MB, met")
    assert table([replace(judged, low=0.7, high=0.8)]).rstrip().endswith("peak RSS 53 MB, met")

"""The language-model report's statistics: geometric means with log-scale intervals, Holm verdicts."""

import math

from prunebench.report.lm import geometric, paired_verdict


def test_a_geometric_interval_stays_positive_where_an_arithmetic_one_would_not() -> None:
    values = [1.0e3, 1.0e8]  # a broken model's perplexities: orders of magnitude apart
    e = geometric(values)
    assert math.isclose(e.mean, math.sqrt(1.0e3 * 1.0e8))
    assert 0 < e.ci_low < e.mean < e.ci_high
    arithmetic_low = sum(values) / 2 - 12.706 * (values[1] - values[0]) / math.sqrt(2) / math.sqrt(2)
    assert arithmetic_low < 0  # what the levels table used to print


def test_a_single_seed_has_no_interval() -> None:
    e = geometric([42.0])
    assert math.isclose(e.mean, 42.0) and e.n == 1 and math.isnan(e.ci_low)


def test_paired_verdicts_are_worded_after_the_correction() -> None:
    assert paired_verdict(0.01, math.log(2.0), 3) == "a worse"
    assert paired_verdict(0.01, math.log(0.5), 3) == "a better"
    assert paired_verdict(0.2, math.log(0.5), 3) == "no significant difference (n = 3)"
    assert paired_verdict(math.nan, 0.0, 1) == "not tested (n = 1)"

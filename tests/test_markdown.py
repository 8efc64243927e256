"""flash_envs.markdown: the tables and CI cells of every report."""

from __future__ import annotations

from flash_envs.markdown import fmt_ci, md_table, percent


def test_md_table_lines():
    assert md_table(("a", "b"), [(1, "x"), ("2.50", None)]) == ["| a | b |", "|---|---|", "| 1 | x |",
                                                               "| 2.50 | None |"]
    assert md_table(("only",), []) == ["| only |", "|---|"]


def test_fmt_ci_rounds_each_number():
    assert fmt_ci(1.06, (0.804, 1.449)) == "1.1 [0.8, 1.4]"
    assert fmt_ci(1.06, [0.804, 1.449], digits=2) == "1.06 [0.80, 1.45]"
    assert fmt_ci(1.06, (float("nan"), float("nan")), digits=2) == "1.06 [no CI]"   # one run: nothing to resample


def test_percent_keeps_the_digits_a_threshold_needs():
    """Thresholds were printed with .0%: 0.975 and 0.98 both as 98%, 0.999 as 100%."""
    assert [percent(x) for x in (0.9, 0.95, 0.98, 0.975, 0.999, 1.0, 0.2)] == \
        ["90%", "95%", "98%", "97.5%", "99.9%", "100%", "20%"]

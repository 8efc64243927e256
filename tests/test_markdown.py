"""flash_envs.markdown: the tables and CI cells of every report."""

from __future__ import annotations

from flash_envs.markdown import fmt_ci, md_table


def test_md_table_lines():
    assert md_table(("a", "b"), [(1, "x"), ("2.50", None)]) == ["| a | b |", "|---|---|", "| 1 | x |",
                                                               "| 2.50 | None |"]
    assert md_table(("only",), []) == ["| only |", "|---|"]


def test_fmt_ci_rounds_each_number():
    assert fmt_ci(1.06, (0.804, 1.449)) == "1.1 [0.8, 1.4]"
    assert fmt_ci(1.06, [0.804, 1.449], digits=2) == "1.06 [0.80, 1.45]"
    assert fmt_ci(1.06, (float("nan"), float("nan")), digits=2) == "1.06 [no CI]"   # one run: nothing to resample

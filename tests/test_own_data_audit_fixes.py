"""Defects found by an audit of `flash config-eval` on a user's own measurement files: each test failed before its
fix."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from flash_envs.data import DataFormatError, csv_rows
from flash_envs.data.config_measurements import load_chunkfunc, load_ibm_multicloud
from flash_rl.cli import main
from test_config_data import CHUNKFUNC_HEADER, IBM_HEADER, _priced_ibm_csv   # the tests' folder is on sys.path
from test_fewshot import SMOKE, _ibm_csv

OK_ROW = "0,A,1,1,,,,,,3,w,0.01,10.0,ok\n"


# ------------------------------------------------------------------ 1. a quote left open
def test_a_quote_left_open_in_a_large_file_is_a_one_line_error_naming_where_it_opens(tmp_path):
    """It read the rest of the file into one field: past 131072 characters, a raw _csv.Error traceback."""
    path = tmp_path / "big.csv"
    path.write_text("a,b\n1,2\n3,\"4\n" + "5,6\n" * 40_000)
    with pytest.raises(DataFormatError, match=r"big.csv:3: the row from here on cannot be read \(field larger than "
                                              r"field limit .*\); is a '\"' at the start of a field left unclosed\?"):
        list(csv_rows(path, ["a"]))


def test_a_row_read_across_lines_with_the_wrong_field_count_names_the_line_it_starts_on(tmp_path):
    """The error named only the line where the swallowed row ended (line 381 for a quote opened on line 11)."""
    path = tmp_path / "open.csv"
    path.write_text("a,b\n1,2\n3,\"4\n5\n\",6\n7,8\n")
    with pytest.raises(DataFormatError, match=r"open.csv:5: 3 field\(s\) where the header has 2 \(a row from line 3: "
                                              r"is a '\"' at the start of a field left unclosed\?\)"):
        list(csv_rows(path, ["a"]))
    path.write_text("a,b\n1,2\n3,4,5\n")   # on one line: no guess about quotes
    with pytest.raises(DataFormatError, match=r"open.csv:3: 3 field\(s\) where the header has 2$"):
        list(csv_rows(path, ["a"]))
    path.write_text("a,b\n1,\"2\nmore\"\n3,4\n")   # a quoted field over two lines is read, at the line it ends on
    assert [(line, row["b"]) for line, row in csv_rows(path, ["a"])] == [(3, "2\nmore"), (4, "4")]


def test_an_unclosed_quote_in_the_last_row_gets_the_hint_too(tmp_path):
    """The hint needs a row read across lines; an unclosed quote at the end of the file reads none."""
    path = tmp_path / "last.csv"
    path.write_text("a,b,c\n1,2,3\n4,\"5,6\n")
    with pytest.raises(DataFormatError, match=r"last.csv:3: 2 field\(s\) where the header has 3 \(a row from line 3: "
                                              r"is a '\"' at the start of a field left unclosed\?\)"):
        list(csv_rows(path, ["a"]))


# ------------------------------------------------------------------ 2. runtimes and costs past float32
@pytest.mark.parametrize("column, row", [
    ("target_runtime", "0,A,1,1,,,,,,3,w,0.01,1e40,ok\n"),
    ("target_cost", "0,A,1,1,,,,,,3,w,1e-31,10.0,ok\n"),
])
def test_ibm_runtimes_and_costs_must_lie_where_the_predictors_can_compute(tmp_path, column, row):
    """A runtime of 1e40 loaded; every method's MAPE was then inf (null in the JSON), and --out crashed plotting."""
    path = tmp_path / "ibm.csv"
    path.write_text(IBM_HEADER + row)
    with pytest.raises(DataFormatError, match=rf"ibm.csv:2: column '{column}' holds '[^']+', outside \[1e-30, "
                                              r"1e\+30\]; a runtime or cost in another unit\?"):
        load_ibm_multicloud(path)


def test_chunkfunc_runtimes_are_bounded_and_aws_costs_of_0_still_load(tmp_path):
    path = tmp_path / "chunkfunc.csv"
    path.write_text(CHUNKFUNC_HEADER + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,24,0,200\n")
    assert load_chunkfunc(path).cost_usd[0, 0] > 0   # AWS's price of the runtime, not the file's 0
    for unread in ("", "-1", "n/a"):   # the AWS cost is not read, as documented: a file may leave it out
        aws = f"aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,24,{unread},200\n"
        path.write_text(CHUNKFUNC_HEADER + aws)
        assert load_chunkfunc(path).cost_usd[0, 0] > 0
        path.write_text(CHUNKFUNC_HEADER + aws + aws.replace("aws_lambda", "gcp_cloud_functions"))
        with pytest.raises(DataFormatError, match=rf"chunkfunc.csv:3: column 'execution_cost_usd' holds '{unread}'"):
            load_chunkfunc(path)   # a GCP cost is read
    path.write_text(CHUNKFUNC_HEADER + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,1e31,0,200\n")
    with pytest.raises(DataFormatError, match="column 'execution_time_ms' holds '1e31', outside"):
        load_chunkfunc(path)


# ------------------------------------------------------------------ 3. how statuses and labels are written
def test_status_ok_in_any_case_or_padded_is_a_successful_run(tmp_path):
    """"OK" and " ok" were dropped as failed runs, silently."""
    path = tmp_path / "ibm.csv"
    path.write_text(IBM_HEADER + OK_ROW + OK_ROW.replace(",ok", ",OK").replace(",w,", ",v,")
                    + OK_ROW.replace(",ok", ", ok ").replace(",w,", ",u,") + OK_ROW.replace(",ok", ",Timed out."))
    data = load_ibm_multicloud(path)
    assert data.apps == ("u", "v", "w") and data.counts["dropped: failed run (status != ok)"] == 1
    chunkfunc = tmp_path / "chunkfunc.csv"
    chunkfunc.write_text(CHUNKFUNC_HEADER + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess ,100,24,0, 200\n")
    assert load_chunkfunc(chunkfunc).apps == ("aws_lambda/f/100",)


def test_labels_written_as_floats_are_the_same_configuration(tmp_path):
    """A file read and written back by pandas holds 1.0 for 1 in columns with blanks: it was refused."""
    ints, floats = tmp_path / "ints.csv", tmp_path / "floats.csv"
    ints.write_text(IBM_HEADER + OK_ROW + "1,C,,,,,1,2,0,3,w,0.02,20.0,ok\n")
    floats.write_text(IBM_HEADER + "0,A,1.0,1.0,,,,,,3.0,w,0.01,10.0,ok\n" + "1,C,,,,,1.0,2.0,0.0,3,w,0.02,20.0,ok\n")
    a, b = load_ibm_multicloud(ints), load_ibm_multicloud(floats)
    assert a.configs == b.configs and a.apps == b.apps
    np.testing.assert_array_equal(a.features, b.features)
    floats.write_text(IBM_HEADER + "0,A,1.5,1,,,,,,3,w,0.01,10.0,ok\n")
    with pytest.raises(DataFormatError, match=r"column 'A_family': value '1.5' not in the design space"):
        load_ibm_multicloud(floats)


# ------------------------------------------------------------------ 4. what the loaders dropped, on stderr
def test_config_eval_says_what_each_file_lost(tmp_path, capsys):
    """The counts of dropped and merged rows were only in summary.json: with --json alone, never shown."""
    train = _ibm_csv(tmp_path / "train.csv", ["w1", "w2", "w3"])
    test = tmp_path / "test.csv"
    rows = Path(_ibm_csv(tmp_path / "t.csv", ["w4", "w5"])).read_text()
    test.write_text(rows + OK_ROW.replace(",ok", ",Timed out."))
    assert main(["config-eval", "--train", train, "--test", str(test), "--json", *SMOKE]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "flash config-eval: ibm:train.csv: 24 rows read, 0 merged duplicates" in err
    assert "flash config-eval: ibm:test.csv: 17 rows read, 1 dropped: failed run (status != ok), 0 merged " \
           "duplicates" in err
    assert not logging.getLogger("flash_envs.data.config_measurements").handlers   # taken off again


def test_a_file_without_a_price_list_says_where_it_shows(tmp_path, caplog):
    path = tmp_path / "changed.csv"
    _priced_ibm_csv(path, digits=6, price_change=1e-3)
    with caplog.at_level(logging.INFO, logger="flash_envs.data.config_measurements"):
        assert load_ibm_multicloud(path).pricing is None
    assert re.search(r"cost / runtime from \S+ \(w[0-3]\) to \S+ \(w4\), .*; no price list", caplog.text)


# ------------------------------------------------------------------ 5. ConfigSearch on sparse measurements
def test_config_search_names_the_workloads_that_leave_too_few_common_configurations(tmp_path):
    from flash_envs.envs.config_search import ConfigSearchTaskFamily

    path = tmp_path / "sparse.csv"
    _ibm_csv(path, ["w1", "w2"])
    path.write_text(path.read_text() + "99,B,,,1,1,,,,3,few,0.01,10.0,ok\n")   # "few": one configuration of its own
    with pytest.raises(ValueError, match=r"got 3 apps, 0 common configs \(fewest measured: few \(1 of 9\), w1 \(8 of "
                                         r"9\), w2 \(8 of 9\)\)"):
        ConfigSearchTaskFamily.from_measurements(load_ibm_multicloud(path))


def test_a_title_says_how_many_held_out_apps_a_k_cannot_score():
    """"8 held-out apps" while 7 were scored (n: 7); only the warning said so."""
    from flash_rl.fewshot.cli import report_title

    report = {"splits": [{"train_apps": ["a", "b"], "test_apps": ["c", "d"]}], "hold_out": "workload",
              "dataset": "ibm", "train": "x", "test": "y", "seeds": 1, "train_config": {"val_fraction": 0.0}}
    assert "1 split(s) of 2 training and 2 held-out apps; 1 seed(s)" in report_title(report)
    unscored = {**report, "unscored_test_apps": {"5": ["d"]}}   # JSON keys
    assert ("2 held-out apps (1 not scored at K = 5: fewer than K + 1 measured configurations); 1 seed(s)"
            in report_title(unscored))

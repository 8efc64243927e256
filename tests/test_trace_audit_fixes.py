"""Defects found by an audit of bring-your-own traces and the task API: each test failed before its fix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flash_envs.data import DataFormatError
from flash_envs.data.trace_csv import RateTrace, TraceGapError, read_rate_trace
from flash_envs.fields import check_number, check_whole
from flash_envs.sim.workloads import ConstantWorkload, TraceWorkload, workload_from_dict
from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.cases import CONFIG_DIR, get_case
from flash_rl.config import load_config
from flash_rl.pipeline import test_tasks as held_out_tasks   # (not test_*: pytest would collect it)

TRACE = "timestamp,requests\n" + "".join(f"{60 * i},{100 + i}\n" for i in range(30))


def replayed(tmp_path, family: AutoscalingTaskFamily) -> list:
    """The trace tasks the autoscaling case makes of ``family`` (saved to a file) and one trace."""
    (tmp_path / "day.csv").write_text(TRACE)
    family.save_yaml(tmp_path / "family.yaml")
    case = get_case("autoscaling")
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", [f"tasks.family_file={tmp_path / 'family.yaml'}",
                                                         f"tasks.test_traces=['{tmp_path / 'day.csv'}']"])
    return [t for t in held_out_tasks(cfg, case, case.build_family(cfg)) if t.name.startswith("trace:")]


# ------------------------------------------------------------------ 1. test tasks sharing an application
def test_each_test_task_sharing_an_application_gets_its_own_trace_task(tmp_path):
    """Trace tasks were named after the application: two test tasks of one application (a valid family) made two
    tasks of one name, refused with advice to rename the trace files."""
    default = AutoscalingTaskFamily.generate(n_train=2, n_test=1)
    app = default.test[0].app
    low = dataclasses.replace(default.test[0], workload=ConstantWorkload(rate=5.0), name="low")
    high = dataclasses.replace(default.test[0], workload=ConstantWorkload(rate=50.0), name="high")
    tasks = replayed(tmp_path, AutoscalingTaskFamily(default.train, (low, high)))
    assert [t.name for t in tasks] == ["trace:day:low", "trace:day:high"] and {t.app for t in tasks} == {app}
    assert [t.workload.mean_rate for t in tasks] == [5.0, 50.0]


# ------------------------------------------------------------------ 2. a low test rate
@pytest.mark.parametrize("rate", [0.004, 0.0149])
def test_a_trace_replays_a_low_test_rate_as_it_is(tmp_path, rate):
    """The rate was rounded to 2 decimals: 0.004/s replayed the trace at 0 (all zeros, no error), 0.0149 at 0.01."""
    default = AutoscalingTaskFamily.generate(n_train=2, n_test=1)
    slow = dataclasses.replace(default.test[0], workload=ConstantWorkload(rate=rate))
    task, = replayed(tmp_path, AutoscalingTaskFamily(default.train, (slow,)))
    assert task.workload.mean_rate == pytest.approx(rate, rel=1e-6)


# ------------------------------------------------------------------ 3. bins finer than the rows
def test_a_gap_error_from_bins_finer_than_the_rows_says_so(tmp_path):
    """Per-minute counts read with bin_s=30 were told to pass gaps='zero' (every other bin empty) or 'join' (the
    trace squeezed to half its length): both wrong loads."""
    (tmp_path / "pm.csv").write_text("timestamp,requests\n" + "".join(f"{60 * i},60\n" for i in range(5)))
    with pytest.raises(TraceGapError, match=r"bin_s=30 s is finer than the rows' usual spacing, 60 s: .*give a bin_s "
                                            r"of 60 s or more"):
        read_rate_trace(tmp_path / "pm.csv", "timestamp", "requests", bin_s=30)


# ------------------------------------------------------------------ 4. numbers too large for a float
def test_an_int_too_large_for_a_float_is_a_clear_error(tmp_path):
    """math.isfinite(10**400) raises OverflowError: a 401-digit rate in a family file ended in a traceback."""
    with pytest.raises(ValueError, match="rate must be a finite number"):
        check_number("rate", 10**400, 0.0)
    assert check_whole("n", 2**1000, 1) == 2**1000   # a whole number, exactly, while a float holds it
    with pytest.raises(ValueError, match=r"n must be a whole number >= 1 that a float holds \(below 1.8e308\)"):
        check_whole("n", 10**400, 1)   # no count, length or size past a float survives being multiplied by one
    default = AutoscalingTaskFamily.generate(n_train=1, n_test=1)
    seven = dataclasses.replace(default.train[0], workload=ConstantWorkload(rate=7.25))
    AutoscalingTaskFamily((seven,), default.test).save_yaml(tmp_path / "family.yaml")
    text = (tmp_path / "family.yaml").read_text()
    big = text.replace("rate: 7.25", "rate: 1" + "0" * 400)
    assert big.count("0" * 400) == 1
    (tmp_path / "big.yaml").write_text(big)
    with pytest.raises(DataFormatError, match=rf"task family {tmp_path / 'big.yaml'}: .*finite"):
        AutoscalingTaskFamily.load_yaml(tmp_path / "big.yaml")
    with pytest.raises(ValueError, match="too large for a float"):
        RateTrace([10**400], 60.0)


# ------------------------------------------------------------------ 5. inline traces of the wrong types
@pytest.mark.parametrize("rates", [["1.5", "2"], [True, False], "12", [[1.0], [2.0, 3.0]]])
def test_inline_trace_rates_must_be_numbers(rates):
    """Quoted numbers and bools were taken as rates (1.5, 2; 1, 0), "abc" failed in NumPy's words."""
    with pytest.raises(TypeError, match="rate trace rates must be numbers"):
        RateTrace(rates, 60.0)


def test_an_inline_trace_source_and_a_workload_kind_must_be_strings():
    with pytest.raises(TypeError, match=r"rate trace source must be a str .*got \[1, 2\]"):
        RateTrace([1.0], 60.0, [1, 2])   # was made the string "[1, 2]"
    with pytest.raises(ValueError, match=r"unknown workload kind \['trace'\]"):
        workload_from_dict({"kind": ["trace"]})   # was "unhashable type: 'list'"
    assert RateTrace(np.array([1, 2], dtype=np.int32), 60.0).rates.tolist() == [1.0, 2.0]


# ------------------------------------------------------------------ 6. options a per-request file has no use for
@pytest.mark.parametrize("option, message", [({"gaps": "join"}, "gaps='join'"),
                                             ({"value_kind": "rate"}, "value_kind='rate'")])
def test_options_of_aggregated_files_are_refused_for_a_file_of_requests(tmp_path, option, message):
    """They were ignored: gaps='join' kept the 99 empty bins of a per-request log with a hole."""
    (tmp_path / "requests.csv").write_text("timestamp\n0\n1\n100\n")
    with pytest.raises(ValueError, match=rf"{message} reads an aggregated file's values; a file of one row per"):
        read_rate_trace(tmp_path / "requests.csv", "timestamp", None, **option)
    assert len(read_rate_trace(tmp_path / "requests.csv", "timestamp", None).rates) == 101


# ------------------------------------------------------------------ 7. a start far beyond the trace
@pytest.mark.parametrize("start_s", [1e19, 1e21])
def test_a_start_beyond_the_trace_wraps_around(start_s):
    """start + t lost every second at 1e19 s (one bin for the whole replay), and the int64 cast overflowed at 1e21."""
    trace = RateTrace(np.arange(1440.0) + 1, 60.0)
    curve = TraceWorkload.from_trace(trace, start_s=start_s).realise(np.random.default_rng(0), 600)
    wrapped = TraceWorkload.from_trace(trace, start_s=start_s % trace.duration_s).realise(np.random.default_rng(0),
                                                                                          600)
    assert np.array_equal(curve.rates, wrapped.rates) and len(set(curve.rates.tolist())) == 11

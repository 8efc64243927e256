"""Arrival-rate profiles, trace replay from CSV (synthetic and real traces) and bad trace files."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import yaml

from flash_envs.data.public import AZURE_INVOCATIONS, NASA_TRACE, azure_function_trace, nasa_http_trace
from flash_envs.data.trace_csv import (RateTrace, TraceAliasWarning, TraceBinError, TraceFormatError, TraceGapError,
                                      TraceRoundError, read_rate_trace)
from flash_envs.sim.workloads import (WORKLOADS, ConstantWorkload, DiurnalWorkload, MMPPWorkload, RateCurve,
                                      SpikeWorkload, StepWorkload, TraceWorkload, workload_from_dict)

PROFILES = [
    ConstantWorkload(rate=12.0),
    DiurnalWorkload(mean_rate=10.0, amplitude=0.5, period_s=3600.0),
    StepWorkload(base_rate=5.0, peak_rate=20.0, start_s=600.0, ramp_s=300.0),
    MMPPWorkload(rates=(5.0, 30.0), mean_sojourn_s=(300.0, 100.0)),
    SpikeWorkload(base_rate=10.0, spikes_per_hour=6.0, multiplier=3.0, duration_s=60.0),
]


@pytest.mark.parametrize("workload", PROFILES, ids=lambda w: w.kind)
def test_profiles_are_reproducible_from_the_generator(workload):
    a = workload.realise(np.random.default_rng(5), 7200).rates
    b = workload.realise(np.random.default_rng(5), 7200).rates
    np.testing.assert_array_equal(a, b)
    assert np.all(a >= 0) and len(a) == 7200
    other = workload.realise(np.random.default_rng(6), 7200).rates
    if workload.kind in ("diurnal", "mmpp", "spikes"):     # random phase, state switches, spike times: drawn from rng
        assert not np.array_equal(a, other)
    else:                                                  # constant and step have nothing to draw
        np.testing.assert_array_equal(a, other)


@pytest.mark.parametrize("workload", PROFILES, ids=lambda w: w.kind)
def test_profiles_round_trip_through_dicts(workload):
    assert workload_from_dict(workload.to_dict()) == workload


def test_numpy_parameters_serialise_to_yaml():
    """Parameters computed with numpy (np.float64, np.int64) come out of to_dict as plain Python numbers."""
    workload = ConstantWorkload(rate=np.float64(5.0), scale=np.float32(2.0))
    d = yaml.safe_load(yaml.safe_dump(workload.to_dict()))
    assert d == {"kind": "constant", "scale": 2.0, "rate": 5.0}
    assert workload_from_dict(d) == workload


def test_profile_shapes():
    rng = np.random.default_rng(0)
    diurnal = DiurnalWorkload(mean_rate=10, amplitude=0.5, period_s=3600, phase=0).realise(rng, 3600)
    assert diurnal.rates.mean() == pytest.approx(10, rel=1e-3) and diurnal.rates.max() == pytest.approx(15, rel=1e-3)
    step = StepWorkload(base_rate=5, peak_rate=20, start_s=600, ramp_s=0, end_s=1200).realise(rng, 1800)
    assert step.rate_at(599) == 5 and step.rate_at(600) == 20 and step.rate_at(1200) == 5
    mmpp = MMPPWorkload(rates=(5, 30), mean_sojourn_s=(300, 100)).realise(rng, 200_000)
    assert set(np.unique(mmpp.rates)) == {5, 30}
    assert np.mean(mmpp.rates == 30) == pytest.approx(0.25, abs=0.05)  # stationary share of the high state
    assert ConstantWorkload(rate=4, scale=2.5).realise(rng, 10).rates[0] == 10


def test_rate_curve_integral_and_inverse():
    curve = RateCurve(np.array([2.0, 0.0, 4.0]), resolution_s=10.0)
    assert curve.integral(10) == 20 and curve.integral(25) == 40 and curve.integral(30) == 60
    assert curve.integral(40) == 80  # wraps around
    assert curve.inverse_integral(30) == pytest.approx(22.5)  # skips the zero-rate cell
    assert curve.mean_rate(0, 30) == pytest.approx(2.0)


def write(tmp_path, text, name="trace.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trace_with_counts_and_datetimes(tmp_path):
    path = write(tmp_path, "minute,requests\n2024-01-01 00:00,60\n2024-01-01 00:01,120\n2024-01-01 00:02,30\n")
    trace = read_rate_trace(path, "minute", "requests", value_kind="count")
    assert trace.bin_s == 60 and list(trace.rates) == [1.0, 2.0, 0.5]


def test_trace_per_request_timestamps(tmp_path):
    path = write(tmp_path, "ts,user\n0.1,a\n0.5,b\n1.2,c\n3.9,d\n")
    trace = read_rate_trace(path, "ts", value_column=None, bin_s=2.0)
    assert list(trace.rates) == [1.5, 0.5]


def test_trace_replay_time_and_rate_scaling(tmp_path):
    path = write(tmp_path, "t,rate\n0,1\n60,3\n")
    replay = TraceWorkload(path=str(path), time_column="t", value_column="rate", value_kind="rate", time_scale=0.5,
                           start_s=0.0, scale=10.0)
    curve = replay.realise(np.random.default_rng(0), 120)
    assert curve.rate_at(0) == 10 and curve.rate_at(29) == 10 and curve.rate_at(30) == 30  # 1 trace min = 30 s
    assert curve.rate_at(60) == 10  # wraps around at the end of the trace
    mean = TraceWorkload(path=str(path), time_column="t", value_column="rate", value_kind="rate", mean_rate=8.0)
    assert mean.realise(np.random.default_rng(0), 120).rates.mean() == pytest.approx(8.0)
    assert workload_from_dict(replay.to_dict()) == replay


def test_an_edited_trace_file_is_read_again(tmp_path, monkeypatch):
    """A notebook user edits a trace and replays it in the same process: the new rates, not the cached ones."""
    path = write(tmp_path, "t,rate\n0,1\n60,3\n")
    replay = TraceWorkload(path="trace.csv", time_column="t", value_column="rate", value_kind="rate", start_s=0.0)
    monkeypatch.chdir(tmp_path)
    assert replay.realise(np.random.default_rng(0), 60).rate_at(0) == 1
    path.write_text("t,rate\n0,5\n60,3\n")   # the same size: the modification time tells
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert replay.realise(np.random.default_rng(0), 60).rate_at(0) == 5
    other = tmp_path / "other"   # a relative path is the file of the working directory of the read
    other.mkdir()
    (other / "trace.csv").write_text("t,rate\n0,7\n60,3\n")
    monkeypatch.chdir(other)
    assert replay.realise(np.random.default_rng(0), 60).rate_at(0) == 7


def test_trace_replay_random_start_comes_from_the_generator(tmp_path):
    path = write(tmp_path, "t,n\n" + "".join(f"{i},{i}\n" for i in range(100)))
    replay = TraceWorkload(path=str(path), time_column="t", value_column="n")
    a = replay.realise(np.random.default_rng(1), 10).rates
    assert np.array_equal(a, replay.realise(np.random.default_rng(1), 10).rates)
    assert not np.array_equal(a, replay.realise(np.random.default_rng(2), 10).rates)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("t,n\n", "no data rows"),
    ("t,count\n0,1\n", r"trace.csv:1: missing column\(s\) \['n'\]"),
    ("t,n\n0,1\n1\n", r"trace.csv:3: 1 field\(s\) where the header has 2"),
    ("t,n\n0,1\n1,2,3\n", r"trace.csv:3: 3 field\(s\) where the header has 2"),
    ("t,n\n0,1\n1,abc\n", r"trace.csv:3: column 'n' holds 'abc'"),
    ("t,n\n0,1\n1,-4\n", r"trace.csv:3: column 'n' holds '-4'"),
    ("t,n\n0,1\nyesterday,4\n", r"trace.csv:3: column 't' holds 'yesterday'"),
])
def test_bad_trace_files_name_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TraceFormatError, match=message):
        read_rate_trace(path, "t", "n")


def test_rows_on_a_decimal_grid_each_get_their_own_bin(tmp_path):
    path = write(tmp_path, "t,n\n" + "".join(f"{i / 10},10\n" for i in range(10)))      # 0.1 s bins
    assert read_rate_trace(path, "t", "n").rates == pytest.approx([100.0] * 10)
    path = write(tmp_path, "t,n\n" + "".join(f"{12.7 + i * 0.3:.1f},3\n" for i in range(20)), "b.csv")
    assert read_rate_trace(path, "t", "n").rates == pytest.approx([10.0] * 20)


def test_rows_missing_from_an_aggregated_trace_are_a_gap(tmp_path):
    path = write(tmp_path, "t,n\n0,60\n60,120\n180,30\n240,60\n")
    with pytest.raises(TraceFormatError, match=r"trace.csv: 1 bin\(s\) of 60 s have no row \(the first gap is "
                                               r"between lines 3 and 4\)"):
        read_rate_trace(path, "t", "n")
    assert read_rate_trace(path, "t", "n", gaps="zero").rates.tolist() == [1.0, 2.0, 0.0, 0.5, 1.0]
    assert read_rate_trace(path, "t", "n", gaps="join").rates.tolist() == [1.0, 2.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="gaps must be one of"):
        read_rate_trace(path, "t", "n", gaps="fill")


def test_rows_out_of_order_are_read_in_time_order(tmp_path):
    """A log written as requests complete is out of order; the trace is the sorted one, and a gap is placed between
    the rows that are neighbours in time, not in the file."""
    sorted_path = write(tmp_path, "t,n\n0,60\n60,120\n120,30\n180,60\n", "sorted.csv")
    shuffled = write(tmp_path, "t,n\n120,30\n0,60\n180,60\n60,120\n", "shuffled.csv")
    assert read_rate_trace(shuffled, "t", "n").rates.tolist() == read_rate_trace(sorted_path, "t", "n").rates.tolist()
    requests = write(tmp_path, "t,user\n2.5,a\n0.0,b\n1.1,c\n0.7,d\n", "requests.csv")
    assert read_rate_trace(requests, "t", value_column=None).rates.tolist() == [2.0, 1.0, 1.0]
    gap = write(tmp_path, "t,n\n240,60\n0,60\n180,30\n60,120\n", "gap.csv")
    with pytest.raises(TraceFormatError, match=r"the first gap is between lines 5 and 4\)"):
        read_rate_trace(gap, "t", "n")


@pytest.mark.parametrize("time", ["nan", "inf"])
def test_absurd_timestamps_name_the_problem(tmp_path, time):
    path = write(tmp_path, f"t,n\n0,1\n1,2\n{time},3\n")
    with pytest.raises(TraceFormatError, match=f"trace.csv:4: column 't' holds '{time}', which is not a finite time"):
        read_rate_trace(path, "t", "n")
    path = write(tmp_path, "t,user\n0,a\n1e12,b\n", "requests.csv")    # milliseconds read as seconds
    with pytest.raises(TraceFormatError, match="requests.csv: the timestamps span 1e[+]12 s, over 1e[+]08 bins of 1 s"):
        read_rate_trace(path, "t", value_column=None)


def test_trace_mean_rate_and_scale_do_not_mix(tmp_path):
    with pytest.raises(ValueError, match="mean_rate=10 sets the scale; leave scale at 1"):
        TraceWorkload(path=str(write(tmp_path, "t,n\n0,1\n")), time_column="t", value_column="n", mean_rate=10,
                      scale=2.0)


def test_missing_trace_file():
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_rate_trace("/nonexistent/trace.csv", "t", "n")


@pytest.mark.parametrize("make, message", [
    (lambda: ConstantWorkload(rate=-1), "rate"),
    (lambda: DiurnalWorkload(amplitude=1.5), "amplitude"),
    (lambda: MMPPWorkload(rates=(1, -2)), "rates"),
    (lambda: SpikeWorkload(duration_s=0), "duration_s"),
    (lambda: StepWorkload(base_rate=float("inf")), "base_rate"),
    (lambda: TraceWorkload(), "path"),
    (lambda: TraceWorkload.from_trace(RateTrace([1.0], 60.0), path="x.csv"), r"CSV option\(s\) \['path'\] do not"),
    (lambda: TraceWorkload.from_trace(RateTrace([1.0], 60.0), gaps="zero"), r"CSV option\(s\) \['gaps'\] do not"),
    (lambda: RateTrace([], 60.0), "non-empty 1-D"),
    (lambda: RateTrace([1.0, -2.0], 60.0), r"rates\[1\] = -2.0"),
    (lambda: RateTrace([1.0, float("nan")], 60.0), r"rates\[1\] = nan"),
    (lambda: RateTrace([1.0], 0), r"bin_s must be a finite number >= 1e-06 and <= 1e\+09"),
    (lambda: workload_from_dict({"kind": "trace", "trace": {"rates": [1.0]}}), r"rate trace needs .*\['bin_s'\]"),
    (lambda: workload_from_dict({"kind": "trace", "trace": {"rates": [1.0], "bin_s": 1, "unit": "s"}}),
     "unknown rate trace field"),
    (lambda: workload_from_dict({"kind": "sinus"}), "unknown workload kind"),
    (lambda: workload_from_dict({"kind": "constant", "rat": 3}), "unknown field"),
])
def test_impossible_workloads_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make, error, message", [
    (lambda: DiurnalWorkload(phase="x"), TypeError, r"DiurnalWorkload.phase must be a number, got 'x' \(str\)"),
    (lambda: DiurnalWorkload(phase=float("nan")), ValueError, "DiurnalWorkload.phase must be a finite number >= 0 and "
                                                              "<= 1, got nan"),
    (lambda: DiurnalWorkload(phase=1.5), ValueError, "DiurnalWorkload.phase must be .* <= 1, got 1.5"),
    (lambda: DiurnalWorkload(amplitude="0.5"), TypeError, "DiurnalWorkload.amplitude must be a number, got '0.5'"),
    (lambda: MMPPWorkload(rates=(1, float("nan"))), ValueError, r"MMPPWorkload.rates\[1\] must be a finite number"),
    (lambda: MMPPWorkload(rates=("a", 1)), TypeError, r"MMPPWorkload.rates\[0\] must be a number, got 'a'"),
    (lambda: MMPPWorkload(rates=5), ValueError, r"MMPPWorkload.rates must be a pair \(low, high\) of numbers, got 5"),
    (lambda: MMPPWorkload(mean_sojourn_s=(60, float("inf"))), ValueError,
     r"MMPPWorkload.mean_sojourn_s\[1\] must be a finite number > 0, got inf"),
    (lambda: TraceWorkload(path="t.csv", value_kind="bogus"), ValueError,
     r"TraceWorkload.value_kind must be one of \('count', 'rate'\), got 'bogus'"),
    (lambda: TraceWorkload(path="t.csv", time_unit_s=-60), ValueError,
     "TraceWorkload.time_unit_s must be a finite number > 0, got -60"),
    (lambda: TraceWorkload(path="t.csv", time_unit_s="60"), TypeError, "TraceWorkload.time_unit_s must be a number"),
    (lambda: TraceWorkload(path="t.csv", bin_s=0), ValueError,
     r"TraceWorkload.bin_s must be a finite number >= 1e-06 and <= 1e\+09"),
    (lambda: TraceWorkload(path="t.csv", time_column=5), TypeError, "TraceWorkload.time_column must be a column name"),
    (lambda: TraceWorkload(path="t.csv", value_column=3), TypeError,
     r"TraceWorkload.value_column must be a column name \(a non-empty string\) or None, got 3"),
    (lambda: TraceWorkload(path=5), TypeError, r"TraceWorkload.path must be a file path \(a string\), got int"),
    (lambda: workload_from_dict(None), TypeError, "workload: expected a mapping of fields, got NoneType"),
    (lambda: read_rate_trace("t.csv", "t", "n", time_unit_s="60"), TypeError, "^time_unit_s must be a number"),
])
def test_workload_fields_are_checked_when_it_is_made(make, error, message):
    """Each of these was accepted and failed at the first reset (numpy's UFuncTypeError for a text phase, a
    non-finite rate for phase=nan), or failed with a message naming no field."""
    with pytest.raises(error, match=message):
        make()


def test_a_trace_path_may_be_a_path_object(tmp_path):
    path = write(tmp_path, "t,n\n0,1\n60,3\n")
    workload = TraceWorkload(path=path, time_column="t", value_column="n")
    assert workload.path == str(path) and workload == TraceWorkload(path=str(path), time_column="t", value_column="n")
    assert workload_from_dict(yaml.safe_load(yaml.safe_dump(workload.to_dict()))) == workload


@pytest.mark.parametrize("gaps", ["error", "zero", "join"])
def test_a_trace_mixing_numeric_and_iso_times_is_refused(tmp_path, gaps):
    """Read as seconds since 1970 and seconds since 0, the times were 27 years apart: a gap error (or, with gaps=zero,
    a huge trace of zeros)."""
    path = write(tmp_path, "t,n\n2024-01-01 00:00,1\n2024-01-01 00:01,2\n120,3\n")
    with pytest.raises(TraceFormatError, match="trace.csv:4: column 't' holds '120', a number, where line 2 holds an "
                                               "ISO-8601 date-time; use one time format throughout"):
        read_rate_trace(path, "t", "n", gaps=gaps)
    path = write(tmp_path, "t,user\n0,a\n1,b\n1970-01-01 00:00:02,c\n", "requests.csv")
    with pytest.raises(TraceFormatError, match="requests.csv:4: column 't' holds '1970-01-01 00:00:02', an ISO-8601 "
                                               "date-time, where line 2 holds a number"):
        read_rate_trace(path, "t", value_column=None)   # (gaps are for aggregated files)


def test_every_kind_is_registered():
    assert set(WORKLOADS) == {"constant", "diurnal", "step", "mmpp", "spikes", "trace"}


def test_nasa_trace_replay(shared_data):
    trace = nasa_http_trace()
    assert trace.bin_s == 60 and trace.rates.sum() * 60 == pytest.approx(3_461_610)  # total requests (SOURCE.md)
    replay = TraceWorkload.from_trace(trace, time_scale=0.5, mean_rate=20.0)
    curve = replay.realise(np.random.default_rng(0), 1800)
    assert curve.rates.max() > curve.rates.min()  # a real, varying trace
    assert replay.realise(np.random.default_rng(0), 1800).rates.tolist() == curve.rates.tolist()


def test_nasa_csv_read_generically_with_column_choice(shared_data):
    path = shared_data / "nasa_http_1995" / "nasa_http_requests_per_minute.csv"
    columns = {"path": str(path), "time_column": "minute_start_local_utc-4", "value_column": "requests"}
    with pytest.raises(TraceFormatError, match=r"4947 bin\(s\) of 60 s have no row"):   # Jul 28 13:33 .. Jul 31
        TraceWorkload(**columns, gaps="error").load()
    replay = TraceWorkload(**columns, gaps="join", time_scale=0.5, start_s=0.0)
    curve = replay.realise(np.random.default_rng(0), 60)
    assert curve.rate_at(0) == pytest.approx(42 / 60) and curve.rate_at(30) == pytest.approx(62 / 60)
    assert len(replay.load().rates) == 84_334 == len(nasa_http_trace().rates)   # one bin per row


def test_azure_functions_trace_replay(shared_data):
    traces = [azure_function_trace(i) for i in range(10)]
    assert all(len(t.rates) == 1440 and t.bin_s == 60 for t in traces)
    busiest = max(traces, key=lambda t: t.rates.sum())
    # 6,171,429: the sum of the 1,440 minute columns of invocations.csv's busiest row (row 6, a queue trigger),
    # computed apart from the library with csv.DictReader on the shared day01_10func file
    assert busiest.rates.sum() * 60 == pytest.approx(6_171_429)
    curve = TraceWorkload.from_trace(busiest, time_scale=0.5, start_s=0.0).realise(np.random.default_rng(0), 600)
    assert curve.rates.mean() > 0
    with pytest.raises(IndexError, match="out of range"):
        azure_function_trace(10)


# ------------------------------------------------------------------ in-memory traces serialise inline, bit-identically
AWKWARD_FLOATS = [0.0, -0.0, 0.1, 0.1 + 0.2, 1 / 3, 2 / 3 * 1e-5, 1e-05, 5e-324, 2.2250738585072014e-308, 1e16,
                  2.0**53 + 2, 123456789.12345679, 1.7976931348623157e308, 7.0]


def bits(rates):
    return np.asarray(rates, dtype=np.float64).tobytes()


@pytest.mark.parametrize("through", ["dict", "json", "yaml"])
def test_rate_trace_round_trips_bit_identically(through):
    trace = RateTrace(np.array(AWKWARD_FLOATS), 60.0, "memory#awkward")
    d = trace.to_dict()
    assert all(type(r) is float for r in d["rates"]) and type(d["bin_s"]) is float    # no numpy scalars
    if through == "json":
        d = json.loads(json.dumps(d))
    elif through == "yaml":
        d = yaml.safe_load(yaml.safe_dump(d))
    back = RateTrace.from_dict(d)
    assert back == trace and bits(back.rates) == bits(trace.rates) and back.source == "memory#awkward"
    assert RateTrace(trace.rates[:-1], 60.0, "memory#awkward") != trace != RateTrace(trace.rates, 30.0, trace.source)


def test_rate_trace_keeps_a_read_only_copy():
    rates = np.array([1.0, 2.0])
    trace = RateTrace(rates, 60)
    rates[0] = 99.0
    assert trace.rates.tolist() == [1.0, 2.0] and trace.bin_s == 60.0 and type(trace.bin_s) is float
    with pytest.raises(ValueError, match="read-only"):
        trace.rates[0] = 5.0
    assert hash(trace) == hash(RateTrace([1.0, 2.0], 60.0)) and "2 bins of 60 s" in repr(trace)


def synthetic_trace():
    rates = np.random.default_rng(7).gamma(2.0, 3.0, size=240)      # full-precision floats, 4 h of minutes
    return RateTrace(rates, 60.0, "memory#synthetic")


def assert_replays_identically(a, b, duration_s=1800.0):
    for seed in (0, 1, 2):
        ra = a.realise(np.random.default_rng(seed), duration_s).rates
        rb = b.realise(np.random.default_rng(seed), duration_s).rates
        assert bits(ra) == bits(rb)


def test_in_memory_trace_workload_dict_form():
    workload = TraceWorkload.from_trace(synthetic_trace(), time_scale=0.5, mean_rate=7.5)
    d = workload.to_dict()
    assert list(d) == ["kind", "scale", "time_scale", "mean_rate", "start_s", "trace"]     # no CSV options, no path
    assert d["trace"]["source"] == "memory#synthetic" and d["trace"]["bin_s"] == 60.0
    assert len(d["trace"]["rates"]) == 240
    assert json.dumps(d, sort_keys=True) == json.dumps(workload_from_dict(d).to_dict(), sort_keys=True)   # cache key
    assert workload_from_dict(d) == workload and workload.path == ""
    other = TraceWorkload.from_trace(RateTrace(synthetic_trace().rates * 2, 60.0, "memory#synthetic"),
                                     time_scale=0.5, mean_rate=7.5)
    assert other != workload        # a workload is its trace, not the trace's name


def test_csv_trace_workload_dict_form_is_unchanged(tmp_path):
    path = write(tmp_path, "t,n\n0,1\n60,3\n")
    workload = TraceWorkload(path=str(path), time_column="t", value_column="n", time_scale=0.5)
    assert workload.to_dict() == {"kind": "trace", "scale": 1.0, "path": str(path), "time_column": "t",
                                  "value_column": "n", "value_kind": "count", "time_unit_s": 1.0, "bin_s": None,
                                  "gaps": "error", "time_scale": 0.5, "mean_rate": None, "start_s": None}


def round_trip_through_tasks_and_yaml(workload, tmp_path):
    """The workload in an AutoscalingTask through to_dict/from_dict, and in a family through save_yaml/load_yaml."""
    from flash_envs.tasks import AutoscalingTask, AutoscalingTaskFamily

    base = AutoscalingTaskFamily.generate(n_train=1, n_test=1)
    task = AutoscalingTask(base.train[0].app, workload, "in-memory-trace")
    rebuilt = AutoscalingTask.from_dict(task.to_dict())
    assert rebuilt == task
    assert_replays_identically(rebuilt.workload, workload)
    family = AutoscalingTaskFamily((task,), base.test)
    family.save_yaml(tmp_path / "family.yaml")
    loaded = AutoscalingTaskFamily.load_yaml(tmp_path / "family.yaml")
    assert loaded == family
    assert_replays_identically(loaded.train[0].workload, workload)
    return task, loaded.train[0]


def test_in_memory_trace_task_round_trips_through_dicts_and_yaml(tmp_path):
    """What env.reset draws (``task.workload.realise``) is bit-identical after the round trips."""
    workload = TraceWorkload.from_trace(synthetic_trace(), time_scale=0.5, mean_rate=7.5)
    round_trip_through_tasks_and_yaml(workload, tmp_path)
    fixed_start = TraceWorkload.from_trace(synthetic_trace(), scale=2.0, start_s=600.0)
    round_trip_through_tasks_and_yaml(fixed_start, tmp_path)


@pytest.mark.parametrize("name", ["nasa", "azure"])
def test_public_trace_workloads_round_trip_through_yaml(shared_data, tmp_path, name):
    """The NASA trace (84,334 one-minute bins: about 4 s for the YAML round trip) and an Azure function (1,440)."""
    parts, read = {"nasa": (NASA_TRACE, nasa_http_trace), "azure": (AZURE_INVOCATIONS, azure_function_trace)}[name]
    if not shared_data.joinpath(*parts).is_file():
        pytest.skip(f"{shared_data.joinpath(*parts)} not found (the {name} trace is not in the public data folder)")
    trace = read()
    workload = TraceWorkload.from_trace(trace, time_scale=0.5, mean_rate=20.0)
    _, loaded = round_trip_through_tasks_and_yaml(workload, tmp_path)
    assert loaded.workload.trace == trace and loaded.workload.trace.source == trace.source


def test_rows_rebinned_to_a_coarser_bin_add_counts_and_average_rates(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("t,v\n0,10\n30,20\n60,30\n90,50\n")
    counts = read_rate_trace(path, "t", "v", value_kind="count", bin_s=60)
    assert counts.rates.tolist() == pytest.approx([30 / 60, 80 / 60])
    rates = read_rate_trace(path, "t", "v", value_kind="rate", bin_s=60)   # summing them doubled the load
    assert rates.rates.tolist() == pytest.approx([15.0, 40.0])
    assert read_rate_trace(path, "t", "v", value_kind="rate").rates.tolist() == pytest.approx([10, 20, 30, 50])


@pytest.mark.parametrize("resolution_s", [1.0, 60.0])
def test_spike_count_scales_with_the_horizon_whatever_the_grid(resolution_s):
    """The spikes were drawn over the last grid point + 1 s: 59 s short of the hour on a 60 s grid. (A comparison of
    mean rates could not see it: no grid point lies in the missing span.) The Poisson mean is checked itself."""
    class Recording:
        def __init__(self) -> None:
            self.rng, self.means = np.random.default_rng(0), []

        def poisson(self, lam: float, *args, **kwargs):
            self.means.append(lam)
            return self.rng.poisson(lam, *args, **kwargs)

        def __getattr__(self, name: str):
            return getattr(self.rng, name)

    rng = Recording()
    SpikeWorkload(base_rate=1.0, spikes_per_hour=30.0, multiplier=2.0, duration_s=1.0).realise(rng, 3600.0,
                                                                                               resolution_s)
    assert rng.means == [pytest.approx(30.0)]   # 30 per hour over the whole hour


def test_a_step_must_end_after_its_ramp():
    with pytest.raises(ValueError, match="StepWorkload.end_s must be a finite number >= 700"):
        StepWorkload(start_s=600.0, ramp_s=100.0, end_s=650.0)
    assert StepWorkload(start_s=600.0, ramp_s=100.0, end_s=700.0).end_s == 700.0


@pytest.mark.parametrize("resolution_s", [1.0, 0.1, 30.0])
def test_mmpp_stays_and_spikes_cover_the_grid_points_in_their_span(resolution_s):
    """Each MMPP stay and each burst sets the grid points in ``[start, end)``: the realisation equals one built from
    the same draws by masking the whole grid per stay or burst (the definition, and what the code did before it took
    slices)."""
    duration = 2 * 3600.0
    times = np.arange(int(np.ceil(duration / resolution_s))) * resolution_s
    mmpp = MMPPWorkload(rates=(2.0, 9.0), mean_sojourn_s=(40.0, 7.3))
    draws = np.random.default_rng(5)
    expected = np.empty(len(times))
    state = int(draws.random() < 7.3 / 47.3)
    t = 0.0
    while t <= times[-1] + 1e-9:
        stay = draws.exponential(mmpp.mean_sojourn_s[state])
        expected[(times >= t) & (times < t + stay)] = mmpp.rates[state]
        t, state = t + stay, 1 - state
    assert mmpp.realise(np.random.default_rng(5), duration, resolution_s).rates.tolist() == expected.tolist()
    spikes = SpikeWorkload(base_rate=3.0, spikes_per_hour=30.0, multiplier=4.0, duration_s=45.5)
    draws = np.random.default_rng(6)
    expected = np.full(len(times), 3.0)
    horizon = len(times) * resolution_s
    for start in draws.uniform(0, horizon, size=draws.poisson(30.0 * horizon / 3600)):
        expected[(times >= start) & (times < start + 45.5)] = 12.0
    assert spikes.realise(np.random.default_rng(6), duration, resolution_s).rates.tolist() == expected.tolist()


def test_an_aggregated_trace_is_binned_at_its_smallest_spacing_so_missing_rows_are_gaps(tmp_path):
    """The median spacing read rows at 0, 120 and 180 s as 90 s bins, and a per-minute trace missing most odd minutes
    as 2-minute bins that added up its rows: the missing minutes were never reported."""
    path = write(tmp_path, "t,n\n0,60\n120,120\n180,30\n")
    with pytest.raises(TraceGapError, match=r"trace.csv: 1 bin\(s\) of 60 s have no row \(the first gap is between "
                                            r"lines 2 and 3\)"):
        read_rate_trace(path, "t", "n")
    assert read_rate_trace(path, "t", "n", gaps="zero").rates.tolist() == [1.0, 0.0, 2.0, 0.5]
    minutes = [m for m in range(60) if m % 2 == 0 or m % 10 == 1]    # 0, 1, 2, 4, 6, 8, 10, 11, 12, 14, ..., 58
    sparse = write(tmp_path, "t,n\n" + "".join(f"{60 * m},60\n" for m in minutes), "sparse.csv")
    with pytest.raises(TraceGapError, match=rf"sparse.csv: {59 - len(minutes)} bin\(s\) of 60 s have no row"):
        read_rate_trace(sparse, "t", "n")
    coarse = read_rate_trace(sparse, "t", "n", bin_s=120)    # a bin_s given still re-bins, adding up the counts
    assert coarse.bin_s == 120 and len(coarse.rates) == 30 and coarse.rates[:2].tolist() == [1.0, 0.5]


def test_a_coarser_bin_s_bins_the_rows_there_are_as_documented(tmp_path):
    """docs/reference.md (tasks.trace_bin_s): a row missing from a bin that has others is not a gap, for counts and
    rates alike, and a stray row half-way is binned with its minute; read without bin_s, the missing row is a gap."""
    path = write(tmp_path, "t,n\n0,60\n60,60\n120,60\n240,60\n300,60\n360,60\n")   # no 180 s row
    with pytest.raises(TraceGapError, match=r"1 bin\(s\) of 60 s have no row \(the first gap is between lines 4 and "
                                            r"5\)"):
        read_rate_trace(path, "t", "n")
    for gaps in ("error", "zero", "join"):
        assert read_rate_trace(path, "t", "n", bin_s=120, gaps=gaps).rates.tolist() == [1.0, 0.5, 1.0, 0.5]
        assert read_rate_trace(path, "t", "n", value_kind="rate", bin_s=120, gaps=gaps).rates.tolist() == [60.0] * 4
    stray = write(tmp_path, "t,n\n0,60\n30,5\n60,60\n120,60\n180,60\n", "stray.csv")
    assert read_rate_trace(stray, "t", "n", bin_s=60).rates.tolist() == [65 / 60, 1.0, 1.0, 1.0]


def test_a_bin_s_that_is_no_multiple_of_the_rows_spacing_warns_for_counts(tmp_path):
    """90 s bins over a steady 60 requests a minute hold two rows, then one: 4/3 and 2/3 requests a second by turns.
    A multiple of the spacing, rates (averaged, not added up), and rows on no one grid do not warn."""
    path = write(tmp_path, "t,n\n" + "".join(f"{60 * i},60\n" for i in range(6)))
    with pytest.warns(TraceAliasWarning, match=r"trace.csv: bin_s=90 is not a whole multiple of the spacing of most "
                                               r"rows, 60 s: its bins add up the counts of 1 or 2 rows, so a steady "
                                               r"load reads as alternating rates; give a multiple of 60$") as caught:
        rates = read_rate_trace(path, "t", "n", bin_s=90).rates
    assert [w.filename for w in caught] == [__file__]
    assert rates.tolist() == pytest.approx([4 / 3, 2 / 3, 4 / 3, 2 / 3])
    stray = write(tmp_path, "t,n\n0,60\n60,60\n90,5\n120,60\n180,60\n240,60\n", "stray.csv")
    with pytest.warns(TraceAliasWarning, match="spacing of most rows, 60 s"):   # one stray row does not hide it
        read_rate_trace(stray, "t", "n", bin_s=90)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_rate_trace(path, "t", "n", bin_s=120).rates.tolist() == [1.0] * 3
        assert read_rate_trace(path, "t", "n", value_kind="rate", bin_s=90).rates.tolist() == [60.0] * 4
        read_rate_trace(write(tmp_path, "t,n\n0,60\n60,60\n100,40\n", "no_grid.csv"), "t", "n", bin_s=90)


def test_rows_on_no_one_grid_are_refused_unless_bin_s_is_given(tmp_path):
    """Rows 60 s and then 40 s apart were read as 50 s bins; no bin width fits them, so the reader asks for one."""
    path = write(tmp_path, "t,n\n0,60\n60,60\n100,40\n")
    with pytest.raises(TraceBinError, match=r"trace.csv: lines 2 and 3 are 60 s apart, not a whole number of the "
                                            r"smallest spacing between rows, 40 s \(lines 3 and 4\).*pass bin_s"):
        read_rate_trace(path, "t", "n")
    assert read_rate_trace(path, "t", "n", bin_s=60).rates.tolist() == [1.0, 100 / 60]


@pytest.mark.parametrize("stamp", [lambda i: f"{1_700_000_000 + i / 10:.1f}",                  # epoch seconds
                                   lambda i: f"2024-01-01 00:00:{i // 10:02d}.{i % 10}00"])   # ISO-8601, 100 ms
def test_a_sub_second_grid_of_absolute_timestamps_is_read(tmp_path, stamp):
    """The float rounding of epoch-sized times (about 2e-7 s) is over a millionth of a 0.1 s bin: such a trace was
    refused as off its grid."""
    path = write(tmp_path, "t,n\n" + "".join(f"{stamp(i)},{i % 3}\n" for i in range(50)))
    trace = read_rate_trace(path, "t", "n")
    assert len(trace.rates) == 50 and trace.bin_s == pytest.approx(0.1, rel=1e-6)
    assert trace.rates == pytest.approx([i % 3 / 0.1 for i in range(50)], rel=1e-6)


def test_a_gap_in_an_inferred_grid_says_a_stray_row_may_have_set_it(tmp_path):
    """One row 1 s off a 60 s grid makes 1 s bins; the gap error offered gaps='zero' or 'join' only, which read the
    trace at 60x its rate."""
    path = write(tmp_path, "t,n\n" + "".join(f"{60 * m},5\n" for m in range(10)) + "61,5\n")
    with pytest.raises(TraceGapError, match=r"the bin width, 1 s, is the smallest spacing between rows: if one stray "
                                            r"row set it, pass bin_s"):
        read_rate_trace(path, "t", "n")
    with pytest.raises(TraceGapError) as err:   # a width that was given is not second-guessed
        read_rate_trace(write(tmp_path, "t,n\n0,5\n120,5\n", "given.csv"), "t", "n", bin_s=60)
    assert "stray" not in str(err.value)


def drifting(stamp, minutes=30, seed=0):
    """A per-minute count file whose row m is stamped ``stamp(60 m + drift)``, drift up to 20 s either way (the first
    row's too), with m + 1 requests."""
    drift = np.random.default_rng(seed).uniform(-20, 20, minutes)
    return "t,n\n" + "".join(f"{stamp(60 * m + d)},{m + 1}\n" for m, d in enumerate(drift))


@pytest.mark.parametrize("stamp", [lambda s: f"{1_700_000_040 + s:.3f}",                     # epoch seconds
                                   lambda s: (np.datetime64("2024-01-01T00:00:00") + np.timedelta64(round(s * 1000),
                                                                                                   "ms")).astype(str)])
def test_timestamps_drifting_around_a_grid_are_read_with_time_round_s(tmp_path, stamp):
    """A per-minute export stamped a few seconds off each minute was refused as on no grid, and bin_s=60 (the fix
    the error asked for) then put two rows in some bins and none in others: a gap error, or with gaps="zero" a trace
    with doubled and empty minutes. time_round_s=60 puts each row on its minute."""
    path = write(tmp_path, drifting(stamp))
    with pytest.raises(TraceBinError, match="not on one grid of bins; pass bin_s to give the bin width, or "
                                            "time_round_s if the timestamps drift around a grid"):
        read_rate_trace(path, "t", "n")
    with pytest.raises(TraceGapError):
        read_rate_trace(path, "t", "n", bin_s=60)
    trace = read_rate_trace(path, "t", "n", time_round_s=60)
    assert trace.bin_s == pytest.approx(60) and trace.rates == pytest.approx([(m + 1) / 60 for m in range(30)])
    with pytest.raises(TraceBinError, match=r"not on one grid of bins; pass bin_s to give the bin width "
                                            r"\(time_round_s=0.001 left them off one grid: give it the rows' "
                                            r"spacing\)$"):
        read_rate_trace(path, "t", "n", time_round_s=1e-3)   # it asked for the time_round_s already given
    coarse = read_rate_trace(path, "t", "n", time_round_s=60, bin_s=300)   # rounded first, then binned
    assert coarse.rates == pytest.approx([sum(range(5 * b + 1, 5 * b + 6)) / 300 for b in range(6)])


@pytest.mark.parametrize("stamp", [lambda s: f"{s + 30:.3f}",                                   # mid-minute
                                   lambda s: f"{1_700_000_010 + s:.3f}",                      # 10 s into the minute
                                   lambda s: (np.datetime64("2024-01-01T00:00:00") + np.timedelta64(round(s * 1000),
                                                                                                   "ms")).astype(str)
                                   + "+05:30"])                                              # a half-hour zone
def test_a_drifting_grid_off_the_multiples_of_time_round_s_is_read(tmp_path, stamp):
    """Rounding to multiples of time_round_s (of the epoch, for date-times) read only grids on those multiples: a
    grid stamped mid-minute lost all its slack for drift, and one exactly mid-minute failed on round-half-to-even."""
    trace = read_rate_trace(write(tmp_path, drifting(stamp)), "t", "n", time_round_s=60)
    assert trace.rates == pytest.approx([(m + 1) / 60 for m in range(30)])
    exact = write(tmp_path, "t,n\n30,1\n90,2\n150,3\n210,4\n", "exact.csv")
    as_written = read_rate_trace(exact, "t", "n").rates.tolist()
    assert read_rate_trace(exact, "t", "n", time_round_s=60).rates.tolist() == as_written


def test_rows_that_time_round_s_puts_on_one_time_are_named(tmp_path):
    path = write(tmp_path, "t,n\n0,1\n60,2\n155,3\n180,4\n")   # the third row drifts by more than 30 s
    with pytest.raises(TraceRoundError, match=r"trace.csv: lines 4 and 5 \('155' and '180', 25 s apart\) round to "
                                              r"one time with time_round_s=60, which cannot tell their bins apart: "
                                              r"give it the rows' spacing"):
        read_rate_trace(path, "t", "n", time_round_s=60)
    with pytest.raises(TraceRoundError, match=r"lines 2 and 3 \('0' and '60', 60 s apart\) round to one"):   # coarse
        read_rate_trace(path, "t", "n", time_round_s=150)
    epoch = write(tmp_path, "t,n\n1700000040,1\n1700000195,2\n1700000220,3\n", "epoch.csv")   # named as written
    with pytest.raises(TraceRoundError, match=r"lines 3 and 4 \('1700000195' and '1700000220', 25 s apart\)"):
        read_rate_trace(epoch, "t", "n", time_round_s=60)
    with pytest.raises(TraceFormatError, match=r"time_round_s=1e-300 is finer than timestamps of up to 1.7e\+09 s"):
        read_rate_trace(epoch, "t", "n", time_round_s=1e-300)
    same = write(tmp_path, "t,n\n0.4,1\n0.4,2\n60,3\n", "same.csv")   # rows at one time already share a bin
    assert read_rate_trace(same, "t", "n", time_round_s=60, bin_s=60).rates == pytest.approx([3 / 60, 3 / 60])


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "60"])
def test_a_bad_time_round_s_is_refused_naming_it(value):
    with pytest.raises((TypeError, ValueError), match="^TraceWorkload.time_round_s must be a"):
        TraceWorkload(path="t.csv", time_round_s=value)
    with pytest.raises(ValueError, match="^TraceWorkload.time_round_s=60 puts an aggregated file's timestamps on a "
                                         "grid; a file of one row per request"):
        TraceWorkload(path="t.csv", value_column=None, time_round_s=60)


def test_a_workload_with_time_round_s_round_trips_and_one_without_keeps_its_dict_form(tmp_path):
    path = write(tmp_path, drifting(lambda s: f"{s + 600:.3f}"))
    workload = TraceWorkload(path=str(path), time_column="t", value_column="n", time_round_s=60)
    assert workload_from_dict(yaml.safe_load(yaml.safe_dump(workload.to_dict()))) == workload
    assert len(workload.load().rates) == 30
    assert "time_round_s" not in TraceWorkload(path=str(path)).to_dict()   # see test_csv_trace_workload_dict_form...
    with pytest.raises(ValueError, match="CSV option.*time_round_s"):   # an in-memory trace is replayed as it is
        TraceWorkload(trace=workload.load(), time_round_s=60)


def test_the_config_key_trace_bin_s_sets_the_bin_width_of_a_test_trace(tmp_path):
    from flash_rl.cases import CONFIG_DIR, get_case
    from flash_rl.config import load_config
    from flash_rl.pipeline import test_tasks

    case = get_case("autoscaling")
    path = write(tmp_path, "timestamp,requests\n0,60\n120,120\n180,30\n", "sparse.csv")
    off_grid = write(tmp_path, "timestamp,requests\n0,60\n60,60\n100,40\n", "off_grid.csv")
    for trace, error, key in ((path, TraceGapError, "trace_gaps"), (off_grid, TraceBinError, "trace_bin_s")):
        cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", [f"tasks.test_traces=['{trace}']"])
        with pytest.raises(error, match=f"config key tasks.{key}, e.g. --set tasks.{key}="):
            test_tasks(cfg, case, case.build_family(cfg))
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", [f"tasks.test_traces=['{path}']", "tasks.trace_bin_s=120"])
    replayed = [t for t in test_tasks(cfg, case, case.build_family(cfg)) if t.name.startswith("trace:")]
    assert replayed and {t.workload.bin_s for t in replayed} == {120}
    assert replayed[0].workload.load().rates.tolist() == [0.5, 1.25]
    minutes = write(tmp_path, drifting(lambda s: f"{s + 600:.3f}").replace("t,n", "timestamp,requests"), "drift.csv")
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", [f"tasks.test_traces=['{minutes}']"])
    with pytest.raises(TraceBinError, match="time_round_s is config key tasks.trace_time_round_s"):
        test_tasks(cfg, case, case.build_family(cfg))
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml",
                      [f"tasks.test_traces=['{minutes}']", "tasks.trace_time_round_s=60"])
    replayed = [t for t in test_tasks(cfg, case, case.build_family(cfg)) if t.name.startswith("trace:")]
    assert replayed and {t.workload.time_round_s for t in replayed} == {60}
    assert len(replayed[0].workload.load().rates) == 30
    collide = write(tmp_path, "timestamp,requests\n0,1\n60,2\n155,3\n180,4\n", "collide.csv")
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml",
                      [f"tasks.test_traces=['{collide}']", "tasks.trace_time_round_s=60"])
    with pytest.raises(TraceRoundError, match=r"round to one time .*\(config key tasks.trace_time_round_s\)$"):
        test_tasks(cfg, case, case.build_family(cfg))


def test_a_request_log_is_replayed_with_an_empty_value_column(tmp_path):
    """docs/reference.md: tasks.trace_value_column "" reads one row per request; the config refused it."""
    from flash_rl.cases import CONFIG_DIR, get_case
    from flash_rl.config import load_config
    from flash_rl.pipeline import test_tasks

    log = write(tmp_path, "timestamp,user\n" + "".join(f"{i / 4},u{i % 3}\n" for i in range(400)), "log.csv")
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", [f"tasks.test_traces=['{log}']",
                                                              "tasks.trace_value_column="])
    case = get_case("autoscaling")
    replayed = [t for t in test_tasks(cfg, case, case.build_family(cfg)) if t.name.startswith("trace:")]
    assert replayed and {t.workload.value_column for t in replayed} == {None}
    trace = replayed[0].workload.load()
    assert trace.bin_s == 1.0 and trace.rates.tolist() == [4.0] * 100     # 4 requests a second for 100 s


def family_replaying(tmp_path, trace):
    """A task-family YAML whose test task replays ``trace`` at 30 req/s."""
    from flash_envs.tasks import AutoscalingTaskFamily

    family = AutoscalingTaskFamily.generate(2, 1, 0).to_dict()
    family["test"][0]["workload"] = {"kind": "trace", "path": str(trace), "mean_rate": 30}
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump(family))
    return path


@pytest.mark.parametrize("source", ["--test-trace", "tasks.family_file"])
@pytest.mark.parametrize("command", ["reproduce", "evaluate", "adapt"])
def test_a_trace_without_requests_is_refused_before_any_work(tmp_path, capsys, command, source):
    """It passed the up-front check of trace files and failed with a traceback where the trace was first replayed:
    for reproduce, in the references phase after the whole meta-training. evaluate and adapt are given no model: the
    trace is refused before one is loaded."""
    from flash_rl.cli import main

    zeros = write(tmp_path, "timestamp,requests\n0,0\n60,0\n120,0\n", "zeros.csv")
    given = (["--test-trace", str(zeros)] if source == "--test-trace" else
             ["--set", f"tasks.family_file={family_replaying(tmp_path, zeros)}"])
    where = (["--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out")] if command == "reproduce" else
             ["--model", str(tmp_path / "no-model")])
    assert main([command, "--quick", *where, *given]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flash: error: ") and len(err.splitlines()) == 1
    assert f"the trace {zeros} has no requests, so it cannot be scaled to mean_rate=" in err
    if source == "tasks.family_file":
        assert f"task family {tmp_path / 'family.yaml'}: test[0] (" in err
    else:   # the rate is the test task's, which the user never gave
        assert f"{zeros}: it is replayed at each test task's mean rate (test task 'task-24': " in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()

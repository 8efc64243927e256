"""Defects found by the audit of flash/ConfigSearch-v0 and the data readers: each test failed before its fix."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from flash_envs.data import DataFormatError, csv_rows
from flash_envs.data.config_measurements import simulated_measurements
from flash_envs.data.public import AZURE_INVOCATIONS, azure_function_trace
from flash_envs.data.trace_csv import RateTrace, TraceFormatError, read_rate_trace
from flash_envs.envs.config_search import ConfigSearchEnv, ConfigSearchTask, ConfigSearchTaskFamily
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.sim.serverless import ServerlessFunction, generate_functions
from flash_envs.sim.workloads import MMPPWorkload, TraceWorkload, workload_from_dict
from flash_envs.tasks import AutoscalingTaskFamily

AZURE_HEADER = "HashOwner,HashApp,HashFunction,Trigger"


def write(path, text: str):
    path.write_text(text, newline="")
    return path


def two_configs(name: str = "x", **fields) -> ConfigSearchTask:
    return ConfigSearchTask(**{"name": name, "configs": ("a", "b"), "runtime_s": (1.0, 2.0), "cost_usd": (1.0, 2.0),
                               "deadline_s": 1.5, **fields})


# ------------------------------------------------------------------ 1. Azure minute columns are read by name
def test_azure_minutes_are_read_by_name_in_time_order(tmp_path):
    """Counts were read by position from column "1" on: a header ...,2,1,3 gave minute 2 first."""
    trace = azure_function_trace(0, write(tmp_path / "inv.csv", f"{AZURE_HEADER},2,1,3\no,a,f,http,20,10,30\n"))
    np.testing.assert_array_equal(trace.rates, np.array([10.0, 20.0, 30.0]) / 60.0)


def test_azure_columns_after_the_minutes_are_not_minutes(tmp_path):
    """A trailing note column was read as one more minute (and refused as not a number)."""
    trace = azure_function_trace(0, write(tmp_path / "inv.csv", f"{AZURE_HEADER},1,2,note\no,a,f,http,6,12,x\n"))
    np.testing.assert_array_equal(trace.rates, [0.1, 0.2])


@pytest.mark.parametrize("header, row, message", [
    (AZURE_HEADER, "o,a,f,http", r"no minute columns \('1', '2', \.\.\.\)"),          # was: a bare empty-trace error
    ("HashFunction,2,3", "f,1,2", r"the minute columns must be '1' \.\. '2', each once.*without \['1'\]"),
    (f"{AZURE_HEADER},5,6", "o,a,f,http,1,2", r".*column\(s\) \['5', '6'\], without \['1', '2'\]"),  # was: read
    (f"{AZURE_HEADER},1,01", "o,a,f,http,1,2", r"the minute columns must be '1' \.\. '2'"),
])
def test_an_azure_file_without_minutes_1_to_n_is_named(tmp_path, header, row, message):
    path = write(tmp_path / "inv.csv", f"{header}\n{row}\n")
    with pytest.raises(TraceFormatError, match=f"{path}: {message}"):
        azure_function_trace(0, path)


def test_the_shared_azure_file_reads_minutes_1_to_1440(shared_data):
    path = shared_data.joinpath(*AZURE_INVOCATIONS)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i in (0, 4, 9):
        counts = [float(rows[i][str(minute)]) for minute in range(1, 1441)]
        trace = azure_function_trace(i)
        assert trace.rates.tobytes() == (np.asarray(counts) / 60.0).tobytes()
        assert trace.source == f"{path}#{rows[i]['HashFunction']}"


# ------------------------------------------------------------------ 2, 3. config-search task fields are checked
@pytest.mark.parametrize("fields, error, message", [
    ({"name": 3}, TypeError, r"ConfigSearchTask.name must be a str, got 3 \(int\)"),
    ({"configs": "ab"}, TypeError, r"ConfigSearchTask.configs must be a list of configuration names.*got 'ab'"),
    ({"configs": ("a", 2)}, TypeError, r"ConfigSearchTask.configs\[1\] must be a configuration name \(a str\)"),
    ({"runtime_s": ("1", "2")}, TypeError, r"ConfigSearchTask.runtime_s\[0\] must be a number, got '1' \(str\)"),
    ({"runtime_s": 1.0}, TypeError, r"ConfigSearchTask.runtime_s must be a list of numbers"),
    ({"runtime_s": (True, 2.0)}, TypeError, r"ConfigSearchTask.runtime_s\[0\] must be a number, got True"),
    ({"cost_usd": (1.0, None)}, TypeError, r"ConfigSearchTask.cost_usd\[1\] must be a number, got None"),
    ({"deadline_s": "1.5"}, TypeError, r"ConfigSearchTask.deadline_s must be a number, got '1.5'"),
    ({"deadline_s": [1.5]}, TypeError, r"ConfigSearchTask.deadline_s must be a number, got \[1.5\]"),
])
def test_a_config_search_task_names_a_field_of_the_wrong_type(fields, error, message):
    with pytest.raises(error, match=message):
        two_configs(**fields)
    d = {**two_configs().to_dict(), **fields}
    with pytest.raises(error, match=message):
        ConfigSearchTask.from_dict(d)


@pytest.mark.parametrize("field, value", [("runtime_s", "12"), ("configs", "ab"), ("name", None),
                                          ("runtime_s", [True, 2])])
def test_from_dict_does_not_read_a_string_as_a_list_of_characters(field, value):
    """from_dict mapped float/str over the field: "12" was the runtimes (1.0, 2.0), "ab" the configs, None 'None'."""
    with pytest.raises(TypeError, match=f"ConfigSearchTask.{field}"):
        ConfigSearchTask.from_dict({**two_configs().to_dict(), field: value})


def test_task_numbers_are_stored_as_python_floats_and_save_to_yaml(tmp_path):
    """NumPy scalars were stored as given: save_yaml failed on them (YAML's safe dumper takes no np.float64)."""
    runtime = np.array([1.0, 2.0, 3.0])
    task = ConfigSearchTask("a", ["x", "y", "z"], tuple(runtime), runtime.astype(np.float32), np.float64(2.5))
    assert task.configs == ("x", "y", "z") and task.cost_usd == (1.0, 2.0, 3.0)
    assert all(type(v) is float for v in (*task.runtime_s, *task.cost_usd, task.deadline_s))
    hash(task)   # lists are stored as tuples
    family = ConfigSearchTaskFamily((task,), (ConfigSearchTask("b", ("x", "y", "z"), (2.0, 4.0, 6.0), (3, 2, 1), 4.5),))
    family.save_yaml(tmp_path / "fam.yaml")
    assert ConfigSearchTaskFamily.load_yaml(tmp_path / "fam.yaml") == family


# ------------------------------------------------------------------ 4. huge trace values
@pytest.mark.parametrize("rates, mean_rate", [([1e308, 1e308], 1.0), ([5e-324, 5e-324], 1.0), ([1.0] + [0.0] * 999,
                                                                                            1e306)])
def test_a_trace_too_close_to_the_float_limits_to_scale_is_refused_by_name(rates, mean_rate):
    """rates.mean() overflowed to inf and the mean_rate scale to 0: an all-zero workload, without a word."""
    with pytest.raises(ValueError, match=r"the trace spike.csv \(peak .* req/s\) is too close to the float limits to "
                                         r"scale to mean_rate="):
        TraceWorkload.from_trace(RateTrace(np.array(rates), 1.0, "spike.csv"), mean_rate=mean_rate, start_s=0.0)


def test_ordinary_traces_scale_as_before():
    trace = RateTrace(np.random.default_rng(3).gamma(2.0, 3.0, size=500), 60.0, "x")
    for mean_rate in (0.5, 7.3, 123.456):
        workload = TraceWorkload.from_trace(trace, mean_rate=mean_rate, start_s=0.0)
        realised = workload.realise(np.random.default_rng(0), 500 * 60, 60.0)
        assert realised.rates.tobytes() == (trace.rates * (mean_rate / trace.rates.mean())).tobytes()


@pytest.mark.parametrize("text, kwargs, line", [
    ("t,requests\n0,1\n0.5,1e308\n0.7,1e308\n1,3\n", {"bin_s": 1}, 2),            # counts that add up past 1e308
    ("t,requests\n0,1\n1,1e308\n", {"bin_s": 0.5}, 3),                              # a count over a narrow bin
    ("t,r\n0,1\n0.5,1e308\n0.7,1e308\n", {"value_column": "r", "value_kind": "rate", "bin_s": 1}, 2),
])
def test_a_binned_rate_that_overflows_names_the_file_and_line(tmp_path, text, kwargs, line):
    """The rate of the bin overflowed to inf: a bare ValueError from RateTrace that named no file."""
    path = write(tmp_path / "big.csv", text)
    with pytest.raises(TraceFormatError, match=f"{path}:{line}: the rate of the .* bin this row is in overflows"):
        read_rate_trace(path, "t", **{"value_column": "requests", **kwargs})


def test_a_bin_too_narrow_to_divide_by_is_refused_before_the_file_is_read(tmp_path):
    """One request per 1e-310 s bin overflowed (named by file and line); such a bin is now refused by name."""
    path = write(tmp_path / "one.csv", "t\n0\n")
    with pytest.raises(ValueError, match=r"^bin_s must be a finite number >= 1e-06 and <= 1e\+09, got 1e-310"):
        read_rate_trace(path, "t", value_column=None, bin_s=1e-310)


# ------------------------------------------------------------------ 5. observations near the float limits
@pytest.mark.parametrize("cost", [1e308, 1e101, 5e-324, 1e-101])
def test_a_task_whose_measurements_could_over_or_underflow_is_refused(cost):
    """Costs near 1e308 times the noise (inf / inf) or of 5e-324 (0 / 0) made the cost observation NaN."""
    with pytest.raises(ValueError, match=r"runtimes, costs and deadline must be numbers in \[1e-100, 1e\+100\]"):
        ConfigSearchTask("x", ("a", "b"), (1.0, 2.0), (cost, cost), 1.5)


def test_observations_at_the_ends_of_the_range_stay_in_the_space():
    for cost in (1e100, 1e-100):
        task = ConfigSearchTask("x", ("a", "b"), (1.0, 2.0), (cost, cost), 1.5)
        env = ConfigSearchEnv(family=ConfigSearchTaskFamily((task,), (two_configs("y"),)), noise_cv=3.0)
        for seed in range(20):
            env.reset(seed=seed)
            env.step(0)
            obs, *_ = env.step(1)
            assert np.isfinite(obs).all() and env.observation_space.contains(obs)


# ------------------------------------------------------------------ 6. family constructors check their arguments
@pytest.mark.parametrize("kwargs, error, message", [
    ({"seed": None}, TypeError, "seed must be a whole number, not None"),    # was a new random split at each call
    ({"seed": 1.5}, ValueError, "seed must be a whole number >= 0, got 1.5"),
    ({"seed": "3"}, TypeError, "seed must be a whole number, got '3'"),
    ({"seed": -1}, ValueError, "seed must be a whole number >= 0, got -1"),
    ({"test_fraction": "0.3"}, TypeError, "test_fraction must be a number, got '0.3'"),
])
def test_from_measurements_names_a_bad_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        ConfigSearchTaskFamily.from_measurements(simulated_measurements(6, seed=0), **kwargs)


@pytest.mark.parametrize("memory_sizes, error, message", [
    (512, TypeError, r"memory_sizes must be a list of memory sizes \(MiB\), got 512"),
    ("abc", TypeError, "memory_sizes must be a list of memory sizes"),
    ([[128, 256]], TypeError, r"memory_sizes\[0\] must be a number, got \[128, 256\]"),
    ([128], ValueError, r"memory_sizes must hold >= 2 sizes"),
    ([128, float("nan")], ValueError, r"memory_sizes\[1\] must be a finite number >= 128 and <= 10240, got nan"),
    ([128, 1e9], ValueError, r"memory_sizes\[1\] must be a finite number >= 128 and <= 10240"),
    ([128, 256, 128], ValueError, r"memory_sizes repeats the size\(s\) \['128MiB'\]"),   # was two 128MiB configs
])
def test_generate_names_bad_memory_sizes(memory_sizes, error, message):
    with pytest.raises(error, match=message):
        ConfigSearchTaskFamily.generate(2, 1, memory_sizes=memory_sizes)


def test_generate_takes_memory_sizes_as_a_list_or_array():
    a = ConfigSearchTaskFamily.generate(2, 1, memory_sizes=[256, 128])
    assert a == ConfigSearchTaskFamily.generate(2, 1, memory_sizes=np.array([256, 128]))
    assert a.train[0].configs == ("256MiB", "128MiB")


# ------------------------------------------------------------------ 7. CSV header quirks
def test_a_header_that_repeats_a_column_name_is_refused(tmp_path):
    """A dict row holds one value per name: the last 'requests' column was read, silently."""
    path = write(tmp_path / "dup.csv", "t,requests,requests\n0,1,5\n1,2,6\n")
    with pytest.raises(TraceFormatError, match=rf"{path}:1: the header repeats the column name\(s\) \['requests'\]"):
        read_rate_trace(path, "t", "requests")


def test_repeated_blank_column_names_are_no_column_read(tmp_path):
    path = write(tmp_path / "blank_cols.csv", "t,requests,,\n0,1,,\n1,2,,\n")
    np.testing.assert_array_equal(read_rate_trace(path, "t", "requests").rates, [1.0, 2.0])


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    """The first line, blank, was taken for an empty header: 'empty file'."""
    path = write(tmp_path / "lead.csv", "\n\nt,requests\n0,1\n1,x\n")
    with pytest.raises(TraceFormatError, match=rf"{path}:5: column 'requests' holds 'x'"):   # lines still counted
        read_rate_trace(path, "t", "requests")
    assert [line for line, _ in csv_rows(write(tmp_path / "ok.csv", "\nt\n0\n1\n"), ("t",))] == [3, 4]
    with pytest.raises(DataFormatError, match=rf"{tmp_path / 'm.csv'}:2: missing column\(s\) \['x'\]"):
        list(csv_rows(write(tmp_path / "m.csv", "\nt\n0\n"), ("x",)))
    with pytest.raises(DataFormatError, match="empty file"):
        list(csv_rows(write(tmp_path / "blank.csv", "\n\n"), ("t",)))


# ------------------------------------------------------------------ 8. serverless function fields
@pytest.mark.parametrize("fields, error, message", [
    ({"cpu_work_s": float("inf")}, ValueError, "ServerlessFunction.cpu_work_s must be a finite number >= 0, got inf"),
    ({"noise_cv": float("inf")}, ValueError, "ServerlessFunction.noise_cv must be a finite number >= 0 and <= 3"),
    ({"noise_cv": 800.0}, ValueError, "noise_cv must be a finite number >= 0 and <= 3, got 800"),   # exp overflowed
    ({"max_threads": 2.5}, ValueError, "ServerlessFunction.max_threads must be a whole number >= 1, got 2.5"),
    ({"cpu_work_s": "1"}, TypeError, "ServerlessFunction.cpu_work_s must be a number, got '1'"),
    ({"io_s": None}, TypeError, r"ServerlessFunction.io_s must be a number, got None \(NoneType\)"),
    ({"name": 3}, TypeError, "ServerlessFunction.name must be a str"),
])
def test_a_serverless_function_names_a_bad_field(fields, error, message):
    with pytest.raises(error, match=message):
        ServerlessFunction(**fields)
    with pytest.raises(error, match=message):
        ServerlessFunction.from_dict(fields)


def test_serverless_numbers_are_stored_plain():
    fn = ServerlessFunction(cpu_work_s=np.float64(2.0), max_threads=np.int64(4))
    assert type(fn.cpu_work_s) is float and type(fn.max_threads) is int


@pytest.mark.parametrize("n, error, message", [(2.5, ValueError, "n must be a whole number >= 1, got 2.5"),
                                               ("3", TypeError, "n must be a whole number, got '3'"),
                                               (0, ValueError, "n must be a whole number >= 1, got 0")])
def test_generate_functions_names_a_bad_count(n, error, message):
    with pytest.raises(error, match=message):
        generate_functions(n)


# ------------------------------------------------------------------ 9. family splits hold tasks of their type
X, Y = two_configs("x"), two_configs("y", cost_usd=(2.0, 2.0))


@pytest.mark.parametrize("train, test, message", [
    ((1,), (2,), r"ConfigSearchTaskFamily.train\[0\] must be a ConfigSearchTask, got 1 \(int\)"),   # AttributeError
    ((X,), Y, r"ConfigSearchTaskFamily.test must be a tuple of tasks, got one ConfigSearchTask"),     # 'not iterable'
    ((X,), (Y, {"name": "z"}), r"ConfigSearchTaskFamily.test\[1\] must be a ConfigSearchTask, got \{'name'"),
    ((X,), "ab", r"ConfigSearchTaskFamily.test must be a tuple of tasks, got 'ab' \(str\)"),
])
def test_a_family_names_a_split_element_that_is_not_its_task_type(train, test, message):
    with pytest.raises(TypeError, match=message):
        ConfigSearchTaskFamily(train, test)


def test_a_family_of_another_task_type_is_refused_and_lists_are_tuples():
    autoscaling = AutoscalingTaskFamily.generate(2, 1)
    with pytest.raises(TypeError, match=r"AutoscalingTaskFamily.test\[0\] must be an AutoscalingTask, got "):
        AutoscalingTaskFamily(autoscaling.train, (X,))
    family = ConfigSearchTaskFamily([X], [Y])
    assert isinstance(family.train, tuple) and isinstance(family.test, tuple)
    hash(family)


# ------------------------------------------------------------------ 10. MMPP stays no shorter than the grid
@pytest.mark.parametrize("sojourn", [(1e-3, 60.0), (60.0, 0.5)])
def test_an_mmpp_stay_below_the_grid_is_refused(sojourn):
    """Each stay was a step of a Python loop: 1e-3 s stays took 8 s to realise, 1e-5 s over a minute."""
    index = 0 if sojourn[0] < 1 else 1
    with pytest.raises(ValueError, match=rf"MMPPWorkload.mean_sojourn_s\[{index}\] must be >= 1 s"):
        MMPPWorkload(mean_sojourn_s=sojourn)
    with pytest.raises(ValueError, match=r"mean_sojourn_s\[.\] must be >= 1 s"):
        workload_from_dict({"kind": "mmpp", "mean_sojourn_s": list(sojourn)})
    MMPPWorkload(mean_sojourn_s=(1.0, 1.0)).realise(np.random.default_rng(0), 100)


def test_generated_families_keep_valid_mmpp_workloads():
    for seed in range(8):
        for family in (AutoscalingTaskFamily.generate(seed=seed, episode_s=60.0), PowerTaskFamily.generate(seed=seed)):
            for task in (*family.train, *family.test):
                if isinstance(task.workload, MMPPWorkload):
                    assert min(task.workload.mean_sojourn_s) >= 60.0


def test_a_hash_function_on_several_rows_is_refused_naming_them(tmp_path):
    """The first row with the hash was replayed, silently, whatever the others held."""
    path = write(tmp_path / "inv.csv", f"\n{AZURE_HEADER},1,2\no,a,f,http,1,2\no,b,g,http,3,4\np,c,f,timer,5,6\n")
    with pytest.raises(ValueError, match=rf"{path}: 2 rows have HashFunction 'f' \(lines 3, 5\); give the row index "
                                         r"of the one to replay instead \(0, 2\)"):
        azure_function_trace("f", path)
    np.testing.assert_array_equal(azure_function_trace(2, path).rates, [5 / 60, 6 / 60])
    np.testing.assert_array_equal(azure_function_trace("g", path).rates, [3 / 60, 4 / 60])

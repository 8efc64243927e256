"""The loaders of measured configurations (flash_envs.data.config_measurements): what they drop and count."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from flash_envs.data import DataFormatError
from flash_envs.data.config_measurements import (RATE_TOLERANCE, ConfigMeasurements, load_chunkfunc,
                                                 load_ibm_multicloud, simulated_measurements)

IBM_HEADER = ",provider,A_family,A_vcpu,B_family,B_vcpu,C_family,C_type,C_vcpu,nodes,workload,target_cost," \
             "target_runtime,status\n"
CHUNKFUNC_HEADER = "platform,function,step_id,resource_profile,memory_mib,milli_cpu,deployment_status," \
                   "input_size_bytes,execution_time_ms,execution_cost_usd,status_code\n"


def test_failed_ibm_runs_are_dropped_whatever_their_numbers_hold(tmp_path):
    """A failed run's runtime and cost are not measurements: blank or not, the row is dropped and counted."""
    path = tmp_path / "ibm.csv"
    path.write_text(IBM_HEADER + "0,A,1,1,,,,,,3,w,0.01,10.0,ok\n" + "1,A,1,0,,,,,,3,w,,,Timed out.\n"
                    + "2,A,1,1,,,,,,9,v,x,-1,in <closed TCP>: Stream is closed\n")
    data = load_ibm_multicloud(path)
    assert data.counts == {"rows read": 3, "dropped: failed run (status != ok)": 2, "merged duplicates": 0}
    assert data.apps == ("w",) and data.configs == ("A/A_family=1/A_vcpu=1/nodes=3",)
    path.write_text(IBM_HEADER + "0,A,1,1,,,,,,3,w,0.01,10.0,ok\n" + "1,A,1,0,,,,,,3,w,,,ok\n")
    with pytest.raises(ValueError, match=r"ibm.csv:3: column 'target_runtime' holds '', not a number"):
        load_ibm_multicloud(path)                                       # a successful run's blank is an error


def test_failed_chunkfunc_runs_are_dropped_whatever_their_numbers_hold(tmp_path):
    path = tmp_path / "chunkfunc.csv"
    good = "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,24,0,200\n"
    path.write_text(CHUNKFUNC_HEADER + good + "aws_lambda,f,s,256mib-1000m,256,1000,DeploymentFailed,100,,,\n"
                    + "aws_lambda,f,s,512mib-1000m,512,1000,DeploymentSuccess,100,,,500\n")
    data = load_chunkfunc(path, ["aws_lambda"])
    assert data.counts == {"rows read": 3, "dropped: failed run (deployment or HTTP status)": 2,
                           "merged duplicates": 0}
    assert data.apps == ("aws_lambda/f/100",) and data.configs == ("aws_lambda/128MiB/1000m",)
    path.write_text(CHUNKFUNC_HEADER + good.replace(",200\n", ",200.0\n") + good.replace("128", "256"))
    assert len(load_chunkfunc(path, ["aws_lambda"]).configs) == 2   # pandas writes 200.0: every row was dropped


@pytest.mark.parametrize("memory, cpu, column", [(32768, 1000, "memory_mib"), (64, 1000, "memory_mib"),
                                                  (1024, 8000, "milli_cpu")])
def test_chunkfunc_configurations_outside_the_features_range_are_named(tmp_path, memory, cpu, column):
    """Features scale memory over 128 MiB..16 GiB and CPU up to 6000m; a GCP 8-vCPU row was a ValueError traceback
    (features outside [0, 1]) until it was named."""
    path = tmp_path / "chunkfunc.csv"
    path.write_text(CHUNKFUNC_HEADER + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,24,0,200\n"
                    + f"gcp_cloud_functions,f,s,x,{memory},{cpu},DeploymentSuccess,100,24,0.1,200\n")
    with pytest.raises(DataFormatError, match=rf"chunkfunc.csv:3: column '{column}' holds .*; the features support"):
        load_chunkfunc(path, ["aws_lambda", "gcp_cloud_functions"])
    assert load_chunkfunc(path, ["aws_lambda"]).configs == ("aws_lambda/128MiB/1000m",)   # a platform not read


def _priced_ibm_csv(path, digits: int | None = None, price_change: float = 0.0) -> None:
    """An IBM-schema CSV of 5 workloads on 6 configurations whose cost is runtime x the configuration's hourly price
    x nodes, printed in full or to ``digits`` significant digits; with ``price_change``, the last workload is billed
    that much (relative) more at every configuration."""
    rng = np.random.default_rng(0)
    lines = []
    for i, workload in enumerate(["w0", "w1", "w2", "w3", "w4"]):
        for family, hourly in enumerate((0.0598, 0.0942, 0.1234)):
            for nodes in (2, 3):
                runtime = float(rng.uniform(5.0, 500.0))
                cost = runtime * hourly * nodes / 3600 * (1 + price_change * (i == 4))
                runtime_text, cost_text = (repr(runtime), repr(cost)) if digits is None else (
                    f"{runtime:.{digits}g}", f"{cost:.{digits}g}")
                lines.append(f"{len(lines)},A,{family},0,,,,,,{nodes},{workload},{cost_text},{runtime_text},ok\n")
    path.write_text(IBM_HEADER + "".join(lines))


def test_ibm_costs_printed_to_six_significant_digits_keep_their_price_list(tmp_path, caplog):
    """Rounding runtime and cost to 6 significant digits spreads one configuration's cost / runtime by up to 2e-5;
    the price list survives it and reproduces every cost of the file to RATE_TOLERANCE; a genuine price difference
    of 0.1 % within one configuration still means no price list."""
    exact, rounded, changed = (tmp_path / f"{name}.csv" for name in ("exact", "rounded", "changed"))
    _priced_ibm_csv(exact)
    _priced_ibm_csv(rounded, digits=6)
    _priced_ibm_csv(changed, digits=6, price_change=1e-3)
    truth = load_ibm_multicloud(exact)
    data = load_ibm_multicloud(rounded)
    assert truth.pricing is not None and data.pricing is not None
    configs = np.arange(len(data.configs))
    for d in (truth, data):
        priced = np.stack([d.pricing.cost(configs, runtime) for runtime in d.runtime_s])
        np.testing.assert_allclose(priced, d.cost_usd, rtol=RATE_TOLERANCE)
    np.testing.assert_allclose(data.pricing.usd_per_s, truth.pricing.usd_per_s, rtol=2e-5)
    with caplog.at_level(logging.INFO, logger="flash_envs.data.config_measurements"):
        assert load_ibm_multicloud(changed).pricing is None
    assert re.search(r"changed.csv: costs are not runtime x a rate per configuration \(.*\), 1.001 times as high, "
                     r"more than the 1.0001 times the rates may differ by\); no price list", caplog.text), caplog.text


def test_repeated_application_or_configuration_names_are_refused():
    """A name must pick one row or column (a predictor looks shots up by configuration name)."""
    with pytest.raises(ValueError, match=r"mine: each configuration must be named once; repeated: \['256MiB'\]"):
        ConfigMeasurements("mine", ("a",), ("256MiB", "256MiB"), ("f",), np.zeros((2, 1)), np.ones((1, 2)),
                           np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"mine: each application must be named once; repeated: \['a'\]"):
        ConfigMeasurements("mine", ("a", "a"), ("c",), ("f",), np.zeros((1, 1)), np.ones((2, 1)), np.ones((2, 1)))


@pytest.mark.parametrize("value", [32.0, -0.5, np.nan])
def test_own_features_must_be_scaled_to_the_unit_interval(value):
    """The predictors' inputs are features in [0, 1], as every loader gives them; 32 (MiB / 1024) was accepted."""
    features = np.array([[0.0, 1.0], [0.5, value]])
    with pytest.raises(ValueError, match=r"mine: features must be numbers in \[0, 1\] .*; 1 are not, e.g. size of "
                                         r"c2: "):
        ConfigMeasurements("mine", ("a",), ("c1", "c2"), ("cpu", "size"), features, np.ones((1, 2)), np.ones((1, 2)))
    features[1, 1] = 1.0   # the bounds themselves are in
    ConfigMeasurements("mine", ("a",), ("c1", "c2"), ("cpu", "size"), features, np.ones((1, 2)), np.ones((1, 2)))


def test_loader_arguments_are_named(shared_data):
    path = shared_data / "chunkfunc_faas_profiles" / "chunkfunc_profiles.csv"
    for platforms in ("aws_lambda", []):   # a string is not a list of platforms, an empty list loads nothing
        message = f"platforms must be a sequence of some of .*, got {re.escape(repr(platforms))}"
        with pytest.raises(ValueError, match=message):
            load_chunkfunc(path, platforms)
    with pytest.raises(ValueError, match="n_functions must be a whole number >= 1, got 2.5"):
        simulated_measurements(2.5)


@pytest.mark.parametrize("sizes, error, message", [
    (512, TypeError, "memory_sizes must be a list of memory sizes"),              # was numpy's AxisError
    ((), ValueError, r"memory_sizes must hold >= 2 sizes"),                       # was a set of no configurations
    ((np.nan, 128), ValueError, r"memory_sizes\[0\] must be a finite number"),
    (("128", "256"), TypeError, r"memory_sizes\[0\] must be a number"),          # was taken
    ((256, 256, 512), ValueError, r"memory_sizes repeats the size\(s\) \['256MiB'\]"),
])
def test_simulated_measurements_check_their_memory_sizes_as_the_env_family_does(sizes, error, message):
    with pytest.raises(error, match=message):
        simulated_measurements(3, memory_sizes=sizes)


@pytest.mark.parametrize("function", ["", " ", "a/b"])
def test_a_chunkfunc_function_must_be_named(tmp_path, function):
    """An app is platform/function/input: a blank function or one with a '/' would name no function or another."""
    path = tmp_path / "chunkfunc.csv"
    path.write_text(CHUNKFUNC_HEADER + f"aws_lambda,{function},s,128mib-1000m,128,1000,DeploymentSuccess,100,24,0,"
                    "200\n")
    with pytest.raises(ValueError, match=rf"chunkfunc.csv:2: column 'function': '{function}' is not a function name"):
        load_chunkfunc(path)


def test_repeated_ibm_measurements_merge_by_their_geometric_mean(tmp_path):
    """Two successful runs of one (workload, configuration), 10 s / $0.01 and 40 s / $0.04, merge into their
    geometric mean, 20 s / $0.02 (not the arithmetic 25 s), counted as one merged duplicate; ``status`` ``OK`` in any
    case is a successful run; the last feature is nodes / 5."""
    path = tmp_path / "ibm.csv"
    path.write_text(IBM_HEADER + "0,A,1,1,,,,,,3,w,0.01,10.0,ok\n" + "1,A,1,1,,,,,,3,w,0.04,40.0,OK\n")
    data = load_ibm_multicloud(path)
    assert data.counts == {"rows read": 2, "merged duplicates": 1}
    assert data.runtime_s[0, 0] == pytest.approx(20.0) and data.cost_usd[0, 0] == pytest.approx(0.02)
    assert data.features[0, -1] == pytest.approx(3 / 5)


def test_chunkfunc_runtimes_are_read_in_milliseconds_and_lambda_costs_priced(tmp_path):
    """``execution_time_ms`` is in milliseconds: 24 ms is a runtime of 0.024 s. An AWS Lambda run's cost is its
    price, 128 / 1024 GB x 0.024 s x $0.0000166667 per GB-s + $0.0000002 per request; another platform's is the
    file's ``execution_cost_usd``."""
    path = tmp_path / "chunkfunc.csv"
    path.write_text(CHUNKFUNC_HEADER + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,24,0,200\n"
                    + "gcp_cloud_functions,f,s,256mib-1000m,256,1000,DeploymentSuccess,100,50,0.000003,200\n")
    data = load_chunkfunc(path)
    lam, gcp = data.apps.index("aws_lambda/f/100"), data.apps.index("gcp_cloud_functions/f/100")
    lam_c, gcp_c = data.configs.index("aws_lambda/128MiB/1000m"), data.configs.index("gcp_cloud_functions/256MiB/1000m")
    assert data.runtime_s[lam, lam_c] == pytest.approx(0.024) and data.runtime_s[gcp, gcp_c] == pytest.approx(0.05)
    assert data.cost_usd[lam, lam_c] == pytest.approx(0.125 * 0.024 * 0.0000166667 + 0.0000002, rel=1e-9)
    assert data.cost_usd[gcp, gcp_c] == pytest.approx(0.000003)

"""Power model, server catalogue and the SPECpower / DVFS readers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from flash_envs.data import DATA_DIR_ENV, data_dir
from flash_envs.data.specpower import (PowerDataError, SPECPOWER_CURVES, DVFS_TABLES, WATTS_COLUMNS, load_server_types,
                                       read_dvfs_csv, read_specpower_csv)
from flash_envs.power_fit import fit_report, report_markdown
from flash_envs.sim.dvfs import DVFSServer
from flash_envs.sim.power import EnergyMeter, FrequencyScaling, ServerType, UtilisationCurve
from flash_envs.sim import server_catalogue as catalogue
from flash_envs.sim.server_catalogue import BAZAR_DVFS, default_scaling, server_by_name, train_servers
from flash_envs.sim.service import AppProfile
from flash_envs.sim.workloads import ConstantWorkload

HEADER = ("server_id,vendor,system,cores,ssj_ops_at_100pct,watts_idle,watts_10pct,watts_20pct,watts_30pct,"
          "watts_40pct,watts_50pct,watts_60pct,watts_70pct,watts_80pct,watts_90pct,watts_100pct\n")
GOOD_ROW = "7,ACME,Box 1,16,1600000,50,80,90,100,110,120,135,150,170,195,220\n"
OTHER_ROW = "8" + GOOD_ROW[1:]   # another result: its own server_id


def _data_file(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset {path} absent (set {DATA_DIR_ENV} to the folder holding the public datasets)")
    return path


def test_catalogue_has_diverse_disjoint_servers():
    train, test = catalogue.train_servers(), catalogue.test_servers()
    assert len(train) + len(test) >= 12
    assert not {s.name for s in train} & {s.name for s in test}
    cores = [s.cores for s in train + test]
    peaks = [s.watts[-1] for s in train + test]
    assert min(cores) <= 8 and max(cores) >= 64 and max(peaks) / min(peaks) > 10
    assert all("SPECpower_ssj2008 result" in s.source for s in train + test)


@pytest.mark.parametrize("server", catalogue.train_servers() + catalogue.test_servers(), ids=lambda s: s.name)
def test_power_monotone_in_frequency_and_utilisation(server):
    r = np.asarray(server.freq_levels)[:, None]
    u = np.linspace(0, 1, 41)[None, :]
    power = server.power(r, u)
    assert np.all(np.diff(power, axis=0) > 0) and np.all(np.diff(power, axis=1) > 0)
    assert server.power(1.0, 1.0) == pytest.approx(server.peak_w)
    assert server.curve.mape(server.watts) < 5


def test_catalogue_fit_is_close_at_full_speed():
    server = server_by_name("specpower-93")
    assert server.power(1.0, np.linspace(0, 1, 11)) == pytest.approx(server.watts, rel=0.05)


def test_dvfs_fit_reproduces_measured_tables():
    scaling = default_scaling()  # fitted to the Reims table
    idle_factor, dynamic_factor = scaling.factors(0.59925)
    assert 167 * idle_factor == pytest.approx(140, rel=0.01)
    assert 167 * idle_factor + 105 * dynamic_factor == pytest.approx(228, rel=0.01)
    bazar = BAZAR_DVFS.fit()
    assert bazar.idle_share < 0.05 and bazar.dynamic_share > 0.9  # desktop idle power did not follow frequency


def test_a_fit_with_the_voltage_slope_held_refits_the_shares_only():
    """The profile flash power-fit reports: each refit keeps the slope it is given, fits no better than the free fit
    (whose errors it shares the definition of), and on the Reims table stays within a fraction of a percent of it
    from slope 0 to 1, so the table does not pin the slope down."""
    reims = catalogue.REIMS_DVFS
    columns = (reims.freq_fraction, reims.idle_w, reims.full_w)
    free = reims.fit()
    best = np.abs(free.table_errors(*columns)).mean()
    idle_factor, _ = free.factors(np.asarray(reims.freq_fraction))
    assert free.table_errors(*columns)[0] == pytest.approx((167 * idle_factor[0] - 140) / 140)
    mapes = []
    for slope in (0.0, 0.5, 1.0):
        held = FrequencyScaling.fit(*columns, voltage_slope=slope)
        assert held.voltage_slope == slope
        mapes.append(np.abs(held.table_errors(*columns)).mean())
    assert min(mapes) >= best and max(mapes) < 0.01
    with pytest.raises(ValueError, match="voltage_slope"):
        FrequencyScaling.fit(*columns, voltage_slope=1.5)


def test_the_fit_report_profiles_the_voltage_slope():
    report = fit_report(_data_file(*SPECPOWER_CURVES), _data_file(*DVFS_TABLES))
    reims = next(d for d in report["dvfs"] if d["host"] == "REIMS")
    assert [p["voltage_slope"] for p in reims["voltage_slope_profile"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(p["mape_pct"] >= reims["mape_pct"] for p in reims["voltage_slope_profile"])
    text = report_markdown(report)
    assert "| host | voltage_slope = 0 | voltage_slope = 0.25 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| REIMS |") and line.count("|") == 7)
    assert row == "| REIMS | " + " | ".join(f"{p['mape_pct']:.2f}" for p in reims["voltage_slope_profile"]) + " |"


def test_energy_meter_integrates_piecewise_constant_power():
    meter = EnergyMeter()
    for dt, watts in ((1.0, 100.0), (2.5, 40.0), (0.5, 0.0)):
        meter.add(dt, watts)
    assert meter.energy_j == pytest.approx(200.0) and meter.time_s == pytest.approx(4.0)
    with pytest.raises(ValueError, match="power"):
        meter.add(1.0, -5.0)


@pytest.mark.parametrize("fidelity", ["fast", "request"])
@pytest.mark.parametrize("rate", [0.0, 5000.0])  # idle, and saturating the 8 cores
def test_energy_of_constant_load_equals_power_times_time(fidelity, rate):
    server = server_by_name("specpower-123")
    app = AppProfile(service_time_ms=20.0, cpu_fraction=0.8)
    curve = ConstantWorkload(rate=rate).realise(np.random.default_rng(0), 60.0)
    node = DVFSServer(server, app, curve, np.random.default_rng(1), fidelity=fidelity, level=2,
                      transition_latency_s=0.0)
    node.run(5.0)  # the queue fills
    busy: list[float] = []
    node.sim.substep_observers.append(lambda dt, fraction, servers: busy.append(fraction))
    interval = node.run(20.0)
    r = server.freq_levels[2]
    assert interval.energy_j == pytest.approx(sum(server.power(r, u) * 1.0 for u in busy), rel=1e-12)
    if fidelity == "fast" or rate == 0:  # exactly constant utilisation: energy = P(f, u) * time
        assert interval.energy_j == pytest.approx(server.power(r, 0.0 if rate == 0 else 1.0) * 20.0, rel=1e-12)
    else:  # per-request service: busy fraction fluctuates around 1 at saturation
        assert interval.utilisation > 0.98


def _idle_node(transition_latency_s: float = 2.0) -> tuple:
    """specpower-123 with no load and 1 s sub-steps: (server type, node)."""
    server = server_by_name("specpower-123")
    app = AppProfile(service_time_ms=20.0, cpu_fraction=1.0)
    curve = ConstantWorkload(rate=0.0).realise(np.random.default_rng(0), 60.0)
    return server, DVFSServer(server, app, curve, np.random.default_rng(1), substep_s=1.0,
                              transition_latency_s=transition_latency_s)


@pytest.mark.parametrize("latency_s", [0.0, 1.0, 2.0])
def test_frequency_transition_takes_effect_after_latency(latency_s):
    """A switch requested before a 5 s interval runs its first ``latency_s`` (0, 1 or 2 sub-steps, 1 s the env's
    default) at the old P-state, the rest at the new one."""
    server, node = _idle_node(latency_s)
    node.request_level(0)
    interval = node.run(5.0)
    top, low = server.power(1.0, 0.0), server.power(server.freq_levels[0], 0.0)
    assert interval.energy_j == pytest.approx(latency_s * top + (5 - latency_s) * low)
    assert interval.level == 0 and interval.transitions == 1
    assert node.sim.cpu_millicores == pytest.approx(server.millicores(0))
    with pytest.raises(ValueError, match="whole number"):
        _idle_node(transition_latency_s=0.5)


def test_server_type_rejects_bad_figures():
    scaling = default_scaling()
    watts = tuple(np.linspace(50, 200, 11))
    with pytest.raises(ValueError, match="cores"):
        ServerType("x", 0, watts, scaling)
    with pytest.raises(ValueError, match="11 points"):
        ServerType("x", 4, watts[:5], scaling)
    with pytest.raises(ValueError, match="> 0"):
        ServerType("x", 4, (-1.0,) + watts[1:], scaling)
    with pytest.raises(ValueError, match=r"server 'x': SPECpower watts at 100% load \(50\) are below .* \(200\)"):
        ServerType("x", 4, watts[::-1], scaling)                  # a curve falling with load (columns swapped)
    assert ServerType("x", 4, watts[:3] + (watts[2] - 1,) + watts[4:], scaling)   # a dip between is real data
    with pytest.raises(ValueError, match="freq_levels"):
        ServerType("x", 4, watts, scaling, freq_levels=(0.8, 0.6, 1.0))
    with pytest.raises(ValueError, match="voltage_slope"):
        FrequencyScaling(0.3, 0.3, 1.5)
    with pytest.raises(ValueError, match="P-states"):
        server_by_name("specpower-0").level_fraction(7)
    with pytest.raises(ValueError, match="utilisation"):
        UtilisationCurve((1.0, 0, 0, 0, 0))(1.5)


def test_server_type_round_trips_through_dict():
    server = catalogue.test_servers()[0]
    assert ServerType.from_dict(server.to_dict()) == server
    with pytest.raises(ValueError, match="unknown server type field"):
        ServerType.from_dict({**server.to_dict(), "colour": "red"})


def test_reader_builds_server_types(tmp_path):
    path = tmp_path / "spec.csv"
    path.write_text(HEADER + GOOD_ROW + "8,,,4,,30,40,45,50,55,60,65,70,75,80,85\n")
    servers = load_server_types(path)
    assert [s.name for s in servers] == ["specpower-7", "specpower-8"]
    assert servers[0].core_speed == pytest.approx(1.0) and servers[1].core_speed == 1.0
    assert servers[0].scaling == default_scaling()


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    (HEADER, "no data rows"),
    (HEADER.replace("watts_50pct,", ""), "missing column.*watts_50pct"),
    (HEADER + GOOD_ROW.replace(",120,", ",abc,"), r"spec.csv:2: column 'watts_50pct' holds 'abc', not a number"),
    (HEADER + GOOD_ROW.replace(",120,", ",-120,"), r"spec.csv:2: column 'watts_50pct' holds '-120'"),
    (HEADER + GOOD_ROW + OTHER_ROW.replace(",16,", ",2.5,"), r"spec.csv:3: column 'cores' holds '2.5', not a whole"),
    (HEADER + GOOD_ROW.replace(",220\n", ",\n"), r"column 'watts_100pct' holds ''"),
    (HEADER + GOOD_ROW.replace(",220\n", "\n"), r"spec.csv:2: \d+ field\(s\) where the header has"),
    (HEADER + GOOD_ROW + OTHER_ROW.replace(",220\n", ",45\n"),
     r"spec.csv:3: SPECpower watts at 100% load \(45\) are below those at active idle \(50\)"),
    (HEADER + GOOD_ROW + GOOD_ROW, r"spec.csv:3: column 'server_id' holds '7', already the id of line 2"),
])
def test_reader_names_bad_input(tmp_path, content, message):
    path = tmp_path / "spec.csv"
    path.write_text(content)
    with pytest.raises(PowerDataError, match=message):
        read_specpower_csv(path)


def test_reader_missing_file_and_bad_dvfs(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_specpower_csv(tmp_path / "nope.csv")
    path = tmp_path / "dvfs.csv"
    path.write_text("host_model,freq_pct_of_max,power_idle_w,power_full_w\nA,120,80,90\n")
    with pytest.raises(PowerDataError, match="dvfs.csv:2: column 'freq_pct_of_max' holds 120.0; it must be <= 100"):
        read_dvfs_csv(path)
    path.write_text("host_model,freq_pct_of_max,power_idle_w,power_full_w\nA,100,80,70\n")
    with pytest.raises(PowerDataError, match="dvfs.csv:2: power_full_w 70 W is below power_idle_w 80 W"):
        read_dvfs_csv(path)
    path.write_text("host_model,freq_pct_of_max,power_idle_w,power_full_w\nA,100,80,90\nA,50,60,70\nB,50,60,70\n"
                    "B,80,65,80\n")
    with pytest.raises(PowerDataError, match="dvfs.csv: host_model 'B' has no row at freq_pct_of_max 100"):
        read_dvfs_csv(path)
    path.write_text("host_model,freq_pct_of_max,power_idle_w,power_full_w\nA,100,80,90\n")
    with pytest.raises(PowerDataError, match="host_model 'A' has one row; a frequency-scaling fit needs >= 2"):
        read_dvfs_csv(path)
    path.write_text("host_model,freq_pct_of_max,power_idle_w,power_full_w\nA,100,80,90\nA,100,70,95\nA,50,60,70\n")
    with pytest.raises(PowerDataError, match=r"host_model 'A' has two rows at the same freq_pct_of_max"):
        read_dvfs_csv(path)


def test_specpower_data_fit_meets_goals():
    path = _data_file(*SPECPOWER_CURVES)
    records = read_specpower_csv(path)
    assert len(records) == 400
    report = fit_report(path, _data_file(*DVFS_TABLES))
    assert report["median_mape_pct"] < 3 and report["worst_mape_pct"] < 10 and report["goal"]["met"]
    assert {d["host"] for d in report["dvfs"]} == {"BAZAR", "REIMS"}


def test_catalogue_figures_match_shared_data():
    records = {r.server_id: r for r in read_specpower_csv(_data_file(*SPECPOWER_CURVES))}
    for server in catalogue.train_servers() + catalogue.test_servers():
        record = records[server.name.removeprefix("specpower-")]
        assert server.watts == record.watts and server.cores == record.cores
    tables = {t.host: t for t in read_dvfs_csv(_data_file(*DVFS_TABLES))}
    assert tables["REIMS"] == catalogue.REIMS_DVFS and tables["BAZAR"] == BAZAR_DVFS


def test_scalar_fast_path_matches_the_array_model():
    rng = np.random.default_rng(0)
    for server in train_servers():
        for r, u in zip(rng.choice(server.freq_levels, 20), rng.random(20)):
            assert server.power_at(r, u) == pytest.approx(server.power(r, u), rel=1e-12)


def test_the_fit_report_counts_one_server_in_the_singular(tmp_path):
    """It printed "(1 servers)"."""
    path = tmp_path / "one.csv"
    path.write_text("server_id,cores," + ",".join(WATTS_COLUMNS) + "\n7,8," + ",".join(
        str(60 + 20 * i) for i in range(len(WATTS_COLUMNS))) + "\n")
    assert f"`{path}` (1 server)." in report_markdown(fit_report(path))


def test_a_core_twice_as_fast_serves_the_cpu_part_twice_as_fast():
    """``core_speed`` is per-core speed at f_max relative to the reference core (1000 millicores): a server of speed 2
    runs each core at ``2000 * f / f_max`` millicores, and, saturated, completes ``cores / mean service time``
    requests per second with the CPU part (80 % of 20 ms at the reference core) divided by ``2 * f / f_max``."""
    server = dataclasses.replace(server_by_name("specpower-123"), core_speed=2.0)
    assert [server.millicores(level) for level in range(server.n_levels)] == pytest.approx(
        [2000.0 * f for f in server.freq_levels])
    app = AppProfile(service_time_ms=20.0, cpu_fraction=0.8)
    curve = ConstantWorkload(rate=5000.0).realise(np.random.default_rng(0), 60.0)   # far beyond the 8 cores
    node = DVFSServer(server, app, curve, np.random.default_rng(1), level=2, transition_latency_s=0.0)
    node.run(5.0)   # the queue fills
    interval = node.run(20.0)
    r = server.freq_levels[2]
    mean_service_s = 0.020 * 0.8 / (2 * r) + 0.020 * 0.2
    assert interval.metrics.throughput == pytest.approx(server.cores / mean_service_s, rel=0.01)
    assert node.capacity(2) == pytest.approx(server.cores / mean_service_s)


def test_a_request_cancelled_by_a_newer_one_back_to_the_running_p_state_is_no_transition():
    """A newer P-state request supersedes a pending one; asking for P-state 0 and, before it takes effect (latency
    2 s), for the running top P-state again leaves the server at the top all along: no transition is counted and all
    five seconds are metered at the top P-state's idle power."""
    server, node = _idle_node()
    top = server.n_levels - 1
    node.request_level(0)
    first = node.run(1.0)
    node.request_level(top)
    second = node.run(4.0)
    assert (first.transitions, second.transitions) == (0, 0) and second.level == top
    assert first.energy_j + second.energy_j == pytest.approx(5 * server.power(1.0, 0.0))


def test_repeating_the_pending_request_does_not_postpone_it():
    """A P-state takes effect transition_latency_s after it was first requested: asking again for the P-state
    already pending (as a governor does every interval) does not restart the wait. Latency 2 s, P-state 0 requested
    at 0 s and again at 1 s: it runs from 2 s, so 5 s meter 2 at the top and 3 at P-state 0, idle."""
    server, node = _idle_node()
    node.request_level(0)
    first = node.run(1.0)
    node.request_level(0)
    second = node.run(4.0)
    top, low = server.power(1.0, 0.0), server.power(server.freq_levels[0], 0.0)
    assert first.energy_j + second.energy_j == pytest.approx(2 * top + 3 * low)
    assert second.transitions == 1 and second.level == 0

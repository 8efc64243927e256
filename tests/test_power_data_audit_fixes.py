"""Defects found by an audit of the power-management commands on a user's own server data: each test failed before
its fix."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flash_envs.data.specpower import WATTS_COLUMNS, PowerDataError, read_specpower_csv
from flash_envs.markdown import md_table
from flash_envs.power_fit import fit_report, report_markdown
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.sim import server_catalogue   # not its test_servers by name: pytest would collect it
from flash_envs.sim.power import MAX_CORES, ServerType
from flash_rl.cli import main

SERVER = server_catalogue.train_servers()[0]
HEADER = "server_id,cores," + ",".join(WATTS_COLUMNS) + ",ssj_ops_at_100pct\n"
WATTS = ",".join(str(100 + 10 * i) for i in range(11))


# ------------------------------------------------------------------ 1. family files the case's env cannot run
def test_a_family_file_with_other_p_states_is_a_one_line_error_before_any_work(tmp_path, capsys):
    """It was a traceback at meta-training, or, with one such task, after all the training (in the probe)."""
    three = dataclasses.replace(server_catalogue.test_servers()[0], freq_levels=(0.5, 0.75, 1.0))
    family = PowerTaskFamily.generate(n_train=2, n_test=2, train_types=[SERVER], test_types=[three], episode_s=300.0)
    family.save_yaml(tmp_path / "family.yaml")
    argv = ["--case", "power", "--quick", "--set", f"tasks.family_file={tmp_path / 'family.yaml'}"]
    assert main(["reproduce", *argv, "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"flash: error: task family {tmp_path / 'family.yaml'}: test[0] (" in err
    assert "has 3 P-states; this env's action space has 5" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 2. server fields of the wrong type
@pytest.mark.parametrize("field, value, error, message", [
    ("cores", True, TypeError, "server '.*': cores must be a whole number, got True"),
    ("cores", MAX_CORES + 1, ValueError, f"cores must be at most {MAX_CORES}"),
    ("core_speed", True, TypeError, "core_speed must be a number, got True"),
    ("core_speed", "1.0", TypeError, "core_speed must be a number, got '1.0'"),
    ("max_mhz", "2200", TypeError, "max_mhz must be a number, got '2200'"),
    ("watts", "100,200", TypeError, "a SPECpower curve is 11 numbers"),
    ("freq_levels", ["0.5", "1.0"], TypeError, "freq_levels must be numbers"),
    ("name", 5, TypeError, "ServerType.name must be a str, got 5"),
])
def test_server_fields_of_the_wrong_type_are_named(field, value, error, message):
    """cores: true and core_speed: true were taken as 1; a string gave numpy's or float()'s words, naming nothing."""
    with pytest.raises(error, match=message):
        dataclasses.replace(SERVER, **{field: value})


def test_server_dicts_name_a_bad_scaling():
    d = SERVER.to_dict()
    with pytest.raises(TypeError, match="FrequencyScaling.idle_share must be a number, got '0.3'"):
        ServerType.from_dict({**d, "scaling": {**d["scaling"], "idle_share": "0.3"}})
    with pytest.raises(ValueError, match=r"unknown FrequencyScaling field\(s\) \['bogus'\]"):
        ServerType.from_dict({**d, "scaling": {**d["scaling"], "bogus": 1}})
    assert ServerType.from_dict(d) == SERVER


# ------------------------------------------------------------------ 3.-4. SPECpower files
def test_a_specpower_file_names_too_many_cores_and_a_per_core_speed_of_0(tmp_path):
    """10**8 cores made each step take seconds; ssj_ops of 1 made a bare ValueError later, naming no file."""
    path = tmp_path / "servers.csv"
    path.write_text(HEADER + f"a,{MAX_CORES + 1},{WATTS},\n")
    with pytest.raises(PowerDataError, match=rf"servers.csv:2: column 'cores' holds '{MAX_CORES + 1}'; a server type "
                                             rf"has at most {MAX_CORES} cores"):
        read_specpower_csv(path)
    path.write_text(HEADER + f"a,8,{WATTS},1\n")
    with pytest.raises(PowerDataError, match="servers.csv:2: column 'ssj_ops_at_100pct' holds '1': per core, under"):
        read_specpower_csv(path)
    path.write_text(HEADER + f"a,8,{WATTS},800000\n")
    assert read_specpower_csv(path)[0].server_type(SERVER.scaling).core_speed == 1.0


# ------------------------------------------------------------------ 5.-6. reports
def test_dvfs_parameters_at_a_bound_are_marked(tmp_path):
    """A table whose power falls as frequency rises fitted silently to no scaling."""
    spec, dvfs = tmp_path / "servers.csv", tmp_path / "dvfs.csv"
    spec.write_text(HEADER + f"a,8,{WATTS},\n")
    dvfs.write_text("host_model,freq_pct_of_max,power_idle_w,power_full_w\n"
                    "falling,60,100,300\nfalling,80,90,250\nfalling,100,80,200\n")
    report = fit_report(spec, dvfs)
    assert report["dvfs"][0]["at_bound"] == ["idle_share", "dynamic_share", "voltage_slope"]
    assert "| falling | 0.000 | 0.000 | 0.000 | idle_share, dynamic_share, voltage_slope |" in report_markdown(report)
    json.dumps(report)


def test_a_pipe_or_line_break_in_a_cell_keeps_the_table_whole():
    assert md_table(["id", "system"], [["a|b", "one\ntwo"]])[2] == "| a\\|b | one two |"


def test_an_id_clash_with_a_blank_id_says_the_blank_one_is_a_line_number(tmp_path):
    """"holds '2', already the id of line 2" named an id that line 2 does not hold."""
    path = tmp_path / "servers.csv"
    path.write_text(HEADER + f",8,{WATTS},\n2,8,{WATTS},\n")
    with pytest.raises(PowerDataError, match=r"servers.csv:3: column 'server_id' holds '2', already the id of line 2 "
                                             r"\(whose blank id stands for its line number\)"):
        read_specpower_csv(path)
    path.write_text(HEADER + f"3,8,{WATTS},\n,8,{WATTS},\n")
    with pytest.raises(PowerDataError, match=r"servers.csv:3: column 'server_id' is blank, which stands for its line "
                                             r"number 3, already the id of line 2;"):
        read_specpower_csv(path)


# ------------------------------------------------------------------ 7. governors on one's own servers
def test_power_governors_run_a_family_file_with_its_own_p_states(tmp_path, capsys):
    """power-governors ran the built-in family only."""
    three = [dataclasses.replace(s, freq_levels=(0.5, 0.75, 1.0)) for s in server_catalogue.train_servers()[:2]]
    family = PowerTaskFamily.generate(n_train=1, n_test=1, episode_s=120.0, train_types=three[:1],
                                      test_types=three[1:])
    family.save_yaml(tmp_path / "family.yaml")
    assert main(["power-governors", "--family-file", str(tmp_path / "family.yaml"), "--seeds", "1", "--out",
                 str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out" / "governors.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 5 and {family.train[0].name, family.test[0].name} == {r.split(",")[1] for r in rows[1:]}
    assert f"tasks of `{tmp_path / 'family.yaml'}`" in (tmp_path / "out" / "governors.md").read_text()
    five = dataclasses.replace(family.test[0], server=server_catalogue.test_servers()[0])
    PowerTaskFamily(family.train, (five,)).save_yaml(tmp_path / "mixed.yaml")
    capsys.readouterr()
    assert main(["power-governors", "--family-file", str(tmp_path / "mixed.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"flash: error: --family-file {tmp_path / 'mixed.yaml'}: the family's tasks have [3, 5] P-states" in err


def test_power_governors_run_the_episode_length_a_family_was_generated_for(tmp_path, monkeypatch, capsys):
    """power-governors always ran the env's default 900 s episodes, though a family file's tasks may be generated for
    another length (the docs' example uses 300 s), and its workloads' steps then fell early in the episode."""
    from flash_envs.baselines import power_report

    family = PowerTaskFamily.generate(n_train=1, n_test=1, episode_s=120.0)
    family.save_yaml(tmp_path / "family.yaml")
    lengths = []

    def run_episode(env, *args):
        lengths.append(env.episode_steps)
        return real(env, *args)

    real = power_report.run_episode
    monkeypatch.setattr(power_report, "run_episode", run_episode)
    assert main(["power-governors", "--family-file", str(tmp_path / "family.yaml"),   # the file records 120 s
                 "--split", "test", "--seeds", "1"]) == 0
    assert lengths == [120 // 5] * 5
    assert "1 server(s), fidelity fast, 120 s episodes, tasks of" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="generated for 120 s episodes, but this env's last 60 s"):
        main(["power-governors", "--family-file", str(tmp_path / "family.yaml"), "--episode-s", "60", "--seeds", "1"])
    PowerTaskFamily(family.train, family.test).save_yaml(tmp_path / "unrecorded.yaml")   # a file of an older flash
    assert main(["power-governors", "--family-file", str(tmp_path / "unrecorded.yaml"), "--seeds", "1"]) == 0
    assert "900 s episodes" in capsys.readouterr().out
    del lengths[:]
    assert main(["power-governors", "--episode-s", "60", "--split", "test", "--seeds", "1"]) == 0   # default family
    assert lengths == [60 // 5] * 8 * 5 and "60 s episodes, the default family" in capsys.readouterr().out
    PowerTaskFamily.generate(n_train=1, n_test=1, episode_s=302.0).save_yaml(tmp_path / "302.yaml")
    assert main(["power-governors", "--family-file", str(tmp_path / "302.yaml")]) == 2   # not a multiple of 5 s
    assert "episode_s=302.0 must be a positive multiple of 5.0; the file records this episode_s: give --episode-s" in (
        capsys.readouterr().err)
    with pytest.warns(UserWarning, match="generated for 302 s episodes, but this env's last 300 s"):
        assert main(["power-governors", "--family-file", str(tmp_path / "302.yaml"), "--episode-s", "300",
                     "--seeds", "1"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit, match="2"):
        main(["power-governors", "--episode-s", "7"])
    assert "argument --episode-s: episode_s=7.0 must be a positive multiple of 5.0" in capsys.readouterr().err


def test_a_family_file_whose_test_servers_are_trained_on_is_warned_of(tmp_path):
    """generate() holds server types out; a family file that does not was taken silently."""
    from flash_rl.cases import get_case
    from flash_rl.config import load_config

    server = server_catalogue.train_servers()[0]
    family = PowerTaskFamily.generate(n_train=2, n_test=1, train_types=[server])
    PowerTaskFamily(family.train, (dataclasses.replace(family.test[0], server=server),)).save_yaml(
        tmp_path / "family.yaml")
    cfg = load_config(get_case("power").config_path(True), [f"tasks.family_file={tmp_path / 'family.yaml'}"])
    with pytest.warns(UserWarning, match=rf"test tasks run on server types that training tasks run on too "
                                         rf"\({server.name}\); the power case holds server types out"):
        get_case("power").build_family(cfg)


# ------------------------------------------------------------------ 8. one name, one server; a DVFS table's P-states
def test_two_different_servers_with_one_name_are_refused():
    """Reports group by server name; a family whose tasks ran on two servers of one name merged them silently."""
    family = PowerTaskFamily.generate(n_train=2, n_test=1, train_types=server_catalogue.train_servers()[:2])
    other = dataclasses.replace(family.train[1].server, name=family.train[0].server.name)
    with pytest.raises(ValueError, match=rf"tasks '{family.train[0].name}' and 'other' run on two different servers "
                                         rf"named '{other.name}' \(they differ in watts, core_speed"):
        PowerTaskFamily(family.train + (dataclasses.replace(family.train[1], server=other, name="other"),),
                        family.test)
    same = dataclasses.replace(family.train[1], server=family.train[0].server, name="same server, other app")
    assert len(PowerTaskFamily(family.train + (same,), family.test).train) == 3


def test_a_dvfs_tables_frequencies_become_the_p_states(tmp_path):
    """load_server_types had no freq_levels: a server measured at other frequencies got the catalogue's five."""
    from flash_envs.data.specpower import load_server_types, read_dvfs_csv

    (tmp_path / "spec.csv").write_text(HEADER + f"7,16,{WATTS},1600000\n")
    (tmp_path / "dvfs.csv").write_text("host_model,freq_pct_of_max,power_idle_w,power_full_w\n"
                                       "box,50,60,110\nbox,75,70,150\nbox,100,80,200\n")
    table = read_dvfs_csv(tmp_path / "dvfs.csv")[0]
    server, = load_server_types(tmp_path / "spec.csv", scaling=table.fit(), freq_levels=table.freq_fraction)
    assert server.freq_levels == (0.5, 0.75, 1.0) and server.scaling == table.fit()
    assert load_server_types(tmp_path / "spec.csv")[0].freq_levels == server_catalogue.train_servers()[0].freq_levels
    with pytest.raises(ValueError, match="server 'specpower-7': freq_levels must be >= 2 increasing fractions"):
        load_server_types(tmp_path / "spec.csv", freq_levels=(0.5, 0.9))

"""A test that hangs fails after the suite's per-test timeout (pyproject.toml) instead of holding CI until its limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_suite_runs_under_a_per_test_timeout(pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is missing: install the dev extra"
    seconds = pytestconfig.getini("timeout")
    assert seconds, "no per-test timeout in pyproject.toml's [tool.pytest.ini_options]"
    assert 60 <= float(seconds) <= 600   # well above the slowest test (about 30 s), well under CI's 90-minute limit


def test_a_simulation_that_re_arms_a_timer_at_zero_delay_for_ever_fails_instead_of_hanging(tmp_path):
    """The hang a request-level give-up compared with ``<``, not ``<=``, would cause: simulated time stands still."""
    (tmp_path / "test_hang.py").write_text(textwrap.dedent("""
        import simpy

        def test_hangs():
            env = simpy.Environment()

            def re_arm(_event):
                env.timeout(0).callbacks.append(re_arm)

            env.timeout(0).callbacks.append(re_arm)
            env.run(until=1)
    """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=2",
                          "test_hang.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Failed: Timeout" in run.stdout

"""The loaders of measured configurations (flash_envs.data.config_measurements): what they drop and count."""

from __future__ import annotations

import pytest

from flash_envs.data.config_measurements import load_chunkfunc, load_ibm_multicloud

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

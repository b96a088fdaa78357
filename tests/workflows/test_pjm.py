"""fugaku_sim.workflow.pjm: directives from resources, and pjstat states to Snakemake's."""

from __future__ import annotations

import pytest

from fugaku_sim.pjm import pjm_directives
from fugaku_sim.workflow.pjm import (
    PjmError,
    PjmSettings,
    job_status,
    node_shape,
    parse_pjstat_table,
    snakemake_request,
    status_from_state,
)

# The formats of the Fugaku user guide's examples (5.12 Displaying a job status).
ACTIVE = """\
JOB_ID  JOB_NAME  MD  ST   USER   START_DATE      ELAPSE_LIM  NODE_REQUIRE  VNODE  CORE  V_MEM
238     job.sh    NM  RUN  user1  11/17 09:01:41  0001:00:00  12:2x3x2      -      -     -
241     job2.sh   NM  QUE  user1  11/17 09:01:42  0001:00:00  2             -      -     -
242     job3.sh   NM  ERR  user1  11/17 09:01:42  0001:00:00  2             -      -     -
"""


def detail(state: str, exit_code: str, pjm_code: str) -> str:
    return (f" JOB ID                      : 238\n STATE                       : {state}\n"
            f" PJM CODE                    : {pjm_code}\n EXIT CODE                   : {exit_code}\n")


def test_pjstat_table_is_read_by_its_st_column() -> None:
    assert parse_pjstat_table(ACTIVE) == {"238": "RUN", "241": "QUE", "242": "ERR"}


@pytest.mark.parametrize("state", ["ACC", "QUE", "RNA", "RNP", "RUN", "RNE", "RNO", "HLD", "SPD"])
def test_waiting_and_running_states_are_running(state: str) -> None:
    assert status_from_state(state) == "running"


@pytest.mark.parametrize(
    ("state", "exit_code", "pjm_code", "status"),
    [("EXT", "0", "0", "success"), ("EXT", "1", "0", "failed"), ("EXT", "0", "11", "failed"),
     ("EXT", "-", "0", "failed"), ("CCL", "-", "1", "failed"), ("ERR", "-", "20", "failed"),
     ("RJT", "-", "2", "failed")],
)
def test_ended_states(state: str, exit_code: str, pjm_code: str, status: str) -> None:
    assert status_from_state(state, exit_code, pjm_code) == status
    assert job_status("238", "", detail(state, exit_code, pjm_code))[0] == status


def test_active_running_job_needs_no_history_and_unknown_job_fails() -> None:
    assert job_status("238", ACTIVE) == ("running", "RUN")
    assert job_status("242", ACTIVE)[0] == "failed"  # ERR stays in the active list
    assert job_status("999", ACTIVE, "")[0] == "failed"


@pytest.mark.parametrize(
    ("resources", "shape"),
    [({}, ("1", 1)), ({"nodes": 12}, ("12:torus", 12)), ({"pjm_shape": "48x6x48"}, ("48x6x48:torus", 13824)),
     ({"pjm_shape": "2x3x2:mesh", "nodes": 12}, ("2x3x2:mesh", 12))],
)
def test_node_shape(resources: dict, shape: tuple[str, int]) -> None:
    assert node_shape(resources, "torus") == shape


def test_elapse_from_minutes_and_bad_values() -> None:
    def elapse(runtime: object) -> str:
        lines = pjm_directives(snakemake_request({"resources": {"runtime": runtime}},
                                                 PjmSettings(), "logs"))
        return next(line for line in lines if "elapse=" in line)

    assert elapse(5) == '#PJM -L "elapse=00:05:00"'
    assert elapse(1500) == '#PJM -L "elapse=25:00:00"'
    with pytest.raises(PjmError, match="resources.runtime"):
        elapse(0)


def test_more_ranks_than_nodes_sets_max_proc_per_node() -> None:
    props = {"rule": "train", "jobid": 3, "threads": 12,
             "resources": {"pjm_shape": "2x3x2", "tasks": 48, "runtime": 30}}
    lines = pjm_directives(snakemake_request(props, PjmSettings(group="hp1"), "/logs"))
    assert '#PJM --mpi "proc=48"' in lines and '#PJM --mpi "max-proc-per-node=4"' in lines
    assert "#PJM -x OMP_NUM_THREADS=12,OPENBLAS_NUM_THREADS=12" in lines
    assert "#PJM -g hp1" in lines

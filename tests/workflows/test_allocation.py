"""The nodes and ranks per node of the workflow's training run."""

from __future__ import annotations

import pytest

from fugaku_sim.spec import load_cluster
from fugaku_sim.workflow.allocation import Allocation, run_allocation


@pytest.mark.parametrize("ranks", [1, 2, 5, 16])
def test_one_machine_runs_every_rank(ranks: int) -> None:
    local = load_cluster("local")  # one machine of 2 cores
    assert local.allocation.max_nodes == 1
    assert run_allocation(local, ranks) == Allocation(nodes=1, processes_per_node=ranks)


@pytest.mark.parametrize(("ranks", "nodes"), [(1, 1), (8, 1), (9, 2), (16, 2), (17, 3)])
def test_a_cluster_fills_nodes_with_its_processes_per_node(ranks: int, nodes: int) -> None:
    dgx = load_cluster("dgx-a100")  # 8 GPUs, one rank each, per node
    assert dgx.node.processes_per_node == 8
    assert run_allocation(dgx, ranks) == Allocation(nodes=nodes, processes_per_node=8)
    fugaku = load_cluster("fugaku")  # one rank per A64FX node
    assert run_allocation(fugaku, ranks) == Allocation(nodes=ranks, processes_per_node=1)


@pytest.mark.parametrize("cluster", ["local", "fugaku"])
def test_a_fixed_layouts_processes_per_node_win(cluster: str) -> None:
    assert run_allocation(load_cluster(cluster), 48, processes_per_node=2) == Allocation(
        nodes=24, processes_per_node=2)


def test_no_ranks_is_refused() -> None:
    with pytest.raises(ValueError, match="ranks"):
        run_allocation(load_cluster("local"), 0)

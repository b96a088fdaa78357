"""Parity of the two engines: for every model preset and a grid of layouts, the parameters
the simulator charges one rank of each stage for (its memory, its gradient message, what
``check`` reports) equal the sizes of the tensors the trainer allocates on that rank.

The trainer's side goes through the trainer's own code: the names ``train.stage`` says a
stage holds, the local shapes it allocates them with (``local_entries``) and, where the
buffer is small enough to allocate here, the ``FlatParams`` buffer itself. A layout counts
when both engines accept it (the simulator's ``make_job``, the trainer's ``check_layout``).
"""

from __future__ import annotations

import math

import pytest

from fugaku_sim.commands.check import derived_figures
from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.sim.memory import parameter_bytes, stage_memory
from fugaku_sim.sim.transport import grad_bytes
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model
from fugaku_sim.spec.job import Job, check_modelled, make_job
from fugaku_sim.spec.load import model_preset_names
from fugaku_sim.tensors import layout_chunks
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.run_plan import check_layout
from fugaku_sim.train.stage import local_entries, stage_tensor_names

# (tp, pp, schedule, virtual stages)
GRID = [(tp, pp, "1f1b", 1) for tp in (1, 2, 4, 8) for pp in (1, 2, 4)] + [
    (2, 2, "interleaved", 2), (1, 4, "interleaved", 2), (4, 2, "interleaved", 3)]
FLAT_LIMIT = 20_000_000  # allocate the trainer's real buffer below this many parameters


def jobs(preset: str) -> list[Job]:
    """Every layout of the grid that both engines accept for ``preset`` (one data replica,
    all ranks on one node of the local cluster)."""
    model = load_model(preset)
    cluster = load_cluster("local")
    out = []
    for tp, pp, schedule, chunks in GRID:
        layout = Layout(tp=tp, pp=pp, schedule=schedule, virtual_stages=chunks,
                        processes_per_node=tp * pp)  # type: ignore[arg-type]
        train = TrainSpec(global_batch=4 * pp, micro_batch=1)
        try:
            check_layout(model, train, layout, layout.world)
            out.append(make_job(cluster, model, train, layout))
        except UserError:
            continue
    return out


def trainer_parameters(job: Job, stage: int) -> int:
    """Parameters the trainer allocates on one rank of ``stage`` (tensor rank 0)."""
    model, layout = job.model, job.layout
    names = stage_tensor_names(model, layout_chunks(model, layout, stage))
    entries = local_entries(model, names, layout.tp)
    count = sum(math.prod(shape) for _, shape in entries)
    if count < FLAT_LIMIT:
        flat = FlatParams(entries)
        assert flat.numel == count
        assert all(flat.params[n].shape == s for n, s in entries)
    return count


@pytest.mark.parametrize("preset", model_preset_names())
def test_simulator_charges_what_the_trainer_allocates(preset: str) -> None:
    try:  # a model the trainer refuses has nothing to compare (yet)
        check_modelled(load_model(preset), TrainSpec(global_batch=1), Layout(), "train")
    except SpecError as exc:
        pytest.skip(str(exc))
    layouts = jobs(preset)
    assert any(j.layout.pp > 1 for j in layouts), "the grid must cover pipelines"
    for job in layouts:
        w, g, _ = parameter_bytes(job.train)
        reported = derived_figures(job)["parameters_per_rank_by_stage"]
        for stage in range(job.layout.pp):
            want = trainer_parameters(job, stage)
            where = f"{preset} tp={job.layout.tp} pp={job.layout.pp} " \
                    f"v={job.layout.virtual_stages} stage {stage}"
            assert stage_memory(job, stage).weights == want * w, where
            assert stage_memory(job, stage).gradients == want * g, where
            assert grad_bytes(job, stage) == want * 4, where  # fp32 gradients
            assert reported[stage] == want, where


def test_the_grid_reaches_the_tensor_parallel_fix() -> None:
    """Presets whose vocabulary the trainer can split are checked at tp > 1 too."""
    for preset in ("gpt-micro", "gpt-tiny", "fugaku-llm-13b", "gpt3-175b", "gpt-1t"):
        assert any(j.layout.tp > 1 and j.layout.pp > 1 for j in jobs(preset)), preset
    assert any(j.layout.schedule == "interleaved" for j in jobs("gpt-tiny"))

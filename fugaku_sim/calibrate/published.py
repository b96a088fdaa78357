"""Published throughput <-> step time, for runs that report teraFLOP/s instead of seconds.

Megatron-LM's papers and logs report "achieved teraFLOP/s per GPU" (Megatron-DeepSpeed's logs:
``TFLOPs:`` per rank): the FLOPs of one iteration by a closed form, over the iteration time
and the number of ranks. The closed form is Narayanan et al. (SC21, arXiv:2104.04473)
equation (3), F = 96 B s l h^2 (1 + s/(6h) + V/(16 l h)) with full recomputation
(:func:`fugaku_sim.sim.flops.megatron_flops_per_step`); Megatron-DeepSpeed's
``throughput_calculator`` (``megatron/utils.py``) uses the same form with a factor 4 when
``--checkpoint-activations`` is set and 3 otherwise, i.e. 3/4 of equation (3) without
recomputation. Both use the padded vocabulary V.

Inverting it turns a published throughput into the step time the runs format stores
(``time_quality: derived``), and checks that a transcribed row's time and throughput agree.
"""

from __future__ import annotations

from fugaku_sim.sim.flops import megatron_flops_per_step
from fugaku_sim.spec.model import ModelSpec


def reported_flops_per_step(model: ModelSpec, global_batch: int, checkpointing: bool) -> float:
    """FLOPs of one iteration as Megatron's throughput figures count them.

    Equation (3) of Narayanan et al. with checkpointing (factor 4); 3/4 of it without
    (Megatron-DeepSpeed's ``checkpoint_activations_factor`` of 3).
    """
    full = megatron_flops_per_step(model, global_batch, recompute=True)
    return full if checkpointing else 0.75 * full


def step_time_from_tflops_s(
    model: ModelSpec, global_batch: int, checkpointing: bool, tflops_per_rank: float, ranks: int
) -> float:
    """Seconds per iteration that give ``tflops_per_rank`` teraFLOP/s on each of ``ranks``.

    >>> m = ModelSpec(name="gpt3-175b", layers=96, hidden=12288, heads=96, seq_len=2048,
    ...               vocab=51200)
    >>> round(step_time_from_tflops_s(m, 1536, True, 153.0, 384), 2)  # SC21 Table 2
    76.78
    """
    return reported_flops_per_step(model, global_batch, checkpointing) / (
        tflops_per_rank * 1e12 * ranks)

"""The model's tensors, one table for both engines: names, shapes, tensor-parallel splits,
which rank holds what, and the consolidated checkpoint file.

Ground floor beside :mod:`fugaku_sim.spec` and :mod:`fugaku_sim.parallel`: it imports only
those (and numpy, safetensors, the package's errors and atomic file helpers), and both the
simulator and the trainer, evaluation and release import it.
"""

from fugaku_sim.tensors.share import (
    chunk_parameters,
    chunk_tensors,
    held_tensors,
    layout_chunks,
    model_parallel_parameters,
    parameters_by_stage,
    stage_parameters,
    stage_tensor_count,
    tied_copies,
    tied_copy_parameters,
    tied_names,
)
from fugaku_sim.tensors.split import Split, heads_split, local_shape, qkv_split, shard, unshard
from fugaku_sim.tensors.table import (
    LLAMA_EMBED,
    LLAMA_NORM,
    LM_HEAD,
    LN_F,
    ROLES,
    WPE,
    WTE,
    TensorInfo,
    TensorTable,
    layer_name,
    llama_layer_name,
    tensor_table,
)

__all__ = [
    "LLAMA_EMBED",
    "LLAMA_NORM",
    "LM_HEAD",
    "LN_F",
    "WPE",
    "WTE",
    "Split",
    "ROLES",
    "TensorInfo",
    "TensorTable",
    "chunk_parameters",
    "chunk_tensors",
    "held_tensors",
    "heads_split",
    "layer_name",
    "llama_layer_name",
    "layout_chunks",
    "local_shape",
    "model_parallel_parameters",
    "parameters_by_stage",
    "qkv_split",
    "shard",
    "stage_parameters",
    "stage_tensor_count",
    "tensor_table",
    "tied_copies",
    "tied_copy_parameters",
    "tied_names",
    "unshard",
]

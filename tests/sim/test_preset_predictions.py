"""Every existing preset predicts exactly what it predicted before the Llama family came in.

``data/preset_predictions.json`` holds the ``predict --json`` output of nine cases (every GPT-2
preset, on the Fugaku, DGX A100 and local profiles, fast and detailed mode), written by the
code before the op lists, activation memory and FLOP counts were made family-neutral. The
output today must be the same text, byte for byte, apart from the keys added since: the
training record's ``attention`` (``materialized``, which is how those numbers were made), and
the fields that name sequence parallelism, selective recomputation, the ZeRO stage and the
fullest rank's memory by part (:data:`ADDED`).

Re-recorded once since, for three pricing changes and nothing else (with them switched off the
old file matched byte for byte): the vocabulary-parallel embedding's all-reduce over the tensor
group, the gradient of its table in the backward, and full recomputation rerunning the layers
without the embedding and the head (step times moved by -1.6% to +0.8%). And once more for the
two presets the numpy trainer trains, which now say ``dropout: 0`` (the trainer has none; an
unset dropout is GPT-2's 0.1): gpt-tiny and gpt-micro lose the dropouts' work and masks (steps
-0.6%, memory per node -4.0% and -7.7%); every other case is unchanged. And once for the
per-operation cost of a process with less than a core (gpt-micro, 4 processes on the local
profile's 2 cores: each launch cost takes twice the wall time, step +2.4%).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOLDEN = json.loads((Path(__file__).parent / "data" / "preset_predictions.json").read_text())
#: fields ``predict --json`` gained after the golden file was written
ADDED = ("sequence_parallel", "recompute", "selective_recompute_stages", "zero_stage",
         "memory_per_rank_GiB", "memory_peak_stage", "meta", "stack", "intervals")


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_predict_json_is_unchanged(case: str, run_cli) -> None:
    status, out, err = run_cli("predict", "--json", *GOLDEN[case]["args"])
    assert status == 0, err
    fields = json.loads(out)
    assert fields["train"].pop("attention") == "materialized"
    for key in ADDED:
        fields.pop(key)
    assert json.dumps(fields, indent=2) + "\n" == GOLDEN[case]["stdout"]

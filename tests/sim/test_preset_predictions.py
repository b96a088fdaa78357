"""Every existing preset predicts exactly what it predicted before the Llama family came in.

``data/preset_predictions.json`` holds the ``predict --json`` output of nine cases (every GPT-2
preset, on the Fugaku, DGX A100 and local profiles, fast and detailed mode), written by the
code before the op lists, activation memory and FLOP counts were made family-neutral. The
output today must be the same text, byte for byte, apart from the one key added since: the
training record's ``attention`` (``materialized``, which is how those numbers were made).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOLDEN = json.loads((Path(__file__).parent / "data" / "preset_predictions.json").read_text())


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_predict_json_is_unchanged(case: str, run_cli) -> None:
    status, out, err = run_cli("predict", "--json", *GOLDEN[case]["args"])
    assert status == 0, err
    fields = json.loads(out)
    assert fields["train"].pop("attention") == "materialized"
    assert json.dumps(fields, indent=2) + "\n" == GOLDEN[case]["stdout"]

"""The ``fugaku-sim`` invocations inside shell text (job scripts, Snakemake shell commands),
so tests can hand them to the real argument parser instead of grepping them."""

from __future__ import annotations

import shlex

OPERATORS = set("();<>|&")


def cli_invocations(text: str) -> list[list[str]]:
    """The arguments (after the program) of every ``fugaku-sim ARGS`` or
    ``python -m fugaku_sim.cli ARGS`` in ``text``, each up to the next shell operator or the
    end of its line; ``#`` comments are skipped and backslash-newlines joined."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            module = token == "fugaku_sim.cli" and i > 0 and tokens[i - 1] == "-m"
            if token != "fugaku-sim" and not module:
                continue
            start = i + 1
            end = next((j for j in range(start, len(tokens)) if set(tokens[j]) <= OPERATORS),
                       len(tokens))
            found.append(tokens[start:end])
    return found


def launched_ranks(text: str) -> int:
    """The rank count of the first ``mpiexec -n N`` or ``srun ... -n N`` in ``text``."""
    tokens = shlex.split(text.replace("\\\n", " "), comments=True)
    for i, token in enumerate(tokens[:-1]):
        if token == "-n" and any(t.endswith(("mpiexec", "srun")) for t in tokens[:i]):
            return int(tokens[i + 1])
    raise AssertionError(f"no mpiexec/srun -n N in: {text[:500]}")

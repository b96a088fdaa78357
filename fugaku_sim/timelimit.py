"""Time limits of batch jobs, in the one format the job managers here take.

Fujitsu PJM's ``#PJM -L "elapse=HH:MM:SS"`` and Slurm's ``#SBATCH --time=HH:MM:SS`` both read
hours, minutes and seconds; hours may exceed 24 (PJM: Fugaku user guide, "Job submission";
Slurm: sbatch(1), ``--time``). Only the standard library is used: the PJM submit hook imports
this under whatever ``python3`` Snakemake finds.
"""

from __future__ import annotations

import math

#: the shortest limit written: a job asked to end within seconds is never what was meant
MIN_ELAPSE_S = 60


def elapse_hms(seconds: float) -> str:
    """``HH:MM:SS`` of ``seconds`` rounded up to a whole second, at least one minute.

    >>> elapse_hms(5 * 60), elapse_hms(25 * 3600), elapse_hms(3661.2), elapse_hms(1)
    ('00:05:00', '25:00:00', '01:01:02', '00:01:00')
    """
    whole = max(MIN_ELAPSE_S, math.ceil(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"

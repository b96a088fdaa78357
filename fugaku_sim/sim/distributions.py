"""Random durations of a campaign, in seconds: step time, queue wait, time to the next failure.

Every sampler takes the campaign's seeded ``numpy.random.Generator``; none keeps state.

Sources:
- Split (two-piece) lognormal through three quantiles: below the median the log-spread is
  ln(p50 / p10) / z, above it ln(p90 / p50) / z, with z = 1.2816 the standard normal's 90th
  percentile; the draws then have exactly the given p10, p50 and p90 (each half of the normal
  maps monotonically onto its half). With p10 p90 = p50^2 it is the ordinary lognormal.
- Weibull of shape k and mean m: scale m / Gamma(1 + 1/k) (the Weibull mean is
  scale Gamma(1 + 1/k)); k = 1 is the exponential.
- System failures: the time between failures of a job on n nodes has mean MTBF_node / n
  (n independent nodes; exact for exponential nodes, whose minimum is exponential with n times
  the rate) and the profile's Weibull shape, renewed at every (re)start (the system-level
  renewal model of Schroeder and Gibson, DSN 2006, who fit such shapes to node failures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: standard normal quantile at 0.9 (scipy.stats.norm.ppf(0.9))
Z90 = 1.2815515655446004


class Duration(Protocol):
    """A random duration, seconds."""

    def sample(self, rng: np.random.Generator) -> float: ...

    @property
    def p50(self) -> float: ...


@dataclass(frozen=True)
class Fixed:
    """Always ``seconds``."""

    seconds: float

    def sample(self, rng: np.random.Generator) -> float:
        return self.seconds

    @property
    def p50(self) -> float:
        return self.seconds


@dataclass(frozen=True)
class Quantiles:
    """Split lognormal with the given 10th, 50th and 90th percentiles, seconds.

    Raises:
        ValueError: unless 0 < p10 <= p50 <= p90.
    """

    p10: float
    p50: float
    p90: float

    def __post_init__(self) -> None:
        if not 0 < self.p10 <= self.p50 <= self.p90:
            raise ValueError(f"need 0 < p10 <= p50 <= p90, got {self.p10}, {self.p50}, {self.p90}")

    def to_json(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}

    @classmethod
    def lognormal(cls, p50: float, p90: float) -> Quantiles:
        """The ordinary lognormal through a median and a 90th percentile."""
        return cls(p50 * p50 / p90, p50, p90)

    def sample(self, rng: np.random.Generator) -> float:
        z = float(rng.standard_normal())
        upper = self.p90 if z > 0 else self.p10
        return self.p50 * math.exp(z * abs(math.log(upper / self.p50)) / Z90)


def queue_wait(p50_h: float, p90_h: float) -> Duration:
    """A profile's queue wait (hours in, seconds out): lognormal, or no wait when both are 0."""
    if p50_h == 0:
        return Fixed(0.0)
    return Quantiles.lognormal(p50_h * 3600.0, p90_h * 3600.0)


class FailureModel(Protocol):
    """Time from a (re)start to the next failure of a job on ``nodes`` nodes, seconds."""

    def sample(self, rng: np.random.Generator, nodes: int) -> float: ...

    def mean_s(self, nodes: int) -> float: ...


@dataclass(frozen=True)
class NodeFailures:
    """Independent node failures of mean ``mtbf_node_s``; Weibull ``shape`` at system level."""

    mtbf_node_s: float
    shape: float = 1.0

    def mean_s(self, nodes: int) -> float:
        return self.mtbf_node_s / nodes

    def sample(self, rng: np.random.Generator, nodes: int) -> float:
        mean = self.mean_s(nodes)
        if self.shape == 1.0:
            return float(rng.exponential(mean))
        return mean / math.gamma(1.0 + 1.0 / self.shape) * float(rng.weibull(self.shape))


@dataclass(frozen=True)
class NoFailures:
    """A machine that never fails."""

    def mean_s(self, nodes: int) -> float:
        return math.inf

    def sample(self, rng: np.random.Generator, nodes: int) -> float:
        return math.inf

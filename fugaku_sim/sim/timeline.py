"""The schedule of one run of training within a job: when each checkpoint is safe. Seconds.

A run starts at ``start``, pays its start-up and (when a checkpoint exists) the restore,
then trains from step ``first`` (the last saved step) towards ``total``. After step s it
evaluates when s is a multiple of ``eval_every``, then writes a checkpoint when s is a
multiple of ``checkpoint_every``; both also happen after the last step (the trainer's order,
``train/trainer.py``). Nothing in a run is random, so where it stands at any time is
arithmetic; the campaign's processes only wait for what ends a run (the elapsed limit, a
failure, the last step).

Worked example: first = 0, total = 5, step 10 s, checkpoint every 2 steps (write 3 s), an
evaluation every 4 steps (4 s), start-up 7 s, nothing to restore, start at 0. Steps 1 and 2
end at 17 and 27, checkpoint 2 is safe at 30; steps 3 and 4 end at 40 and 50, the evaluation
at 54, checkpoint 4 is safe at 57; step 5 ends at 67, the final evaluation at 71 and the final
checkpoint at 74 (tests/sim/test_timeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass


def multiples_between(every: int | None, after: int, upto: int) -> int:
    """How many multiples of ``every`` lie in (after, upto]; 0 when ``every`` is None."""
    if every is None or upto <= after:
        return 0
    return upto // every - after // every


@dataclass(frozen=True)
class Run:
    """One run of training: from a (re)start to whatever ends it."""

    start: float
    startup_s: float
    restore_s: float
    first: int
    total: int
    step_s: float
    eval_s: float
    write_s: float
    eval_every: int | None
    checkpoint_every: int | None

    @property
    def train_start(self) -> float:
        """When the first step begins (after start-up and restore)."""
        return self.start + self.startup_s + self.restore_s

    def events_through(self, step: int, every: int | None) -> int:
        """Evaluations (or checkpoints) done by the end of ``step``, the final one included."""
        n = multiples_between(every, self.first, step)
        if every is not None and step == self.total and self.total % every:
            n += 1
        return n

    def kept_s(self, step: int) -> tuple[float, float, float]:
        """(training, evaluation, checkpoint) seconds from the first step to checkpoint ``step``."""
        return (
            (step - self.first) * self.step_s,
            self.events_through(step, self.eval_every) * self.eval_s,
            self.events_through(step, self.checkpoint_every) * self.write_s,
        )

    def safe_at(self, step: int) -> float:
        """When the checkpoint after ``step`` is written (``step`` is a checkpoint step)."""
        return self.train_start + sum(self.kept_s(step))

    @property
    def finish(self) -> float:
        """When the last step, its evaluation and its checkpoint are done."""
        return self.safe_at(self.total)

    def checkpoint_steps(self) -> list[int]:
        """Every checkpoint step of this run, in order (the last step included)."""
        every = self.checkpoint_every
        steps = [] if every is None else list(range((self.first // every + 1) * every,
                                                    self.total, every))
        return [*steps, self.total]

    def saved_by(self, t: float) -> int:
        """The last step whose checkpoint is written by time ``t`` (``first`` if none).

        Starts from the checkpoint that the mean time per interval points to and walks to the
        exact one (a step or two: evaluations fall unevenly between checkpoints).
        """
        every = self.checkpoint_every
        if every is None:
            return self.total if self.finish <= t else self.first
        base = self.first // every
        count = -(-self.total // every) - base  # checkpoint steps after ``first``
        interval = every * self.step_s + self.write_s
        if self.eval_every is not None:
            interval += every / self.eval_every * self.eval_s
        guess = (t - self.train_start) / interval if interval > 0 else count
        i = min(max(int(guess), 0), count)

        def safe(i: int) -> bool:  # is the i-th checkpoint (1-based) written by t?
            return self.safe_at(min((base + i) * every, self.total)) <= t

        while i < count and safe(i + 1):
            i += 1
        while i > 0 and not safe(i):
            i -= 1
        return min((base + i) * every, self.total) if i else self.first

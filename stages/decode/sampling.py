"""Choose which decoded frames to keep, by their timestamps, for a target frame rate.

Sampling by presentation time (not by "every n-th frame") keeps the sampled rate right for
variable-frame-rate videos and for rates that do not divide the source rate (30 -> 7 fps),
and needs no re-encoding.
"""

from __future__ import annotations

import math


class TimestampSampler:
    """Keep the first frame at or after each tick k / fps, k = 0, 1, 2, ...

    The rule, for a target rate F (`fps`):

    - Times are relative to the first frame (t = frame time - first frame's time), so the first
      frame is always kept and a stream starting at a non-zero pts samples the same way.
    - A frame at time t is kept when t >= k / F - tolerance for the next unused tick k. After
      keeping it, every tick up to t is used: k becomes floor((t + tolerance) * F) + 1. A frame
      is never kept twice, so a gap in a variable-rate video (one frame covering several ticks)
      yields one frame, not duplicates, and a target above the source rate keeps every frame.
    - The tolerance absorbs timestamp rounding: half a pts unit of `time_base` (mkv stores
      milliseconds, so a 30 fps frame meant for 1/3 s is stamped 0.333 s), capped at a quarter
      of a source frame period so that it never reaches a neighbouring frame.
    - A frame without a timestamp (pts missing) is placed one nominal source period
      (1 / `source_fps`) after the previous frame.
    - Without F (`fps=None`) every frame is kept.

    E.g. 30 fps -> 6 fps keeps source frames 0, 5, 10, ...; 30 -> 7 fps keeps 0, 5, 9, 13, 18.
    """

    def __init__(
        self, fps: float | None, source_fps: float, time_base: float | None = None
    ) -> None:
        self.fps = fps
        self.period = 1.0 / source_fps
        self.tolerance = min((time_base or 0.0) / 2, self.period / 4) or 1e-9
        self._start: float | None = None
        self._last = 0.0
        self._next_tick = 0

    def __call__(self, time: float | None) -> float | None:
        """Feed the next frame's time (seconds or None): its relative time if kept, else None."""
        if self._start is None:
            self._start = 0.0 if time is None else time
            relative = 0.0
        elif time is None:
            relative = self._last + self.period
        else:
            relative = time - self._start
        self._last = relative
        if self.fps is None:
            return relative
        if relative < self._next_tick / self.fps - self.tolerance:
            return None
        self._next_tick = math.floor((relative + self.tolerance) * self.fps) + 1
        return relative

    @property
    def start(self) -> float:
        """Absolute timestamp of the first frame (0 before any frame or when it had none)."""
        return self._start or 0.0

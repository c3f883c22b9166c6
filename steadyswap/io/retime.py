"""Frame-rate change of an output (``--output-video-fps``), decided as FFmpeg's fps filter decides it.

Output frame ``n`` lies at ``n / fps`` seconds of source time. Each source frame's time is rounded to the
nearest output slot (halves away from zero); slot ``n`` then shows the latest source frame whose slot is
``n`` or less. So frames are dropped where the rate goes down, repeated where it goes up, and the output
lasts as long as the source: a frame is shown until the next source frame starts (the last one for one
frame at the source's average rate), whatever rate it is encoded at. Audio is not touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction


def output_rate(fps: float) -> Fraction:
    """``--output-video-fps`` as an exact rate: the nearest fraction with a denominator up to 1001.

    >>> output_rate(15.0), output_rate(29.97), output_rate(30000 / 1001)
    (Fraction(15, 1), Fraction(2997, 100), Fraction(30000, 1001))
    """
    return Fraction(fps).limit_denominator(1001)


def slot(seconds: Fraction, fps: Fraction) -> int:
    """The output frame nearest ``seconds`` at ``fps``, halves rounded away from zero (FFmpeg's ``near``).

    >>> slot(Fraction(1, 30), Fraction(15)), slot(Fraction(2, 30), Fraction(15)), slot(Fraction(1, 10), Fraction(15))
    (1, 1, 2)
    """
    scaled = seconds * fps
    return math.floor(scaled + Fraction(1, 2)) if scaled >= 0 else -math.floor(-scaled + Fraction(1, 2))


def time_base(fps: Fraction) -> tuple[Fraction, int]:
    """(time base, ticks per output frame) of a stream at ``fps``: exact for fractional rates such as 2997/100.

    >>> time_base(Fraction(2997, 100))
    (Fraction(1, 2997), 100)
    """
    return Fraction(1, fps.numerator), fps.denominator


def copies(times: Sequence[Fraction], end: Fraction, fps: Fraction) -> list[int]:
    """How many output frames each source frame fills: ``times`` are the frames' start times in seconds
    (increasing), ``end`` the time the last one stops being shown.

    >>> copies([Fraction(i, 30) for i in range(6)], Fraction(6, 30), Fraction(15))  # 30 → 15 frames/s
    [1, 0, 1, 0, 1, 0]
    >>> copies([Fraction(i, 10) for i in range(3)], Fraction(3, 10), Fraction(20))  # 10 → 20 frames/s
    [2, 2, 2]
    """
    slots = [slot(t, fps) for t in times] + [slot(end, fps)]
    counts = []
    shown = slots[0]
    for following in slots[1:]:
        counts.append(max(0, following - shown))
        shown = max(shown, following)
    return counts

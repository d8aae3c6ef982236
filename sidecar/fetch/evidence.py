"""When a transfer is *clearly* slower than a rate: the one test behind switching away
from a location (``sidecar.fetch.engine``) and reporting a degraded window at once
(``sidecar.fetch.observe``).

A window of ``count`` bytes in ``seconds`` is clearly below ``rate`` when, even
granted ``GRACE`` seconds of lost time (a scheduling hiccup on a busy node, a late
first chunk), it did not reach that rate: ``count < rate x (seconds - GRACE)``.
The evidence needed scales with how slow the location is: at a tenth of ``rate``
the test holds after about 1.1 x ``GRACE`` of transfer, at half of it after
2 x ``GRACE``, just under ``rate`` only after long windows, and never at ``rate``
or above however long it is watched. So a location that collapsed is left within
a fraction of a second, whatever the image size, while noise around a rate that
is good enough does not condemn it.
"""

from __future__ import annotations

#: Seconds of a window a location is not blamed for.
GRACE = 0.1


def clearly_below(count: int, seconds: float, rate: float) -> bool:
    """``count`` bytes in ``seconds`` fall short of ``rate`` bytes/s beyond the grace."""
    return seconds > GRACE and count < rate * (seconds - GRACE)

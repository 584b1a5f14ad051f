"""Ray gauges that keep their last values in Prometheus until they change.

Ray's metrics agent forgets a gauge series that no process has set for two export intervals
(about 20 s with Ray's defaults). That suits a value set continuously, like consumer lag, but a
value set once, like the last drift check's verdict or a consumer's last batch time, would vanish
from Prometheus long before the next one arrives, and an alert rule on it would fire for seconds at
most. A ``HeldGauge`` remembers what it was last set to, and its owner calls ``hold`` on a timer
shorter than that to set it again.
"""

from __future__ import annotations

from typing import Protocol


class Settable(Protocol):
    """What a held gauge needs of ``ray.util.metrics.Gauge``."""

    def set(self, value: float, tags: dict[str, str]) -> None: ...


class HeldGauge:
    def __init__(self, gauge: Settable) -> None:
        self._gauge = gauge
        self._values: dict[tuple[tuple[str, str], ...], tuple[float, dict[str, str]]] = {}

    def set(self, value: float, tags: dict[str, str]) -> None:
        self._values[tuple(sorted(tags.items()))] = (value, tags)
        self._gauge.set(value, tags)

    def forget(self) -> None:
        """Stop holding every series: the ones not set again age out of Ray's agent."""
        self._values.clear()

    def hold(self) -> None:
        for value, tags in self._values.values():
            self._gauge.set(value, tags)

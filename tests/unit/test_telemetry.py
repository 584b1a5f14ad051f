from fraud_ray.telemetry import HeldGauge


class RecordingGauge:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, tags))


def test_hold_sets_each_series_last_value_again() -> None:
    recorded = RecordingGauge()
    gauge = HeldGauge(recorded)
    gauge.set(1.0, {"feature": "amount"})
    gauge.set(2.0, {"feature": "amount"})
    gauge.set(0.5, {"feature": "hour"})
    recorded.calls.clear()

    gauge.hold()

    assert sorted(recorded.calls, key=lambda call: call[1]["feature"]) == [
        (2.0, {"feature": "amount"}),
        (0.5, {"feature": "hour"}),
    ]


def test_series_with_the_same_tags_in_another_order_are_one() -> None:
    recorded = RecordingGauge()
    gauge = HeldGauge(recorded)
    gauge.set(1.0, {"a": "1", "b": "2"})
    gauge.set(3.0, {"b": "2", "a": "1"})
    recorded.calls.clear()

    gauge.hold()

    assert [value for value, _ in recorded.calls] == [3.0]


def test_forgotten_series_are_not_held() -> None:
    recorded = RecordingGauge()
    gauge = HeldGauge(recorded)
    gauge.set(1.0, {"feature": "amount"})
    gauge.forget()
    gauge.set(0.2, {"feature": "hour"})
    recorded.calls.clear()

    gauge.hold()

    assert recorded.calls == [(0.2, {"feature": "hour"})]

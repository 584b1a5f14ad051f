"""How a stream is cut into batches never changes a feature.

The online path computes a batch at once, each transaction seeing the ones before it in the
batch; these properties hold it to what transactions arriving one at a time get, and to the
offline path, on streams with repeated ids, late events, missing cards and terminals, and labels
arriving between batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import compute_features
from fraud_ray.features.online import OnlineFeatures, replay
from fraud_ray.features.state import Event, MemoryState

MINUTE = 60_000_000
# Windows longer than any generated stream, so that no batch ever forgets an event: what is left
# to compare is how each transaction sees the others, not when the history is trimmed.
SPEC = FeatureSpec(windows_s=(600, 3600, 86_400), label_delay_s=1200)

events = st.builds(
    Event,
    transaction_id=st.sampled_from([f"t{i}" for i in range(12)]),
    ts_us=st.integers(0, 240).map(lambda minutes: minutes * MINUTE),
    amount=st.sampled_from([0.0, 0.01, 12.5, 99.99, 1e9]),
    card_id=st.sampled_from(["a", "b", "c", None]),
    terminal_id=st.sampled_from(["m", "n", None]),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Event], list[int], list[list[tuple[str, int]]]]:
    """Events in any order, cut into batches, with labels arriving before each batch."""
    stream = draw(st.lists(events, min_size=1, max_size=40))
    cuts = sorted(draw(st.sets(st.integers(1, len(stream)), max_size=8)) | {len(stream)})
    label = st.tuples(st.sampled_from([f"t{i}" for i in range(12)]), st.integers(0, 1))
    labels = [draw(st.lists(label, max_size=4)) for _ in cuts]
    return stream, cuts, labels


def batched(
    stream: list[Event], cuts: list[int], labels: list[list[tuple[str, int]]]
) -> np.ndarray:
    online = OnlineFeatures(SPEC, MemoryState(SPEC))
    rows, start = [], 0
    for end, arrived in zip(cuts, labels, strict=True):
        online.record_labels(arrived)
        rows.append(online.compute(stream[start:end]))
        start = end
    return np.vstack(rows)


def one_at_a_time(
    stream: list[Event], cuts: list[int], labels: list[list[tuple[str, int]]]
) -> np.ndarray:
    online = OnlineFeatures(SPEC, MemoryState(SPEC))
    due = dict(zip([0, *cuts[:-1]], labels, strict=True))
    rows = []
    for i, event in enumerate(stream):
        online.record_labels(due.get(i, []))
        rows.append(online.compute([event]))
    return np.vstack(rows)


@settings(max_examples=150, deadline=None)
@given(streams())
def test_a_batch_gets_what_its_transactions_get_one_at_a_time(stream_cuts_labels) -> None:
    stream, cuts, labels = stream_cuts_labels
    np.testing.assert_array_equal(
        batched(stream, cuts, labels), one_at_a_time(stream, cuts, labels)
    )


@st.composite
def histories(draw: st.DrawFn) -> pd.DataFrame:
    """A labelled history of distinct transactions, some at the same microsecond.

    Amounts of like size: the offline path sums windows as differences of one running total over
    every card, which a billion on one card makes lose a cent's digits on another."""
    size = draw(st.integers(1, 40))
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i:02d}" for i in draw(st.permutations(range(size)))],
            "timestamp": pd.to_datetime(
                draw(st.lists(st.integers(0, 240), min_size=size, max_size=size)), unit="m"
            )
            .tz_localize("UTC")
            .as_unit("us"),
            "card_id": draw(st.lists(st.sampled_from("abc"), min_size=size, max_size=size)),
            "terminal_id": draw(st.lists(st.sampled_from("mn"), min_size=size, max_size=size)),
            "amount": draw(
                st.lists(st.sampled_from([0.0, 0.01, 12.5, 99.99]), min_size=size, max_size=size)
            ),
            "is_fraud": draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)),
        }
    )


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(1, 16))
def test_any_batch_size_gives_the_offline_features(history: pd.DataFrame, max_batch: int) -> None:
    """Labels reach the stream at their delay (``replay``), in batches of any size."""
    expected = compute_features(history, SPEC).to_numpy()
    got = replay(history, OnlineFeatures(SPEC, MemoryState(SPEC)), max_batch=max_batch)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0, equal_nan=True)

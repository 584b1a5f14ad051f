"""One definition, two executions: a replayed stream gets exactly the offline features."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import compute_features
from fraud_ray.features.online import OnlineFeatures, replay
from fraud_ray.features.state import Event, FeatureState, MemoryState, RedisState
from fraud_ray.settings import SimulatorSettings
from fraud_ray.simulator import simulate_days

pytestmark = pytest.mark.consistency


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """About 26,000 simulated transactions with every fraud scenario, labels on all of them, and
    zero amounts (card verifications): one payment in 20, and every payment of a few cards, whose
    averages are then 0."""
    settings = SimulatorSettings(
        customers=300,
        terminals=600,
        days=45,
        compromised_terminals_per_day=1,
        compromised_cards_per_day=1,
    )
    history = pd.concat([day for _, day in simulate_days(settings)], ignore_index=True)
    verifications = (np.arange(len(history)) % 20 == 0) | history["card_id"].isin(
        history["card_id"].drop_duplicates().head(5)
    )
    history.loc[verifications, "amount"] = 0.0
    return history


HOUR = 3600
DAY = 24 * HOUR
SPECS = {
    "days": FeatureSpec(),
    # windows shorter than a day, and a label delay that is not a whole number of days
    "hours": FeatureSpec(windows_s=(HOUR, 6 * HOUR, DAY, 7 * DAY), label_delay_s=36 * HOUR),
}


@pytest.fixture(params=list(SPECS))
def spec(request: pytest.FixtureRequest) -> FeatureSpec:
    return SPECS[request.param]


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest, spec: FeatureSpec) -> FeatureState:
    if request.param == "memory":
        return MemoryState(spec)
    url = request.getfixturevalue("redis_url")
    return RedisState.from_url(spec, url, prefix=f"consistency-{uuid.uuid4().hex}")


def test_online_replay_equals_offline(
    history: pd.DataFrame, spec: FeatureSpec, state: FeatureState
) -> None:
    assert len(history) >= 20_000
    assert history["is_fraud"].sum() > 200
    expected = compute_features(history, spec).to_numpy()
    got = replay(history, OnlineFeatures(spec, state))
    mismatched = ~np.isclose(got, expected, rtol=1e-9, atol=0, equal_nan=True)
    wrong = sorted({spec.names[column] for column in np.nonzero(mismatched)[1]})
    assert not wrong, f"online differs from offline in {mismatched.sum()} values of {wrong}"
    fraud_rate = spec.names.index("terminal_fraud_rate_7d")
    assert np.nanmax(got[:, fraud_rate]) > 0, "labels never reached the terminal fraud rates"
    card_mean = spec.names.index("card_mean_amount_7d")
    assert (got[:, card_mean] == 0).any(), "no card had an average of 0 to compare with"


def test_an_outlier_in_time_forgets_nothing_of_other_cards_and_terminals(
    state: FeatureState,
) -> None:
    spec = FeatureSpec()
    features = OnlineFeatures(spec, state)
    hour = 3_600_000_000
    features.compute([Event(f"h{i}", i * hour, 10.0, "x", "m") for i in range(3)])
    features.compute([Event("outlier", 200 * 365 * 24 * hour, 10.0, "z", "o")])
    after = features.compute_one(Event("next", 4 * hour, 10.0, "x", "m"))
    assert after["card_tx_count_1d"] == 3 and after["terminal_tx_count_30d"] == 3
    assert features.record_labels([("h0", 1), ("h2", 0)]) == 2
    if isinstance(state, RedisState):
        # A card or terminal never seen again leaves nothing behind once no window reaches it.
        for key in (
            state._card_key("x"),
            state._terminal_key("m"),
            state._terminal_key("m") + ":fraud",
        ):
            assert 0 < state.client.ttl(key) <= spec.terminal_retention_us // 1_000_000

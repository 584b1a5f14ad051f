"""``python -m fraud_ray.cli``, as the benchmarks run it: the same app as ``fraud-ray``."""

from fraud_ray.cli import app

app()

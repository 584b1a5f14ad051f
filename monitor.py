"""Monitoring over the decision log, for cron jobs and operators.

    python monitor.py performance --start 2025-09-01
    python monitor.py drift
    python monitor.py compare
    python monitor.py serve --host 0.0.0.0 --port 8001

It is `fraud-ray monitor` with the same commands and options: each report prints a short table,
then the summary as one JSON line; `serve` runs the dashboard and /api/v1/monitoring/* without Ray.
"""

from fraud_ray.cli import monitor_app

if __name__ == "__main__":
    monitor_app(prog_name="monitor.py")

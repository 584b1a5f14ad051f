"""Monitoring over the decision log, for cron jobs and operators.

    python monitor.py performance --start 2025-09-01
    python monitor.py drift
    python monitor.py compare

It is `fraud-ray monitor` with the same commands and options: each prints a short table, then the
summary as one JSON line.
"""

from fraud_ray.cli import monitor_app

if __name__ == "__main__":
    monitor_app(prog_name="monitor.py")

"""``fraud-ray demo``: the whole system on one machine, from simulation to the dashboard."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID

from fraud_ray.cli.common import console, fail, progress_bars, settings


def demo(
    customers: Annotated[int, typer.Option(min=50, help="Simulated customers.")] = 1000,
    days: Annotated[int, typer.Option(min=90, help="Simulated days (training needs 87).")] = 100,
    replay_days: Annotated[
        int,
        typer.Option(
            min=2,
            help="Last days replayed through Kafka (the last one drifts); 31 or more fill the "
            "30-day windows before the drift.",
        ),
    ] = 34,
    trials: Annotated[int, typer.Option(min=1, help="Tuning trials of the champion.")] = 2,
    amount_shift: Annotated[
        float, typer.Option(min=0.01, help="Amounts of the last replayed day are multiplied by it.")
    ] = 3.0,
    folder: Annotated[Path, typer.Option(help="Where the demo writes (cleared first).")] = Path(
        "data/demo"
    ),
    wait: Annotated[bool, typer.Option(help="Keep serving the dashboard until Ctrl-C.")] = True,
) -> None:
    """The end-to-end show: simulate, tune, serve, stream with a drift, label, monitor."""
    from fraud_ray.demo import DemoOptions, running_demo, summary

    if replay_days >= days:
        fail(f"--replay-days ({replay_days}) must be fewer than --days ({days})")
    options = DemoOptions(folder, customers, days, replay_days, trials, amount_shift)
    bars = progress_bars()
    tasks: dict[str, TaskID] = {}

    def progress(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total)
        bars.update(tasks[label], completed=done, total=total)

    bars.start()
    try:
        with running_demo(options, settings(), console.print, progress) as result:
            bars.stop()
            console.print(summary(result))
            if wait:
                # Ray Tune leaves its own SIGINT handler behind (it stops tuning runs): put back
                # Python's, or Ctrl-C would never reach the loop below.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                console.print("serving until Ctrl-C")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(1)
    finally:
        bars.stop()

"""The ``fraud-ray`` command: every job behind one entry point, with progress and readable errors."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from fraud_ray.data import DataValidationError
from fraud_ray.durations import DurationError, parse_duration
from fraud_ray.schema import DatasetMapping, MappingError
from fraud_ray.settings import Settings, SettingsError, SplitLayout, load_settings

if TYPE_CHECKING:
    from fraud_ray.data_summary import DataSummary
    from fraud_ray.demo import DemoResult
    from fraud_ray.monitoring.monitor import Monitor
    from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport

app = typer.Typer(
    help="Real-time card-fraud detection on Ray.", no_args_is_help=True, add_completion=False
)
monitor_app = typer.Typer(
    help="Performance, drift and challengers, read from the decision log; each ends with JSON.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(monitor_app, name="monitor")
mapping_app = typer.Typer(
    help="Dataset mappings: how a file's columns map onto transactions.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(mapping_app, name="mapping")
console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option(help="Settings YAML (default: $FRAUD_RAY_CONFIG or configs/default.yaml)."),
]

DataOption = Annotated[
    Path | None,
    typer.Option(help="Transactions: a folder or a CSV/Parquet file (default: data.raw_dir)."),
]
MappingOption = Annotated[
    Path | None, typer.Option(help="Dataset mapping YAML (default: data.mapping).")
]

StartOption = Annotated[
    str | None, typer.Option(help="From this ISO date or date-time of transaction time.")
]
EndOption = Annotated[
    str | None,
    typer.Option(help="Until this ISO date or date-time of transaction time (exclusive)."),
]


# Ray Data logs a failed task's traceback itself before raising the error to the caller, which
# reports it in one line; these are the loggers, silenced at ERROR unless --verbose.
RAY_DATA_ERROR_LOGGERS = (
    "ray.data.exceptions",
    "ray.data._internal.execution.streaming_executor_state",
)


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


class State:
    config: Path | None = None
    verbose: bool = False


@app.callback()
def main(
    config: ConfigOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Print the full trace of an error, Ray's included.")
    ] = False,
) -> None:
    State.config = config
    State.verbose = verbose
    if not verbose:
        for name in RAY_DATA_ERROR_LOGGERS:
            logging.getLogger(name).addFilter(_below_error)


@monitor_app.callback()
def monitor_main(config: ConfigOption = None) -> None:
    # monitor.py runs this sub-app on its own, so it takes --config too; under `fraud-ray
    # --config FILE monitor ...` it must not forget the FILE given before it.
    if config is not None:
        State.config = config


def settings(**overrides: object) -> Settings:
    """The settings for this command; a bad file or value ends the command with its key named."""
    try:
        return load_settings(State.config, **overrides)
    except SettingsError as error:
        fail(str(error))


def fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=2)


@contextlib.contextmanager
def user_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Errors in what the user gave (data, mapping, windows) end the command with their own line
    and exit code 2, also when a Ray task raised them; the trace only with --verbose."""
    try:
        yield
    except Exception as error:
        found = original_error(error, (DataValidationError, MappingError, *kinds))
        if found is None:
            raise
        if State.verbose:
            console.print_exception()
        fail(str(found).strip().splitlines()[-1] if _is_ray_error(found) else str(found))


def original_error(
    error: BaseException, kinds: tuple[type[Exception], ...]
) -> BaseException | None:
    """The first error of ``kinds`` in the chain: Ray wraps a task's error (``cause``) and Ray Data
    wraps it again in ``UserCodeException`` (``__cause__``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kinds) and not _is_ray_error(current):
            return current
        if isinstance(current, kinds):
            inner = getattr(current, "cause", None)
            return inner if isinstance(inner, BaseException) else current
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return None


def _is_ray_error(error: BaseException) -> bool:
    return type(error).__module__.startswith("ray.")


def load_mapping(path: Path | None) -> DatasetMapping | None:
    if path is None:
        return None
    try:
        return DatasetMapping.from_yaml(path)
    except MappingError as error:
        fail(str(error))


@app.command()
def simulate(
    customers: Annotated[int | None, typer.Option(min=1)] = None,
    terminals: Annotated[int | None, typer.Option(min=1)] = None,
    days: Annotated[int | None, typer.Option(min=1)] = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: data.raw_dir).")] = None,
) -> None:
    """Simulate card transactions with three fraud scenarios, as Parquet partitioned by day."""
    from fraud_ray.simulator import write_simulation

    base = settings()
    chosen = {"customers": customers, "terminals": terminals, "days": days, "seed": seed}
    if start is not None:
        try:
            chosen["start"] = date.fromisoformat(start)
        except ValueError:
            fail(f"--start: {start!r} is not a date like 2025-04-01")
    overrides = {key: value for key, value in chosen.items() if value is not None}
    simulator = base.simulator.model_copy(update=overrides)
    target = out or base.data.raw_dir
    with _progress() as progress:
        task = progress.add_task("simulating days", total=simulator.days)
        summary = write_simulation(
            simulator, target, on_day=lambda day, rows: progress.advance(task)
        )
    table = Table(title=f"Simulated transactions in {target}", show_header=False)
    table.add_row("days", f"{summary.first_day} .. {summary.last_day} ({summary.days})")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("frauds", f"{summary.frauds:,} ({summary.fraud_rate:.2%})")
    for scenario, count in sorted(summary.by_scenario.items()):
        table.add_row(f"  scenario {scenario}", f"{count:,}")
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)


@app.command()
def features(
    data: DataOption = None,
    mapping: MappingOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: data.features_dir).")
    ] = None,
) -> None:
    """Compute the offline features of a transaction history with Ray Data, point-in-time correct."""
    from fraud_ray.features.distributed import write_features
    from fraud_ray.runtime import init_ray

    base = settings()
    source = _existing(data or base.data.raw_dir)
    dataset_mapping = load_mapping(mapping or base.data.mapping)
    init_ray(base)
    with user_errors(FileExistsError):
        summary = write_features(
            source, out or base.data.features_dir, base.features, dataset_mapping
        )
    console.print(
        f"[bold]{summary.rows:,} transactions[/bold], {len(summary.stats)} features "
        f"in {summary.seconds:.1f} s -> {summary.out}"
    )
    table = Table(title="Feature statistics")
    table.add_column("feature", no_wrap=True, min_width=27)
    for column in ("missing", "mean", "std", "min", "max"):
        table.add_column(column, justify="right")
    for name, stats in summary.stats.items():
        table.add_row(
            name, *(f"{stats[key]:,.3f}" for key in ("missing", "mean", "std", "min", "max"))
        )
    console.print(table)


@app.command()
def train(
    data: DataOption = None,
    mapping: MappingOption = None,
    train_start: Annotated[
        str | None,
        typer.Option(help="ISO date or date-time; default: once the longest window has filled."),
    ] = None,
    train_end: Annotated[
        str | None,
        typer.Option(help="ISO date or date-time, exclusive; default: split.train_window later."),
    ] = None,
    label_delay: Annotated[
        str | None,
        typer.Option(
            help="Labels younger than this are unknown: 0h, 36h, 7d, PT8H (default: "
            "features.label_delay)."
        ),
    ] = None,
    validation_window: Annotated[
        str | None,
        typer.Option(help="Length of validation, e.g. 8h (default: split.validation_window)."),
    ] = None,
    test_window: Annotated[
        str | None, typer.Option(help="Length of the test, e.g. 12h (default: split.test_window).")
    ] = None,
    layout: Annotated[
        SplitLayout | None,
        typer.Option(help="Validation after training, or before its end (default: split.layout)."),
    ] = None,
    trials: Annotated[
        int | None, typer.Option(min=1, help="Tuning trials (default: training.trials).")
    ] = None,
    time_budget_s: Annotated[
        float | None, typer.Option(min=1, help="Tuning time budget in seconds.")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name (default: mlflow.model_name).")
    ] = None,
    challenger: Annotated[
        bool, typer.Option(help="Register as `challenger` instead of `champion`.")
    ] = False,
) -> None:
    """Tune, train, calibrate and register a model; ends with one JSON line of the result."""
    from fraud_ray.training import TrainingError
    from fraud_ray.training import train as run_training

    split = {
        "validation_window": _duration(validation_window, "--validation-window"),
        "test_window": _duration(test_window, "--test-window"),
        "layout": layout,
    }
    delay = _duration(label_delay, "--label-delay")
    base = settings(
        split={key: value for key, value in split.items() if value is not None},
        features={} if delay is None else {"label_delay": delay},
    )
    if model_name:
        base = base.model_copy(
            update={"mlflow": base.mlflow.model_copy(update={"model_name": model_name})}
        )
    source = _existing(data or base.data.raw_dir)
    start, end = _moment(train_start, "--train-start"), _moment(train_end, "--train-end")
    with user_errors(TrainingError, ValueError):
        result = run_training(
            base,
            source,
            load_mapping(mapping or base.data.mapping),
            train_start=start,
            train_end=end,
            trials=trials,
            time_budget_s=time_budget_s,
            alias="challenger" if challenger else "champion",
            on_summary=show_data_summary,
        )
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(
        f"registered [bold]{result.registered.uri}[/bold] as {result.registered.alias} "
        f"after {result.trials} trials in {result.seconds:.0f} s"
    )
    print(json.dumps(result.summary(), default=_json_default))


@app.command()
def champion(
    train_if_missing: Annotated[
        bool,
        typer.Option(help="Train a quick model (one trial) when the registry has no champion."),
    ] = False,
    data: DataOption = None,
    trials: Annotated[int, typer.Option(min=1, help="Trials of that quick training.")] = 1,
) -> None:
    """Show the model serving would load; on a fresh machine, train one first."""
    from fraud_ray.registry import Registry
    from fraud_ray.training import TrainingError
    from fraud_ray.training import train as run_training

    base = settings()
    alias = base.serving.model_alias
    registry = Registry(base.mlflow)
    try:
        version = registry.resolve(f"@{alias}")
    except Exception as error:  # MLflow raises its own types for a missing model or alias
        if not train_if_missing:
            fail(
                f"no {base.mlflow.model_name}@{alias} in {base.mlflow.tracking_uri} ({error}); "
                "run `fraud-ray train` or `fraud-ray champion --train-if-missing`"
            )
        source = data or base.data.raw_dir
        if not source.exists() or not any(source.iterdir()):
            fail(f"no transactions in {source}: run `fraud-ray simulate` first")
        console.print(f"no {alias} yet: training a quick model on {source} ({trials} trial)")
        try:
            result = run_training(base, source, load_mapping(base.data.mapping), trials=trials)
        except (DataValidationError, TrainingError, ValueError) as failure:
            fail(str(failure))
        version = registry.resolve(f"@{alias}")
        console.print(f"trained in {result.seconds:.0f} s")
    console.print(
        f"[bold]models:/{version.name}/{version.version}[/bold] is {alias} (run {version.run_id})"
    )


@app.command()
def promote(
    url: Annotated[
        str | None,
        typer.Option(help="The serving app to reload (default: serving.host and serving.port)."),
    ] = None,
    reload: Annotated[bool, typer.Option(help="Ask the serving app to load it now.")] = True,
) -> None:
    """Make the challenger the champion, then have the running graph serve it."""
    import httpx
    from mlflow.exceptions import MlflowException

    from fraud_ray.registry import Registry

    base = settings()
    serving = base.serving
    if serving.challenger_alias is None:
        fail("serving.challenger_alias is null: there is no challenger to promote")
    try:
        old, new = Registry(base.mlflow).promote(serving.challenger_alias, serving.model_alias)
    except MlflowException as error:
        fail(f"cannot promote {base.mlflow.model_name}@{serving.challenger_alias}: {error.message}")
    console.print(
        f"{base.mlflow.model_name}@{serving.model_alias}: version {old} -> [bold]{new}[/bold]"
    )
    if not reload:
        return
    target = url or f"http://{serving.host}:{serving.port}"
    try:
        answer = httpx.post(
            f"{target}/api/v1/model/reload",
            headers={"Authorization": f"Bearer {serving.reload_token}"},
            timeout=serving.reload_timeout_s + 10,
        )
    except httpx.HTTPError as error:
        fail(f"promoted, but {target} did not answer the reload ({error}); it loads {new} on start")
    if answer.status_code != 200:
        fail(
            f"promoted, but {target} refused the reload: {answer.json().get('message', answer.text)}"
        )
    console.print(f"{target} now serves version {answer.json()['version']}")


@app.command()
def score(
    model: Annotated[
        str, typer.Option(help="models:/name@alias, models:/name/version, or @alias.")
    ],
    out: Annotated[Path, typer.Option(help="Parquet file to write.")],
    data: DataOption = None,
    mapping: MappingOption = None,
    start: Annotated[
        str | None, typer.Option(help="Score from this ISO date or date-time.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Score until this ISO date or date-time (exclusive).")
    ] = None,
) -> None:
    """Score transactions in batch with Ray Data and write their decisions to Parquet."""
    from fraud_ray.registry import Registry
    from fraud_ray.runtime import init_ray
    from fraud_ray.scoring import score_file

    base = settings()
    source = _existing(data or base.data.raw_dir)
    begin, finish = _moment(start, "--start"), _moment(end, "--end")
    try:
        fraud_model, version = Registry(base.mlflow).load(model)
    except Exception as error:  # MLflow raises its own exception types for unknown names/aliases
        fail(f"--model {model}: {error}")
    init_ray(base)
    with user_errors():
        summary = score_file(
            source,
            fraud_model,
            out,
            base.features,
            load_mapping(mapping or base.data.mapping),
            begin,
            finish,
            on_summary=show_data_summary,
        )
    counts = ", ".join(f"{count:,} {action}" for action, count in sorted(summary.decisions.items()))
    console.print(
        f"scored {summary.rows:,} transactions with {version.name} v{version.version}: "
        f"{counts} -> {summary.out}"
    )


@app.command()
def evaluate(
    model: Annotated[
        str, typer.Option(help="models:/name@alias, models:/name/version, or @alias.")
    ],
    data: DataOption = None,
    mapping: MappingOption = None,
    start: StartOption = None,
    end: EndOption = None,
    out: Annotated[Path, typer.Option(help="Folder for the plots and evaluation.json.")] = Path(
        "data/evaluation"
    ),
) -> None:
    """Judge a model on labelled transactions: AP, ROC AUC, recall at low false-positive rates,
    card precision@k, costs and savings; plots next to the JSON; ends with one JSON line."""
    from fraud_ray.evaluation import evaluate_model
    from fraud_ray.registry import Registry
    from fraud_ray.runtime import init_ray

    base = settings()
    source = _existing(data or base.data.raw_dir)
    begin, finish = _moment(start, "--start"), _moment(end, "--end")
    try:
        fraud_model, version = Registry(base.mlflow).load(model)
    except Exception as error:  # MLflow raises its own exception types for unknown names/aliases
        fail(f"--model {model}: {error}")
    init_ray(base)
    with user_errors():
        result = evaluate_model(
            fraud_model,
            source,
            out,
            base.features,
            load_mapping(mapping or base.data.mapping),
            begin,
            finish,
            k=base.monitoring.precision_k,
        )
    table = Table(
        title=f"{version.name} v{version.version} on {result.rows:,} transactions "
        f"({result.frauds:,} frauds)",
        show_header=False,
    )
    for name, value in result.metrics.items():
        money = "cost" in name or "savings" in name
        table.add_row(name, _money(value) if money else _ratio(value))
    console.print(table)
    figures = json.dumps(result.summary())
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(figures + "\n")
    console.print(f"plots and evaluation.json in {out}")
    print(figures)


@mapping_app.command("suggest")
def mapping_suggest(
    data: Annotated[Path, typer.Option(help="A CSV or Parquet file of transactions.")],
) -> None:
    """Propose a dataset mapping from the file's header and first rows, each guess commented;
    check it, then save it (`> mapping.yaml`) and pass it as --mapping."""
    from fraud_ray.mapping import read_sample, suggest_mapping

    with user_errors(FileNotFoundError):
        suggestion = suggest_mapping(read_sample(data))
    print(suggestion.yaml(data), end="")


def show_data_summary(summary: DataSummary) -> None:
    table = Table(title="What was read", show_header=False)
    for what, value in summary.lines():
        table.add_row(what, value)
    console.print(table)


@app.command()
def ingest(
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (default: kafka.bootstrap).")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Topic of transactions (default: kafka.transactions_topic).")
    ] = None,
    pool_size: Annotated[
        int | None, typer.Option(min=1, help="Consumer actors (default: kafka.pool_size).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Consumer group (default: kafka.group).")
    ] = None,
    exactly_once: Annotated[
        bool | None,
        typer.Option(
            "--exactly-once/--at-least-once",
            help="Kafka transactions for decisions and offsets (default: kafka.exactly_once).",
        ),
    ] = None,
    app_name: Annotated[
        str | None,
        typer.Option(help="The running Serve application to feed (default: serving.app_name)."),
    ] = None,
    report_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between two progress lines.")
    ] = 10.0,
) -> None:
    """Feed Kafka transactions through the running Serve graph until SIGTERM, then drain.

    Joins the Ray cluster where the Serve application runs: ray.address, else $RAY_ADDRESS, else
    the cluster `ray start` started on this machine. Decisions go to kafka.decisions_topic,
    kafka.alerts_topic and the decision log (decisions.url); malformed messages to
    kafka.dlq_topic.
    """
    from fraud_ray.runtime import init_ray
    from fraud_ray.streaming.loop import LoopStats
    from fraud_ray.streaming.pool import GraphNotRunning, run_until_signalled

    base = settings()
    chosen = {
        "bootstrap": bootstrap,
        "transactions_topic": topic,
        "pool_size": pool_size,
        "group": group,
        "exactly_once": exactly_once,
    }
    kafka = base.kafka.model_copy(update={k: v for k, v in chosen.items() if v is not None})
    serving = base.serving.model_copy(update={"app_name": app_name or base.serving.app_name})
    # The graph runs in a Ray cluster already: join it, never start a private one.
    address = base.ray.address or os.environ.get("RAY_ADDRESS") or "auto"
    ray_settings = base.ray.model_copy(update={"address": address})
    chosen_settings = base.model_copy(
        update={"kafka": kafka, "serving": serving, "ray": ray_settings}
    )
    try:
        init_ray(chosen_settings)
    except ConnectionError as error:
        fail(
            f"no Ray cluster at {ray_settings.address} ({error}): start one with `ray start "
            "--head` and the graph with `serve run serve_app:graph`, or set ray.address"
        )
    console.print(
        f"ingesting {kafka.transactions_topic} from {kafka.bootstrap} with {kafka.pool_size} "
        f"consumers in group {kafka.group} into Serve app {serving.app_name!r} "
        f"({'exactly-once' if kafka.exactly_once else 'at-least-once'}); SIGTERM or Ctrl-C drains"
    )

    def report(stats: list[LoopStats]) -> None:
        decided = sum(s.decided for s in stats)
        lag = sum(sum(s.lag.values()) for s in stats)
        dead = sum(s.dead_lettered for s in stats)
        console.print(f"{decided:,} decided, {dead:,} dead-lettered, lag {lag:,}", highlight=False)

    try:
        final = run_until_signalled(chosen_settings, report, report_every)
    except GraphNotRunning as error:
        fail(str(error))
    report(final)
    console.print("drained: every batch in hand was committed")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=50, help="Simulated customers.")] = 1000,
    days: Annotated[int, typer.Option(min=70, help="Simulated days (training needs 66).")] = 100,
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
    from fraud_ray.demo import DemoOptions, running_demo

    if replay_days >= days:
        fail(f"--replay-days ({replay_days}) must be fewer than --days ({days})")
    options = DemoOptions(folder, customers, days, replay_days, trials, amount_shift)
    bars = _progress()
    tasks: dict[str, TaskID] = {}

    def progress(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total)
        bars.update(tasks[label], completed=done, total=total)

    bars.start()
    try:
        with running_demo(options, settings(), console.print, progress) as result:
            bars.stop()
            _demo_summary(result)
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


def _demo_summary(result: DemoResult) -> None:
    from fraud_ray.monitoring.monitor import Monitor, NotEnoughData

    monitor = Monitor(result.settings)
    console.print(
        f"replayed {result.replayed:,} transactions through Kafka; "
        f"{result.labelled:,} labels sent as each day came past the label delay"
    )
    _show_performance(monitor.performance())
    try:
        _show_drift(monitor.drift())
    except NotEnoughData as error:
        console.print(f"drift: {error}")
    comparison = monitor.comparison()
    if comparison is not None:
        _show_comparison(comparison)
    console.print(f"[bold]dashboard: {result.url}/dashboard[/bold]")


@app.command()
def feedback(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            help="CSV, Parquet or JSON Lines (.jsonl) with transaction_id and is_fraud (0 or 1).",
        ),
    ],
) -> None:
    """Record labels (chargebacks, analyst verdicts) in the decision log, for monitoring."""
    from fraud_ray.monitoring.labels import LabelFileError, read_labels

    base = settings()
    try:
        labels = read_labels(file)
    except LabelFileError as error:
        fail(str(error))
    matched = _monitor(base).record_labels(labels)
    console.print(
        f"received {len(labels):,} labels: {matched:,} matched a logged decision, "
        f"{len(labels) - matched:,} did not"
    )
    print(json.dumps({"received": len(labels), "matched": matched}))


@monitor_app.command()
def performance(
    start: StartOption = None,
    end: EndOption = None,
    model_version: Annotated[
        str | None, typer.Option(help="Only this model version's decisions (default: all).")
    ] = None,
) -> None:
    """Per day: alerts, labels so far, precision, recall, AP, card precision@k and costs."""
    base = settings()
    report = _monitor(base).performance(
        _moment(start, "--start"), _moment(end, "--end"), model_version
    )
    _show_performance(report, model_version)
    print(report.model_dump_json())


@monitor_app.command()
def drift(end: EndOption = None) -> None:
    """Evidently drift of the latest window against the model's reference sample.

    The window is the monitoring.drift_window_days before --end (default: just after the latest
    logged transaction); the reference is the sample saved with the model version that made most
    of its decisions. Saves the HTML report in monitoring.reports_dir and raises the alarm (a
    WARNING, and monitoring.webhook_url if set) when at least monitoring.drift_share of the
    columns drifted.
    """
    from mlflow.exceptions import MlflowException

    base = settings()
    monitor = _monitor(base)
    try:
        summary = monitor.drift(_moment(end, "--end"))
    except (ValueError, MlflowException) as error:  # NotEnoughData is a ValueError
        fail(str(error))
    _show_drift(summary)
    print(summary.model_dump_json())


@monitor_app.command()
def compare(start: StartOption = None, end: EndOption = None) -> None:
    """The champion against the challengers scored in shadow, on the same transactions.

    Those are the labelled transactions that every model decided in the window (default: from the
    first to the last shadow decision); prints null when no challenger scored in shadow.
    """
    base = settings()
    comparison = _monitor(base).comparison(_moment(start, "--start"), _moment(end, "--end"))
    if comparison is None:
        console.print("no shadow decisions in the window: no challenger to compare")
        print("null")
        return
    _show_comparison(comparison)
    print(comparison.model_dump_json())


@monitor_app.command("serve")
def monitor_serve(
    host: Annotated[str | None, typer.Option(help="Address (default: monitoring.host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: monitoring.port).")
    ] = None,
) -> None:
    """The dashboard (/dashboard) and /api/v1/monitoring/* without Ray, until interrupted.

    Reads the decision log and the registry the settings name, as the Serve app's /dashboard
    does; for teams that keep monitoring off the serving path.
    """
    from fraud_ray.monitoring.app import serve

    serve(settings(), host, port)


def _show_performance(report: PerformanceReport, model_version: str | None = None) -> None:
    table = _monitoring_table(
        f"Decisions of {_versions(model_version)} by UTC day",
        [
            *("day", "decided", "alerts", "labels", "frauds", "prec.", "recall", "AP", "CP@k"),
            *("cost", "saved"),
        ],
        caption=f"prec.: labelled alerts that were fraud; CP@k: card precision@{report.k}; cost: "
        "realised on the labelled decisions; saved: against approving them all",
    )
    for day in report.days:
        table.add_row(
            day.day.isoformat(),
            f"{day.decisions:,}",
            f"{day.alerts:,}",
            f"{day.labelled:,}",
            f"{day.frauds:,}",
            _ratio(day.precision),
            _ratio(day.recall),
            _ratio(day.average_precision),
            _ratio(day.card_precision_at_k),
            _money(day.realised_cost),
            _money(day.savings),
        )
    console.print(table if report.days else "no logged decisions in the window")


def _show_drift(summary: DriftSummary) -> None:
    table = _monitoring_table(
        f"{summary.current_rows:,} decisions against the {summary.reference_rows:,} reference "
        f"rows of model version {summary.model_version}",
        ["column", "method", "score", "threshold", "drifted"],
        left=2,
    )
    for feature in summary.features:
        table.add_row(
            feature.feature,
            feature.method,
            f"{feature.score:.4g}",
            f"{feature.threshold:g}",
            "[red]yes[/red]" if feature.drifted else "no",
        )
    console.print(table)
    verdict = "[red]dataset drift[/red]" if summary.dataset_drift else "no dataset drift"
    console.print(
        f"{verdict}: {summary.drifted_share:.0%} of the columns drifted (alarm at "
        f"{summary.share_threshold:.0%})\nreport: {summary.report}"
    )


def _show_comparison(comparison: ModelComparison) -> None:
    table = _monitoring_table(
        f"Champion and challengers on {comparison.compared:,} labelled transactions",
        ["role", "version", "labels", "AP", "prec.", "recall", "cost", "saved"],
        caption=f"same action on {_ratio(comparison.agreement)} of them; cost: realised on them; "
        "saved: against approving them all",
    )
    for outcome in comparison.outcomes:
        table.add_row(
            outcome.role,
            outcome.model_version,
            f"{outcome.labelled:,}",
            _ratio(outcome.average_precision),
            _ratio(outcome.precision),
            _ratio(outcome.recall),
            _money(outcome.realised_cost),
            _money(outcome.savings),
        )
    console.print(table)


@app.command()
def settings_show() -> None:
    """Print the settings in force, after the YAML file and FRAUD_RAY_* variables."""
    console.print_json(json.dumps(settings().model_dump(mode="json")))


def _existing(path: Path) -> Path:
    if not path.exists():
        fail(f"--data: {path} does not exist (run `fraud-ray simulate` first?)")
    return path


def _duration(value: str | None, option: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as error:
        fail(f"{option}: {error}")


def _moment(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time; naive values are UTC, like every time in fraud-ray."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not an ISO 8601 date or date-time")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _monitor(base: Settings) -> Monitor:
    from fraud_ray.decision_log import DecisionLogError
    from fraud_ray.monitoring.monitor import Monitor

    try:
        return Monitor(base)
    except DecisionLogError as error:
        fail(str(error))


def _monitoring_table(
    title: str, columns: list[str], caption: str | None = None, left: int = 1
) -> Table:
    """Tables narrow enough for a day's figures to fit an 80-column terminal unabbreviated; the
    first ``left`` columns are names, the rest numbers."""
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right", no_wrap=True)
    return table


def _versions(model_version: str | None) -> str:
    return "every model version" if model_version is None else f"model version {model_version}"


def _ratio(value: float | None) -> str:
    """Undefined ratios (no label yet) print as a dash, never as 0."""
    return "-" if value is None else f"{value:.3f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _json_default(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


if __name__ == "__main__":
    app()

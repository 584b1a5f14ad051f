"""``fraud-ray train | champion | promote | score | evaluate``: the models in the registry, batch
scoring, and judging a model on labelled transactions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fraud_ray.cli.common import (
    DataOption,
    EndOption,
    MappingOption,
    StartOption,
    console,
    duration,
    existing,
    fail,
    given,
    json_default,
    load_mapping,
    moment,
    settings,
    show_data_summary,
    user_errors,
)
from fraud_ray.data import DataValidationError
from fraud_ray.schema import MappingError
from fraud_ray.settings import Settings, SplitLayout

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from fraud_ray.model import FraudModel


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
    validation_folds: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Judge each trial on the mean over this many validation windows, each one "
            "window earlier (default: split.validation_folds).",
        ),
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
    from fraud_ray.training.job import TrainingError
    from fraud_ray.training.job import train as run_training

    split = given(
        validation_window=duration(validation_window, "--validation-window"),
        test_window=duration(test_window, "--test-window"),
        layout=layout,
        validation_folds=validation_folds,
    )
    delay = given(label_delay=duration(label_delay, "--label-delay"))
    base = settings(split=split, features=delay, mlflow=given(model_name=model_name))
    source = existing(data or base.data.raw_dir)
    start, end = moment(train_start, "--train-start"), moment(train_end, "--train-end")
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
    print(json.dumps(result.summary(), default=json_default))


def champion(
    train_if_missing: Annotated[
        bool,
        typer.Option(help="Train a quick model (one trial) when the registry has no champion."),
    ] = False,
    data: DataOption = None,
    trials: Annotated[int, typer.Option(min=1, help="Trials of that quick training.")] = 1,
) -> None:
    """Show the model serving would load; on a fresh machine, train one first."""
    from fraud_ray.training.job import TrainingError, ensure_champion

    try:
        found = ensure_champion(settings(), data, train_if_missing=train_if_missing, trials=trials)
    except (DataValidationError, MappingError, TrainingError, ValueError) as error:
        fail(str(error))
    if found.trained is not None:
        console.print(f"no {found.alias} yet: trained one in {found.trained.seconds:.0f} s")
    console.print(f"[bold]{found.uri}[/bold] is {found.alias} (run {found.version.run_id})")


def promote(
    url: Annotated[
        str | None,
        typer.Option(help="The serving app to reload (default: serving.host and serving.port)."),
    ] = None,
    reload: Annotated[bool, typer.Option(help="Ask the serving app to load it now.")] = True,
) -> None:
    """Make the challenger the champion, then have the running graph serve it.

    The challenger passes the model gate first (its scores on its reference sample), so a version
    the graph would refuse to reload never becomes the champion it loads on its next start.
    """
    from mlflow.exceptions import MlflowException

    from fraud_ray.registry import Registry
    from fraud_ray.schema import ModelRef
    from fraud_ray.serving.client import ReloadError, reload_model, serving_url
    from fraud_ray.serving.gate import admit
    from fraud_ray.serving.pipeline import ModelRefused

    base = settings()
    serving = base.serving
    if serving.challenger_alias is None:
        fail("serving.challenger_alias is null: there is no challenger to promote")
    registry = Registry(base.mlflow)
    try:
        model, found = registry.load(f"@{serving.challenger_alias}")
        ref = ModelRef(name=found.name, version=str(found.version))
        admit(registry, model, ref, serving.min_average_precision)
        old, new = registry.promote(serving.challenger_alias, serving.model_alias)
    except MlflowException as error:
        fail(f"cannot promote {base.mlflow.model_name}@{serving.challenger_alias}: {error.message}")
    except ModelRefused as refused:
        fail(f"not promoted, {serving.model_alias} unchanged: {refused}")
    console.print(
        f"{base.mlflow.model_name}@{serving.model_alias}: version {old} -> [bold]{new}[/bold]"
    )
    if not reload:
        return
    target = url or serving_url(serving)
    try:
        version = reload_model(target, serving)
    except ReloadError as error:
        fail(f"promoted, but {error}; it loads {new} on start")
    console.print(f"{target} now serves version {version}")


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
    """Score transactions in batch with Ray Data and write their decisions to Parquet, deciding
    with the settings' costs as the Serve graph and the stream do."""
    from fraud_ray.costs import CostPolicy
    from fraud_ray.runtime import init_ray
    from fraud_ray.scoring import score_file

    base = settings()
    source = existing(data or base.data.raw_dir)
    begin, finish = moment(start, "--start"), moment(end, "--end")
    fraud_model, version = _registered(base, model)
    init_ray(base)
    with user_errors():
        summary = score_file(
            source,
            fraud_model,
            CostPolicy.from_settings(base.costs),
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
    card precision@k, costs and savings under the settings' costs; plots next to the JSON; ends
    with one JSON line."""
    from fraud_ray.costs import CostPolicy
    from fraud_ray.evaluation import evaluate_model
    from fraud_ray.runtime import init_ray

    base = settings()
    source = existing(data or base.data.raw_dir)
    begin, finish = moment(start, "--start"), moment(end, "--end")
    fraud_model, version = _registered(base, model)
    init_ray(base)
    with user_errors():
        result = evaluate_model(
            fraud_model,
            CostPolicy.from_settings(base.costs),
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


def _registered(base: Settings, model: str) -> tuple[FraudModel, ModelVersion]:
    """The registered model ``--model`` names, or a one-line error naming it."""
    from fraud_ray.registry import Registry

    try:
        return Registry(base.mlflow).load(model)
    except Exception as error:  # MLflow raises its own exception types for unknown names/aliases
        fail(f"--model {model}: {error}")


def _ratio(value: float | None) -> str:
    """Undefined ratios (no label yet) print as a dash, never as 0."""
    return "-" if value is None else f"{value:.3f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"

"""The ``creditops`` command line: each command calls one library function and renders it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from creditops.config import Settings, get_settings
from creditops.exceptions import (
    ConfigurationError,
    CreditOpsError,
    DataValidationError,
    JobError,
)

app = typer.Typer(
    name="creditops",
    help="MLOps for credit scoring: train, track and register default-prediction models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Pipes and CI logs get a fixed, wide layout instead of rich's 80-column guess.
_WIDTH = None if sys.stdout.isatty() else 120
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)


class ProfileChoice(StrEnum):
    fast = "fast"
    full = "full"


def _fail(error: Exception) -> NoReturn:
    console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2 if isinstance(error, DataValidationError) else 1)


def _settings() -> Settings:
    """The settings, or a one-line error naming the invalid variable."""
    try:
        return get_settings()
    except CreditOpsError as error:
        _fail(error)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


@contextmanager
def _stdout_for_json(as_json: bool) -> Iterator[None]:
    """With --json, whatever else writes to stdout while the command works (C libraries, the
    worker processes of a local Dask cluster, which inherit it) goes to stderr: stdout then
    holds the JSON alone."""
    if not as_json:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@app.command()
def datasets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the built-in datasets with rows, target and positive rate."""
    from creditops.data.datasets import describe_catalog

    rows = describe_catalog()
    if as_json:
        _print_json(rows)
        return
    table = Table(title="Built-in datasets")
    table.add_column("name", no_wrap=True)
    for column in ("rows", "target", "positive", "bad rate", "protected", "source"):
        table.add_column(column)
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else str(row["name"])
        table.add_row(
            name,
            f"{row['rows']:,}",
            str(row["target"]),
            str(row["positive"]),
            f"{row['positive_rate']:.1%}",
            ", ".join(row["protected"]) or "-",
            str(row["description"]),
        )
    out.print(table)


class _RichProgress:
    """Draws one bar per candidate, advanced once per grid point or Optuna trial."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, Any] = {}

    def start(self, name: str, label: str, total: int) -> None:
        self._tasks[name] = self._progress.add_task(label, total=total, note="tuning")

    def advance(self, name: str, note: str) -> None:
        self._progress.update(self._tasks[name], advance=1, note=note)

    def finish(self, name: str, note: str) -> None:
        task = self._tasks[name]
        self._progress.update(task, completed=self._progress.tasks[task].total, note=note)


@app.command()
def profile(
    data: Annotated[Path, typer.Argument(help="A CSV (UTF-8, header row) or Parquet file.")],
    spec: Annotated[Path, typer.Option(help="The dataset spec (YAML) naming at least the target.")],
    html: Annotated[
        Path | None, typer.Option(help="Also write the profile as a self-contained HTML page.")
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            help="A registered version or alias (e.g. champion): each feature's PSI against "
            "the rows it was trained on."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """Profile a data file: class balance, each feature's bad rate by bin with WoE and
    information value, single-feature AUC (leakage), correlations, and PSI against a version."""
    from creditops.data.profile import profile_file, render_profile_html
    from creditops.data.spec import DatasetSpec

    settings = _settings()
    try:
        dataset_spec = DatasetSpec.from_yaml(spec)
        reference, reference_name = None, None
        if against is not None:
            from creditops.registry import training_reference

            _, reference, reference_name = training_reference(settings, against)
        result = profile_file(
            data,
            dataset_spec,
            leakage_auc=settings.leakage_auc,
            reference=reference,
            reference_name=reference_name,
        )
    except CreditOpsError as error:
        _fail(error)
    if html is not None:
        html.write_text(render_profile_html(result), encoding="utf-8")
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    _render_profile(result)
    if html is not None:
        out.print(f"HTML: {html}", highlight=False)


def _render_profile(result: Any) -> None:
    balance = result.balance
    head = f"{result.source}: {result.rows:,} rows"
    if balance is not None:
        head += f", {balance.bads:,} bad ({balance.bad_rate:.1%})"
    out.print(f"{head}; profiled in {result.seconds:.1f} s", highlight=False)
    table = Table("feature", "kind", "IV", "strength", "AUC", "missing", "distinct")
    if result.reference:
        table.add_column("PSI")
    for f in result.by_information_value():
        row = [
            f.name + (" (protected)" if f.role == "protected" else ""),
            f.kind,
            "–" if f.information_value is None else f"{f.information_value:.3f}",
            f.strength or "–",
            "–" if f.auc is None else f"{f.auc:.3f}",
            f"{f.missing_rate:.1%}",
            f"{f.distinct:,}",
        ]
        if result.reference:
            row.append("–" if f.psi is None else f"{f.psi:.4f}")
        table.add_row(*row)
    out.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


@app.command()
def train(
    dataset: Annotated[
        str | None, typer.Option(help="Built-in dataset name (see `creditops datasets`).")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Your data: a .csv or .parquet file.")] = None,
    spec: Annotated[Path | None, typer.Option(help="Dataset spec YAML (with --data).")] = None,
    delimiter: Annotated[str, typer.Option(help="CSV delimiter.")] = ",",
    encoding: Annotated[str, typer.Option(help="CSV text encoding.")] = "utf-8",
    profile: Annotated[
        ProfileChoice | None, typer.Option(help="fast: small grids, few trials; full: default.")
    ] = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", help="Train only this candidate (repeatable).")
    ] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the champion.")
    ] = True,
    if_no_champion: Annotated[
        bool, typer.Option(help="Do nothing when a champion is already registered.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed (default from settings).")] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget",
            min=1.0,
            help="Seconds for the whole run; the search stops early to fit it (default: none "
            "up to 10,000 training rows, 300 s above).",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Tune on a Dask cluster: tcp://host:8786, or local[:N] to start N local "
            "workers (default: CREDITOPS_DASK_SCHEDULER, else this process)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train every candidate, track them in MLflow and register the champion with its decision
    policy (recorded as a job: see `creditops jobs list`). With a cluster, Optuna's trials and
    the classical candidates' cross-validation folds run on its workers."""
    from creditops.jobs.runner import TrainingRequest, train_recorded
    from creditops.registry import champion_exists, get_version
    from creditops.scale.cluster import cluster_address
    from creditops.scale.training import training_cluster

    settings = _settings()
    try:
        if if_no_champion and champion_exists(settings):
            version = get_version(settings)
            message = (
                f"champion already registered: {settings.registered_model_name} "
                f"version {version.version}; nothing to train"
            )
            _print_json({"skipped": True, "reason": message}) if as_json else out.print(message)
            return
        request = _request(
            TrainingRequest,
            dataset=dataset,
            data_path=None if data is None else str(data),
            spec_path=None if spec is None else str(spec),
            delimiter=delimiter,
            encoding=encoding,
            profile=profile.value if profile else None,
            models=models or [],
            register_champion=register,
            seed=seed,
            time_budget=time_budget,
            cluster=cluster_address(settings, cluster),
        )
        columns = (
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
        )
        with (
            _stdout_for_json(as_json),
            training_cluster(settings, request.cluster) as place,
            Progress(*columns, console=console, disable=as_json) as bars,
        ):
            result = train_recorded(
                place.settings,
                request,
                requested_by="cli",
                progress=_RichProgress(bars),
                parallel=place.parallel,
            )
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(result.to_dict())
        return
    _render_training(result)


def _request(model: Any, **fields: Any) -> Any:
    """A request model from options, its validation error as a one-line configuration error."""
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())
        raise ConfigurationError(problems) from exc


def _render_training(result: Any) -> None:
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning['message']}", highlight=False)
    table = Table(title=f"{result.dataset}: {result.n_rows:,} rows, {result.positive_rate:.1%} bad")
    headers = (
        "model",
        "CV AUC ± std",
        "gap ± SE",
        "val AUC",
        "test AUC",
        "test KS",
        "test Brier",
        "calib.",
    )
    for header in (*headers, "fit time", ""):
        table.add_column(header, justify="left" if header == "model" else "right", no_wrap=True)
    evidence = result.selection_evidence
    for c in sorted(result.candidates, key=lambda c: -c.cv_auc_mean):
        chosen = evidence.evidence(c.name)
        table.add_row(
            c.name,
            f"{c.cv_auc_mean:.4f} ± {c.cv_auc_std:.4f}",
            f"{chosen.gap:.4f} ± {chosen.gap_se:.4f}" + (" ✓" if chosen.within_rule else ""),
            f"{c.validation['roc_auc']:.4f}",
            f"{c.test['roc_auc']:.4f}",
            f"{c.test['ks']:.4f}",
            f"{c.test['brier']:.4f}",
            c.calibration,
            f"{c.fit_seconds:.1f} s",
            "[bold green]champion[/]" if c.champion else "",
        )
    out.print(table)
    out.print(f"Rule: {evidence.rule} (✓: within it).", highlight=False)
    out.print(f"Selection: {result.selection}.", highlight=False)
    if result.registered_version:
        out.print(
            f"Registered {result.registered_model} version {result.registered_version} "
            "as 'champion'."
        )
    out.print(
        f"Parent run {result.parent_run_id} in {result.tracking_uri}; {result.seconds:.0f} s."
    )


@app.command()
def where(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say where the results are: tracking store, champion, MLflow UI command, reports."""
    from creditops.registry import get_version

    settings = _settings()
    try:
        version = get_version(settings)
    except CreditOpsError as error:
        _fail(error)
    info = {
        "home": str(settings.home),
        "tracking_uri": settings.resolved_tracking_uri,
        "mlflow_ui": f"mlflow ui --backend-store-uri {settings.resolved_tracking_uri}",
        "registered_model": settings.registered_model_name,
        "champion_version": str(version.version) if version else None,
        "champion_tags": dict(version.tags) if version else {},
        "reports_dir": str(settings.reports_dir),
    }
    if as_json:
        _print_json(info)
        return
    out.print(f"State:           {info['home']}", highlight=False)
    out.print(f"Tracking store:  {info['tracking_uri']}", highlight=False)
    if version:
        tags = info["champion_tags"]
        out.print(
            f"Champion:        {settings.registered_model_name} v{version.version} "
            f"({tags.get('candidate', '?')}, test ROC AUC {tags.get('test_roc_auc', '?')})",
            highlight=False,
        )
    else:
        out.print("Champion:        none registered yet (run `creditops train`)")
    out.print(f"MLflow UI:       make mlflow-ui   (or: {info['mlflow_ui']})", highlight=False)
    out.print(f"Reports:         {info['reports_dir']}", highlight=False)


def _evaluation_config(no_mitigation: bool, n_boot: int) -> Any:
    from creditops.evaluation.review import EvaluationConfig

    return EvaluationConfig(mitigation=not no_mitigation, n_boot=n_boot)


@app.command()
def evaluate(
    model_version: Annotated[
        str, typer.Option(help="A version number or an alias (champion, challenger).")
    ] = "champion",
    no_mitigation: Annotated[
        bool, typer.Option(help="Skip the fairness-mitigation comparison.")
    ] = False,
    n_boot: Annotated[int, typer.Option(help="Bootstrap replicates for intervals.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print every figure as JSON.")] = False,
) -> None:
    """Evaluate a registered version on its test split: metrics, fairness, errors, business."""
    from creditops.registry.review import evaluate_version, log_evaluation

    settings = _settings()
    try:
        evaluation = evaluate_version(
            settings, model_version, config=_evaluation_config(no_mitigation, n_boot)
        )
        log_evaluation(evaluation)
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        sys.stdout.write(evaluation.result.model_dump_json(indent=2) + "\n")
        return
    headline = evaluation.result.headline()
    table = Table(title=headline.pop("model"), show_header=False)
    table.add_column("figure")
    table.add_column("value")
    for key, value in headline.items():
        if isinstance(value, float):
            shown = f"{value:.4f}"
        elif isinstance(value, list) and value and isinstance(value[0], float):
            shown = f"[{value[0]:.4f}, {value[1]:.4f}]"
        elif isinstance(value, list):
            shown = "\n".join(value) or "-"
        else:
            shown = str(value)
        table.add_row(key.replace("_", " "), shown)
    out.print(table)


@app.command()
def report(
    model_version: Annotated[
        str, typer.Option(help="A version number or an alias (champion, challenger).")
    ] = "champion",
    output: Annotated[
        Path | None,
        typer.Option(help="Directory for the report (default: CREDITOPS_HOME/reports/...)."),
    ] = None,
    no_mitigation: Annotated[
        bool, typer.Option(help="Skip the fairness-mitigation comparison.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the written paths as JSON.")
    ] = False,
) -> None:
    """Write the HTML report and the Markdown model card, and log both to MLflow."""
    from creditops.registry.review import review_and_store

    settings = _settings()
    config = _evaluation_config(no_mitigation, 1000)
    try:
        _, paths = review_and_store(settings, model_version, config=config, directory=output)
    except CreditOpsError as error:
        _fail(error)
    written = {key: str(path) for key, path in paths.items()}
    if as_json:
        _print_json(written)
        return
    out.print(f"Report:     {written['html']}", highlight=False)
    out.print(f"Model card: {written['model_card']}", highlight=False)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(envvar="CREDITOPS_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, envvar="WEB_CONCURRENCY", help="Worker processes.")
    ] = 1,
) -> None:
    """Serve the champion over HTTP (API docs at /docs, Prometheus metrics at /metrics)."""
    from creditops.registry import prepare_registry
    from creditops.registry.client import bound_registry_requests
    from creditops.serving.access import issue_startup_admin_key
    from creditops.serving.server import serve as run_server

    settings = _settings()
    bound_registry_requests()  # the workers inherit it: a champion check never hangs for long
    settings.ensure_home()
    console.print(f"serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    shown = "localhost" if host in ("0.0.0.0", "::") else host  # nosec B104
    console.print(f"dashboard: http://{shown}:{port}/ui", highlight=False)
    if settings.api_key is None:
        key = issue_startup_admin_key(settings)
        console.print(
            f"no CREDITOPS_API_KEY set: log in with this one-time admin key (valid until the"
            f" server stops; only its hash is stored):\n    {key}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("log in with your CREDITOPS_API_KEY (admin) or a CREDITOPS_READER_KEYS key")
    prepare_registry(settings)  # before any worker starts: they would race to create it
    try:
        status = run_server(host, port, workers)
    except (OSError, ValueError) as error:
        _fail(CreditOpsError(f"cannot serve on {host}:{port}: {error}"))
    raise typer.Exit(status)


@app.command()
def predict(
    source: Annotated[
        str,
        typer.Argument(
            help="Applications: a .csv or .parquet file, a directory of them, or a glob (quote it)."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where the decisions go: a .csv or .parquet file, or a directory "
            "(partitioned Parquet, resumable).",
        ),
    ],
    log: Annotated[
        bool, typer.Option(help="Record the decisions in the decision log (--no-log: what-if).")
    ] = True,
    version: Annotated[
        str | None, typer.Option(help="Model version to use (default: the champion).")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="A Dask scheduler (tcp://host:8786) or local[:N]; default "
            "CREDITOPS_DASK_SCHEDULER. Decisions go to a directory.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Decide every application with the champion, validated first: one bad cell rejects the
    whole input, naming its file, row and column. A directory output is written partition by
    partition, on a Dask cluster when one is given, and a rerun resumes an interrupted run."""
    from creditops.data.io import table_format
    from creditops.registry import CHAMPION
    from creditops.scale import cluster_address, predict_partitioned
    from creditops.serving.batch import predict_file

    settings = _settings()
    settings.ensure_home()
    ref = version or CHAMPION
    single = Path(source).is_file() and table_format(output) is not None
    try:
        if single and cluster is None:
            summary = predict_file(
                settings, Path(source), output, log=log, ref=ref, actor=_cli_actor()
            )
        else:
            if table_format(output) is not None:
                raise ConfigurationError(
                    f"--out {output}: a directory, glob or cluster run writes a directory of "
                    "Parquet parts; name a directory"
                )
            address = cluster_address(settings, cluster)
            with (
                _stdout_for_json(as_json),
                Progress(
                    TextColumn("{task.description:<10}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                    disable=as_json,
                ) as bars,
            ):
                tasks: dict[str, Any] = {}

                def progress(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bars.add_task(stage, total=total)
                    bars.update(tasks[stage], completed=done)

                summary = predict_partitioned(
                    settings,
                    source,
                    output,
                    log=log,
                    ref=ref,
                    cluster=address,
                    progress=progress,
                    actor=_cli_actor(),
                )
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(summary.model_dump())
        return
    counts = ", ".join(f"{n} {label}" for label, n in sorted(summary.decisions.items()))
    out.print(
        f"{summary.rows} application(s) decided by {summary.model_name} v{summary.model_version}"
        f" ({counts}) in {summary.total_seconds:.1f} s"
        + ("" if summary.logged else ", not logged")
        + f"; written to {summary.output}"
        + (
            f" ({summary.partitions_skipped} of {summary.partitions} partitions were already "
            "written: resumed)"
            if getattr(summary, "partitions_skipped", 0)
            else ""
        ),
        highlight=False,
    )


def _duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = text[:-1], text[-1:].lower()
    try:
        seconds = float(value) * units[unit]
    except (KeyError, ValueError):
        raise typer.BadParameter(f"{text!r}: use a number and s, m, h or d, e.g. 1h") from None
    if seconds <= 0:
        raise typer.BadParameter(f"{text!r}: must be positive")
    return seconds


def _print_monitor(report: Any) -> None:
    drift = report.drift
    line = (
        f"{report.model_name} v{report.model_version}: {report.rows} decision(s) ({report.source})"
    )
    out.print(line, highlight=False)
    if drift is not None:
        psi = (drift.get("prediction") or {}).get("psi")
        out.print(
            f"  data drift: {drift['level']} ({drift['n_drifted']}/{drift['n_features']} features"
            f", share {drift['drift_share']:.2f})"
            + ("" if psi is None else f"; prediction PSI {psi:.3f}"),
            highlight=False,
        )
    for alert in report.alerts:
        out.print(
            f"  [{alert['level']}] {alert['check']}: {alert['message']}",
            highlight=False,
            markup=False,
        )
    for note in report.notes:
        out.print(f"  note: {note}", highlight=False)
    out.print(f"  level: {report.level}; run {report.run_id}", highlight=False)


@app.command()
def monitor(
    every: Annotated[
        str | None,
        typer.Option(
            help="Run on this schedule (e.g. 1h, 30m) in this process, never overlapping."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Monitor this file of applications instead of the decision log."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run every monitoring check once (for cron) or on a schedule: data and prediction drift,
    realised and estimated performance, fairness; alerts stored, logged and exported."""
    from creditops.monitoring.monitor import run_every, run_monitor
    from creditops.registry.client import bound_registry_requests

    settings = _settings()
    bound_registry_requests()  # a tracking server that is down fails the run in seconds
    settings.ensure_home()

    def once() -> None:
        report = run_monitor(settings, data=data)
        if as_json:
            _print_json(report.to_dict())
        else:
            _print_monitor(report)

    if every is None:
        try:
            once()
        except CreditOpsError as error:
            _fail(error)
        return

    def scheduled() -> None:
        try:
            once()
        except CreditOpsError as error:  # a failed run is reported; the schedule goes on
            console.print(f"[bold red]monitor run failed:[/] {error}", highlight=False)

    run_every(_duration_seconds(every), scheduled)


@app.command()
def simulate(
    drift: Annotated[
        str,
        typer.Option(help="Scenario: none, income_shock, new_segment, rising_defaults."),
    ] = "none",
    rows: Annotated[int, typer.Option(min=1, help="Applications to send.")] = 1000,
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    feedback: Annotated[
        bool, typer.Option(help="Send each decision's outcome back through /feedback/batch.")
    ] = True,
    feedback_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds between the decisions and their outcomes.")
    ] = 0.0,
    dataset: Annotated[str, typer.Option(help="Built-in dataset to draw from.")] = "credit_data",
    seed: Annotated[int, typer.Option(help="Random seed of the draw.")] = 0,
    key: Annotated[
        str | None,
        typer.Option(
            envvar="CREDITOPS_CLIENT_KEY",
            help="A key holding the decide and analyst roles (default: CREDITOPS_API_KEY).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Send production-like traffic to a running service, optionally shifted, with outcomes fed
    back: a way to watch drift appear, alerts fire and a retrain happen."""
    from creditops.simulation import simulate as run

    try:
        report = run(
            url,
            drift,
            rows,
            dataset=dataset,
            seed=seed,
            feedback=feedback,
            feedback_delay_s=feedback_delay,
            key=key or _settings().api_key,
        )
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(report.to_dict())
    else:
        counts = ", ".join(f"{n} {label}" for label, n in report.decisions.items())
        out.print(
            f"{report.scenario}: {report.rows_decided}/{report.rows_sent} decided ({counts}); "
            f"{report.feedback_sent} outcome(s) fed back in {report.seconds:.1f} s",
            highlight=False,
        )
        for status, n in report.errors.items():
            out.print(f"  {n} failed request(s): {status}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command("retrain")
def retrain_command(
    force: Annotated[bool, typer.Option(help="Retrain even if no trigger fired.")] = False,
    auto_promote: Annotated[
        bool | None,
        typer.Option(help="Promote when every gate passes (default: the config's, off)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Retrain if a trigger fired (AUC drop, lasting critical drift, many features drifted,
    schedule) or --force: register a challenger, compare it with the champion on recent
    labelled decisions, and promote it only through the gates. Always audited."""
    from creditops.registry.client import bound_registry_requests
    from creditops.retraining import (
        decide_retrain,
        record_no_retrain,
        retrain,
        retrain_config,
    )

    settings = _settings()
    bound_registry_requests()  # a tracking server that is down fails the retrain in seconds
    settings.ensure_home()
    try:
        config = retrain_config(settings)
        if auto_promote is not None:
            config = config.model_copy(update={"auto_promote": auto_promote})
        decision = decide_retrain(settings, config, force=force)
        if not decision.retrain:
            entry = record_no_retrain(settings, decision)
            if as_json:
                _print_json({"outcome": "skipped", "message": entry.message, "reasons": []})
            else:
                out.print(entry.message, highlight=False)
            return
        result = retrain(settings, config, decision)
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(result.to_dict())
        return
    for reason in result.reasons:
        out.print(f"trigger: {reason}", highlight=False)
    for gate in result.gates:
        out.print(
            f"  [{'pass' if gate.passed else 'FAIL'}] {gate.name}: {gate.message}",
            highlight=False,
            markup=False,
        )
    out.print(f"{result.outcome}: {result.message}", highlight=False)


@app.command("promote")
def promote_command(
    version: Annotated[
        str | None, typer.Argument(help="Version to promote (default: the challenger).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Promote even if its gates did not pass.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why: kept in the audit entry.")] = None,
) -> None:
    """Make the challenger the champion, if its retrain passed every gate (audited). A running
    service follows within CREDITOPS_CHAMPION_POLL_SECONDS."""
    from creditops.retraining import promote_challenger

    settings = _settings()
    with _registry_errors(settings):
        entry = promote_challenger(settings, version=version, force=force, reason=reason)
    _print_change(entry)


@app.command("rollback")
def rollback_command(
    reason: Annotated[str | None, typer.Option(help="Why: kept in the audit entry.")] = None,
) -> None:
    """Return the champion alias to the previous champion (audited)."""
    from creditops.retraining import rollback

    settings = _settings()
    with _registry_errors(settings):
        entry = rollback(settings, reason=reason)
    _print_change(entry)


@contextmanager
def _registry_errors(settings: Settings) -> Iterator[None]:
    """Around a command that moves an alias: MLflow's client bounded (a tracking server that
    is down fails it in seconds, not minutes), and its failure a one-line error naming the
    registry, exit 1, instead of a traceback."""
    from mlflow.exceptions import MlflowException

    from creditops.registry.client import bound_registry_requests, is_not_found, unavailable

    bound_registry_requests()
    try:
        yield
    except CreditOpsError as error:
        _fail(error)
    except MlflowException as error:
        _fail(error if is_not_found(error) else unavailable(settings, error))


def _print_change(entry: Any) -> None:
    """A champion change that happened, and whether its audit entry could be written."""
    out.print(entry.message, highlight=False)
    if "audit_error" in entry.details:
        console.print(
            f"warning: not written to the audit: {entry.details['audit_error']}",
            highlight=False,
            markup=False,
        )


canary = typer.Typer(
    help="The challenger as a canary (CREDITOPS_CANARY_SHARE): its state, halt, resume.",
    no_args_is_help=True,
)
app.add_typer(canary, name="canary")


@canary.command("status")
def canary_status_command() -> None:
    """The canary of the version holding the challenger alias: its state and its audit."""
    from creditops.registry import champion_and_challenger
    from creditops.serving.canary import canary_entries, canary_state
    from creditops.store.audit import AuditLog

    settings = _settings()
    with _registry_errors(settings), AuditLog.from_settings(settings) as audit:
        champion, challenger = champion_and_challenger(settings)
        state = canary_state(audit, challenger)
        entries = canary_entries(audit, challenger) if challenger is not None else []
    out.print(
        f"champion {champion or '-'}, challenger {challenger or '-'}: canary {state} "
        f"(CREDITOPS_CANARY_SHARE here: {settings.canary_share:g})",
        highlight=False,
    )
    for entry in entries:
        failed = "; ".join(g.message for g in entry.gates if not g.passed)
        out.print(
            f"{entry.finished_at:%Y-%m-%d %H:%M:%S} {entry.outcome:<8} {entry.message}"
            + (f" [{failed}]" if failed else ""),
            highlight=False,
            markup=False,
        )


def _switch_canary(outcome: str, reason: str | None) -> None:
    from creditops.registry import champion_and_challenger
    from creditops.serving.canary import switch_canary
    from creditops.store.audit import AuditLog

    settings = _settings()
    with _registry_errors(settings), AuditLog.from_settings(settings) as audit:
        champion, challenger = champion_and_challenger(settings)
        if challenger is None:
            _fail(CreditOpsError("no canary: no version holds the challenger alias"))
        entry = switch_canary(
            audit, outcome, challenger=challenger, champion=champion, by="cli", reason=reason
        )
    out.print(
        f"{entry.message}; every server worker follows within CREDITOPS_CHAMPION_POLL_SECONDS",
        highlight=False,
    )


@canary.command("halt")
def canary_halt_command(
    reason: Annotated[str | None, typer.Option(help="Why: kept in the audit entry.")] = None,
) -> None:
    """Stop the canary: the champion makes every decision again (audited)."""
    _switch_canary("halted", reason)


@canary.command("resume")
def canary_resume_command(
    reason: Annotated[str | None, typer.Option(help="Why: kept in the audit entry.")] = None,
) -> None:
    """Let a halted canary decide its share again, judged afresh (audited)."""
    _switch_canary("resumed", reason)


predictions = typer.Typer(help="The decision log.", no_args_is_help=True)
app.add_typer(predictions, name="predictions")


@predictions.command("export")
def export_predictions(
    path: Annotated[Path, typer.Argument(help="Output file: .csv or .parquet.")],
) -> None:
    """Write every logged decision, with its outcome when known, to CSV or Parquet."""
    from creditops.store.predlog import PredictionLog

    settings = _settings()
    try:
        log = PredictionLog.from_settings(settings)
        try:
            rows = log.export(path)
        finally:
            log.close()
    except CreditOpsError as error:
        _fail(error)
    out.print(f"{rows} decision(s) written to {path}", highlight=False)


db = typer.Typer(
    help="The creditops database: its schema revision, and upgrading it.", no_args_is_help=True
)
app.add_typer(db, name="db")


def _print_schema(status: Any, as_json: bool) -> None:
    if as_json:
        _print_json(status.to_dict())
        return
    state = "up to date" if status.up_to_date else f"behind (head {status.head})"
    out.print(f"{status.url}: revision {status.current or 'none'}, {state}", highlight=False)
    if status.adopted:
        out.print("adopted a database created before migrations", highlight=False)
    if status.applied:
        out.print(f"applied: {', '.join(status.applied)}", highlight=False)


@db.command("upgrade")
def db_upgrade(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Upgrade the database (CREDITOPS_DATABASE_URL, or SQLite in CREDITOPS_HOME) to the
    schema this creditops needs. Every command does this on its own; run it to do it first."""
    from creditops.store.schema import upgrade_database

    settings = _settings()
    try:
        if not settings.database_url:
            settings.ensure_home()
        status = upgrade_database(settings.resolved_database_url)
    except CreditOpsError as error:
        _fail(error)
    _print_schema(status, as_json)


@db.command("current")
def db_current(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the database's schema revision and the one this creditops needs (changes nothing)."""
    from creditops.store.schema import database_status

    settings = _settings()
    try:
        status = database_status(settings.resolved_database_url)
    except CreditOpsError as error:
        _fail(error)
    _print_schema(status, as_json)


jobs = typer.Typer(
    help="Background jobs: training from the dashboard or the command line.",
    no_args_is_help=True,
)
app.add_typer(jobs, name="jobs")


@jobs.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest first, at most.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The newest jobs (dead ones are marked failed first)."""
    from creditops.jobs.runner import describe, dispatch
    from creditops.store.jobs import JobStore

    settings = _settings()
    try:
        with JobStore.from_settings(settings) as store:
            dispatch(settings, store)  # reaps dead jobs, starts queued ones a slot is free for
            rows = describe(store.list(state=state, limit=limit))  # type: ignore[arg-type]
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "kind", "state", "by", "created", "elapsed", "version", "message")
    for row in rows:
        elapsed = "–" if row["elapsed_s"] is None else f"{row['elapsed_s']:.0f} s"
        table.add_row(
            row["id"][:8],
            row["kind"],
            row["state"],
            row["requested_by"],
            row["created_at"],
            elapsed,
            row["model_version"] or "–",
            (row["message"] or "")[:80],
        )
    out.print(table)


@jobs.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job's id (or the start of it).")],
) -> None:
    """One job in full, as JSON: parameters, process, progress, outcome."""
    from creditops.store.jobs import JobStore

    settings = _settings()
    try:
        with JobStore.from_settings(settings) as store:
            _print_json(_find_job(store, job_id).model_dump(mode="json"))
    except CreditOpsError as error:
        _fail(error)


@jobs.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id (or the start of it).")],
) -> None:
    """Cancel a queued job or stop a running one."""
    from creditops.jobs.runner import cancel_job
    from creditops.store.jobs import JobStore

    settings = _settings()
    try:
        with JobStore.from_settings(settings) as store:
            job = _find_job(store, job_id)
        job = cancel_job(settings, job.id, by="cli")
    except CreditOpsError as error:
        _fail(error)
    out.print(f"job {job.id}: {job.state}" + (" (stopping)" if job.state == "running" else ""))


@jobs.command("run", hidden=True)
def jobs_run(job_id: Annotated[str, typer.Argument()]) -> None:
    """Run a claimed job in this process (the job runner starts this)."""
    from creditops.jobs.runner import run_job

    settings = _settings()
    try:
        job = run_job(settings, job_id)
    except CreditOpsError as error:
        _fail(error)
    out.print(f"job {job.id}: {job.state}", highlight=False)
    if job.state != "succeeded":
        raise typer.Exit(code=1)


def _find_job(store: Any, prefix: str) -> Any:
    matches = [job for job in store.list(limit=1000) if job.id.startswith(prefix)]
    if len(matches) != 1:
        raise JobError(
            f"no job {prefix}" if not matches else f"{prefix} matches {len(matches)} jobs"
        )
    return matches[0]


keys = typer.Typer(
    help="API keys: each named, holding roles (decide, analyst, admin), shown once.",
    no_args_is_help=True,
)
app.add_typer(keys, name="keys")


def _expiry(text: str | None) -> Any:
    """``90d``, ``12h``, ``4w`` from now, or a date / ISO time (UTC unless it says)."""
    from datetime import UTC, datetime, timedelta

    if text is None:
        return None
    units = {"h": 3600, "d": 86400, "w": 7 * 86400}
    if text[-1:].lower() in units and text[:-1].isdigit():
        return datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * units[text[-1:].lower()])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: use 90d, 12h, 4w, or a date such as 2027-06-30"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli ({getpass.getuser()})"
    except (KeyError, OSError):
        return "cli"


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for; recorded with what it does.")],
    role: Annotated[
        list[str], typer.Option(help="decide, analyst or admin; repeat or comma-separate.")
    ],
    expires: Annotated[
        str | None, typer.Option(help="90d, 12h, 4w, or a date (UTC); default: never.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a key and print it, this once: only a salted hash of it is kept."""
    from creditops.store.keys import KeyStore

    settings = _settings()
    try:
        with KeyStore.from_settings(settings) as store:
            created = store.create(name, role, created_by=_cli_actor(), expires_at=_expiry(expires))
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json({"key": created.key, **created.record.model_dump(mode="json")})
        return
    record = created.record
    out.print(f"key {record.name!r} ({', '.join(record.roles)}):", highlight=False)
    out.print(created.key, highlight=False, soft_wrap=True)
    out.print(
        "Shown this once; send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        + (f"; expires {record.expires_at.isoformat()}" if record.expires_at else ""),
        highlight=False,
    )


@keys.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every key: name, roles, state, who created it and when (never the key)."""
    from creditops.store.keys import KeyStore

    settings = _settings()
    try:
        with KeyStore.from_settings(settings) as store:
            records = store.list()
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json([{**r.model_dump(mode="json"), "state": r.state} for r in records])
        return
    table = Table("name", "roles", "state", "created", "by", "expires")
    for r in records:
        table.add_row(
            r.name,
            ", ".join(r.roles),
            r.state,
            r.created_at.isoformat(timespec="seconds"),
            r.created_by,
            r.expires_at.isoformat(timespec="seconds") if r.expires_at else "never",
        )
    out.print(table)


@keys.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: refused everywhere within seconds (its name stays in the records)."""
    from creditops.store.keys import KeyStore

    settings = _settings()
    try:
        with KeyStore.from_settings(settings) as store:
            record = store.revoke(name, revoked_by=_cli_actor())
    except CreditOpsError as error:
        _fail(error)
    out.print(f"key {record.name!r} revoked", highlight=False)


@keys.command("pii-key")
def keys_pii_key() -> None:
    """Print a new key for personal data in the decision log (CREDITOPS_PII_KEY). To rotate,
    put the new key first and keep the old one after it, comma-separated: new data is sealed
    with the first, and every key listed opens what it sealed."""
    from creditops.store.pii import new_pii_key

    out.print(new_pii_key(), highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# The decision log's chains: verify, sign, export; retention; the service role's rights
# ---------------------------------------------------------------------------------------------

audit = typer.Typer(
    help="The decision log's hash chains and signed checkpoints: verify, sign, export.",
    no_args_is_help=True,
)
app.add_typer(audit, name="audit")


def _moment(text: str | None, option: str) -> Any:
    """An ISO date or time (UTC unless it says), or None."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: use a date or ISO time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _audit_key(settings: Settings, *, required: str | None = None) -> Any:
    """The audit key, or None; with ``required`` (what needs it) its absence fails clearly."""
    from creditops.store.checkpoints import AuditKey

    try:
        key = AuditKey.from_settings(settings)
    except CreditOpsError as error:
        _fail(error)
    if key is None and required is not None:
        _fail(
            ConfigurationError(
                f"{required} needs the audit key: set CREDITOPS_AUDIT_KEY (at least 32 bytes, "
                "e.g. `openssl rand -hex 32`) or CREDITOPS_AUDIT_KEY_FILE, kept outside the "
                "database"
            )
        )
    return key


def _open_log(settings: Settings) -> Any:
    """The decision log as a reader and signer: it writes no chain of its own."""
    from creditops.store.predlog import PredictionLog

    return PredictionLog.from_settings(settings, audit_key=None)  # makes a fresh home first


@audit.command("verify")
def audit_verify(
    since: Annotated[
        str | None, typer.Option("--from", help="Only decisions made from (a date or time).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Only decisions made before (a date or time).")
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="Checkpoints exported earlier (audit checkpoints --export)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Hash every chain of the decision log again and check it against the signed checkpoints;
    names the first edited, deleted, inserted or reordered row of each chain. Exit status 1
    on any break."""
    from creditops.store.chain_audit import verify_log

    settings = _settings()
    key = _audit_key(settings)
    try:
        with _open_log(settings) as log:
            report = verify_log(
                log,
                key,
                since=_moment(since, "--from"),
                until=_moment(until, "--to"),
                exported=checkpoints,
            )
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(report.to_dict())
    else:
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        for item in report.breaks:
            where = " ".join(
                part
                for part in (
                    f"chain {item.chain}" if item.chain else "",
                    f"seq {item.seq}" if item.seq is not None else "",
                    f"prediction {item.prediction_id}" if item.prediction_id else "",
                )
                if part
            )
            out.print(f"{item.kind.upper()}: {where}: {item.detail}", highlight=False)
        state = "OK" if report.ok else f"BROKEN ({len(report.breaks)} break(s))"
        signed = (
            f", {report.checkpoints} checkpoint(s), {report.unsigned_rows} row(s) after the "
            "newest signed heads"
            if report.signed
            else ", checkpoints not checked (no key)"
        )
        out.print(
            f"{state}: {report.rows} decision(s) in {report.chains} chain(s){signed}",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(code=1)


@audit.command("reads")
def audit_reads(
    prediction_id: Annotated[
        str | None, typer.Option("--prediction-id", help="Only the reads of this decision.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only the reads by this key's name.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Who read what: each explanation and each opening of a decision's personal data, by the
    name of the key that asked."""
    from creditops.store.access_log import read_access

    settings = _settings()
    try:
        with _open_log(settings) as log:
            reads = read_access(log, prediction_id=prediction_id, actor=actor, limit=limit)
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in reads])
        return
    table = Table("when", "who", "what", "decision", "version")
    for r in reads:
        table.add_row(
            r.created_at.isoformat(timespec="seconds"),
            r.actor,
            r.action,
            r.prediction_id or "–",
            r.model_version or "–",
        )
    out.print(table)


@audit.command("checkpoint")
def audit_checkpoint(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sign every chain's head as the database holds it now (refused when a chain no longer
    holds what was signed before). Run it after upgrading, and from cron if you like."""
    from creditops.store.chain_audit import sign_chains

    settings = _settings()
    key = _audit_key(settings, required="signing a checkpoint")
    try:
        with _open_log(settings) as log:
            checkpoint = sign_chains(log, key)
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(checkpoint.model_dump(mode="json", exclude={"body"}))
        return
    out.print(
        f"checkpoint {checkpoint.seq}: {len(checkpoint.heads)} chain(s) signed", highlight=False
    )


@audit.command("checkpoints")
def audit_checkpoints(
    export: Annotated[
        Path | None, typer.Option(help="Write them to this file (JSON lines) to keep elsewhere.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the signed checkpoints, or export them so a truncation is seen even if the
    database's own copies are deleted (audit verify --checkpoints FILE)."""
    from creditops.store.checkpoints import Checkpoint, export_checkpoints, read_checkpoints

    settings = _settings()
    try:
        with _open_log(settings) as log:
            stored = log.read(read_checkpoints)
        checkpoints = [Checkpoint.parse(seq, body, mac) for seq, _, _, body, mac in stored]
        if export is not None:
            count = export_checkpoints(checkpoints, export)
            out.print(f"{count} checkpoint(s) written to {export}", highlight=False)
            return
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json([c.model_dump(mode="json", exclude={"body"}) for c in checkpoints])
        return
    table = Table("seq", "created", "kind", "chains", "key id")
    for c in checkpoints:
        table.add_row(
            str(c.seq),
            c.created_at.isoformat(timespec="seconds"),
            c.kind,
            str(len(c.heads)),
            c.key_id,
        )
    out.print(table)


@predictions.command("purge")
def purge_predictions(
    older_than: Annotated[
        str,
        typer.Option(help="25m (months; Reg B), 2y, 90d, 12w: decisions older than this go."),
    ],
    force: Annotated[
        bool, typer.Option(help="Allow a period under 6 months (the EU AI Act's minimum).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete decisions (and their outcomes) older than the retention period, after checking
    the log verifies; each chain is cut at one place and the cut signed, so audit verify
    still verifies what is left. Run it with the database's owner, not the service's role."""
    from creditops.store.retention import purge_decisions

    settings = _settings()
    key = _audit_key(settings, required="a purge")
    try:
        with _open_log(settings) as log:
            result = purge_decisions(log, key, older_than, force=force)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--older-than") from None
    except CreditOpsError as error:
        _fail(error)
    if as_json:
        _print_json(result.to_dict())
        return
    out.print(
        f"{result.decisions} decision(s) and {result.outcomes} outcome(s) made before "
        f"{result.cutoff.isoformat(timespec='seconds')} deleted from {result.chains} chain(s)"
        + (f"; cut signed as checkpoint {result.checkpoint}" if result.checkpoint else ""),
        highlight=False,
    )


@db.command("grant")
def db_grant(
    role: Annotated[str, typer.Argument(help="The service's PostgreSQL role.")],
) -> None:
    """Give the service's role what it needs and no more: insert and read on the decision log
    (never update, delete or truncate), read/write on the other tables. Run as their owner."""
    from creditops.store.grants import grant_service_role
    from creditops.store.schema import upgrade_database

    settings = _settings()
    try:
        upgrade_database(settings.resolved_database_url)
        with _open_log(settings) as log:
            statements = log.transact(lambda conn: grant_service_role(conn, role))
    except CreditOpsError as error:
        _fail(error)
    out.print(f"{len(statements)} grant statement(s) applied to {role}", highlight=False)


def main() -> None:  # pragma: no cover - entry point for `python -m creditops.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

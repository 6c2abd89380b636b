"""`lerobot-assets sql`: read-only SQL over the metadata of every dataset (registered on cli.app).

Exit codes: 0 ok; 1 the data could not be read (unreadable shard of a --root, not a dataset root, missing
home, broken project); 2 bad SQL, a refused (writing) statement, or a bad --var. Errors go to stderr as
one message, never a traceback. A dataset found under the home with an unreadable file is left out with a
`warning:` line on stderr naming it and the problem.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from enum import StrEnum
from typing import Any

import typer

from lerobot_assets.cli import app

EXIT_DATA_ERROR = 1
EXIT_BAD_QUERY = 2
EXIT_USAGE = 2


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("sql")
def sql_command(
    query: str = typer.Argument(None, help="One read-only statement: SELECT / WITH / FROM / DESCRIBE / SUMMARIZE / SHOW."),
    home: str = typer.Option(
        None,
        "--home",
        help="Data home searched for datasets (any folder with meta/info.json, at any depth). "
        "Default: $LEROBOT_ASSETS_HOME, else ./.demo_home; with --root and no --home, no home: only the roots "
        "are queried. Local path or fsspec URL.",
    ),
    root: list[str] = typer.Option(
        [],
        "--root",
        help="A dataset root (local path or URL such as s3://bucket/ds); repeatable. Without --home only the "
        "roots are queried. Its `dataset` name is the last path component. A published prefix (holding "
        "current.json) is read at the version it points at.",
    ),
    output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
    list_relations: bool = typer.Option(False, "--list", help="List the views (sources and models) and their columns."),
    storage_option: list[str] = typer.Option(
        [],
        "--storage-option",
        help="fsspec option key=value for remote roots (repeatable), e.g. endpoint_url=http://127.0.0.1:9000, "
        "anon=true, client_kwargs.region_name=us-east-1. An S3 endpoint can also come from the env "
        "AWS_ENDPOINT_URL or FSSPEC_S3_ENDPOINT_URL; credentials from the usual AWS env vars.",
    ),
    var: list[str] = typer.Option(
        [],
        "--var",
        help="Model variable NAME=VALUE (e.g. min_episode_seconds=2); repeatable. The value is a literal (a JSON "
        "number, list, true/false, or else a string) of the same kind as the var's default, never SQL.",
    ),
    max_rows: int = typer.Option(100, "--max-rows", help="Rows shown by --format table (csv/json print all)."),
    catalog: str = typer.Option(
        None,
        "--catalog",
        help="The DuckDB catalog whose tables answer for unchanged files (default: <home>/catalog/metadata.duckdb). "
        "Its tables are used only when their recorded inputs equal the files now; it is never written.",
    ),
    no_catalog: bool = typer.Option(False, "--no-catalog", help="Compute every model from the files, ignoring the catalog."),
) -> None:
    """Query episodes, frames, tasks, info, stats and every SQL model with DuckDB (read-only).

    Views: the sources (episodes, episode_videos, frames, tasks, info, stats, cameras, video_files,
    byte_index), each with a `dataset` column, and every model of dbt_style_sql/ (stg_*, episode_quality,
    task_summary, dataset_summary, camera_summary, ...). Writes and DDL are refused.
    """
    from lerobot_assets.sql import (
        ProjectLoadError,
        QueryError,
        QuerySession,
        SourceError,
        VarError,
        check_home,
        default_home,
        parse_storage_options,
        parse_vars,
    )

    if not list_relations and not query:
        typer.echo("error: give a QUERY, or --list to see the views", err=True)
        raise typer.Exit(EXIT_BAD_QUERY)
    # --root alone means exactly those datasets: a .demo_home in the working directory must not join in.
    home = home if home is not None or root else default_home()
    try:
        variables = parse_vars(var)
        options = parse_storage_options(storage_option)
        if home is not None:
            check_home(home, options, hint=" (give --home DIR, set LEROBOT_ASSETS_HOME, or query datasets with --root)")
        session = QuerySession.open(
            home,
            root,
            storage_options=options,
            vars=variables,
            use_catalog=not no_catalog,
            catalog_path=catalog,
        )
    except VarError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (SourceError, ProjectLoadError, QueryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_DATA_ERROR) from None

    with session:
        _warn_skipped(session.skipped)
        if not session.datasets and not session.skipped:
            typer.echo(f"note: no datasets found under {home} (and no --root)", err=True)
        if session.catalog_note:
            typer.echo(f"note: {session.catalog_note}", err=True)
        if list_relations:
            _print_relations(session.relations(), output_format)
            return
        try:
            if output_format is OutputFormat.table:
                rel = session.relation(query)
                if rel is None:
                    return
                width = shutil.get_terminal_size((200, 24)).columns
                text = _render_table(session, rel, max_rows=max_rows, max_width=width)
                typer.echo(text)
            else:
                columns, rows = session.rows(query)
                if output_format is OutputFormat.csv:
                    _write_csv(columns, rows)
                else:
                    typer.echo(json.dumps([dict(zip(columns, (_jsonable(v) for v in r))) for r in rows], indent=1))
        except QueryError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_QUERY) from None


@app.command("catalog")
def catalog_command(
    home: str = typer.Option(
        None,
        "--home",
        help="Data home (default: $LEROBOT_ASSETS_HOME, else ./.demo_home; with --root and no --home, no home: "
        "only the roots are built). Local path or fsspec URL.",
    ),
    root: list[str] = typer.Option(
        [], "--root", help="A dataset root (path or URL); repeatable. Without --home only the roots are built."
    ),
    catalog: str = typer.Option(
        None,
        "--catalog",
        help="The catalog file (default: <home>/catalog/metadata.duckdb; required for a remote home, and for "
        "--root without --home).",
    ),
    model: list[str] = typer.Option([], "--model", help="Only this model and what it refs; repeatable."),
    force: bool = typer.Option(False, "--force", help="Rebuild every table and recompute every file."),
    create: bool = typer.Option(
        False, "--create", help="Create the data home if it does not exist (without it, a missing home is an error)."
    ),
    storage_option: list[str] = typer.Option([], "--storage-option", help="fsspec option key=value (repeatable)."),
    var: list[str] = typer.Option(
        [], "--var", help="Model variable NAME=VALUE, a literal of its default's kind (as for `sql`); repeatable."
    ),
) -> None:
    """Materialize the SQL models into the DuckDB catalog, as the Dagster assets do (without Dagster).

    Tables whose inputs did not change are kept; incremental models recompute only new or changed
    files. `lerobot-assets sql` then answers from the catalog wherever it is current. Data tests are
    not run here (they are the assets' checks).
    """
    from tqdm import tqdm

    from lerobot_assets.sql import (
        Catalog,
        ProjectLoadError,
        QueryError,
        SourceError,
        SqlError,
        VarError,
        check_home,
        default_home,
        parse_storage_options,
        parse_vars,
    )

    if root and home is None and catalog is None:
        # Without a home there is nowhere implied to put the catalog; the default home is not the roots' place.
        typer.echo("error: --root without --home builds a catalog of those roots only: give --catalog FILE (or --home DIR)", err=True)
        raise typer.Exit(EXIT_USAGE)
    home = home if home is not None or root else default_home()
    cat = None
    try:
        variables = parse_vars(var)
        options = parse_storage_options(storage_option)
        if home is not None:
            check_home(home, options, create=create, hint=" (pass --create to start a new data home there)")
        cat = Catalog(
            home,
            roots=root,
            storage_options=options,
            path=catalog,
            vars=variables,
        )
        names = model or None
        unknown = [m for m in model if m not in cat.project.models]
        if unknown:
            raise SqlError(f"unknown model(s): {', '.join(unknown)} (models: {', '.join(cat.project.models)})")
        total = len(cat.project.ancestors(names) if names else cat.project.models)
        with tqdm(total=total, unit="model", file=sys.stderr, leave=False) as bar:

            def report(result: Any) -> None:
                bar.update(1)
                if result.files_computed is not None:
                    how = f"{result.files_computed} files computed, {result.files_reused} reused, {result.files_removed} removed"
                elif result.up_to_date:
                    how = "up to date"
                else:
                    how = "built" if result.materialized == "table" else "view"
                bar.write(f"{result.name:<28} {result.materialized:<12} {result.row_count:>10,} rows  {how}  ({result.duration_s:.2f} s)")

            cat.materialize_all(names, force=force, progress=report)
    except VarError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (SourceError, ProjectLoadError, QueryError, SqlError) as exc:
        if cat is not None:
            _warn_skipped(cat.skipped)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_DATA_ERROR) from None
    _warn_skipped(cat.skipped)
    typer.echo(f"catalog: {cat.path}")


def _warn_skipped(skipped: list[Any]) -> None:
    """One stderr line per dataset left out because a file of it cannot be read."""
    for dataset in skipped:
        typer.echo(f"warning: skipped dataset {dataset}", err=True)


def _render_table(session: Any, rel: Any, *, max_rows: int, max_width: int) -> str:
    """DuckDB's own box rendering (types under names, long results elided in the middle)."""
    import duckdb

    try:
        # `show` prints through Python's stdout; capture it so errors raised while executing are caught
        # before anything is printed and the output can go through typer like everything else.
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            session.interruptible(lambda: rel.show(max_rows=max_rows, max_width=max_width))
        return buffer.getvalue().rstrip("\n")
    except duckdb.Error as exc:
        raise session.query_error(exc) from exc


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # dates, decimals, UUIDs, bytes


def _write_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            "" if v is None else json.dumps(_jsonable(v)) if isinstance(v, (list, tuple, dict)) else v for v in row
        )
    sys.stdout.flush()


def _print_relations(relations: list[Any], output_format: OutputFormat) -> None:
    if output_format is OutputFormat.json:
        typer.echo(
            json.dumps(
                [
                    {"name": r.name, "kind": r.kind, "detail": r.detail, "description": r.description,
                     "columns": [{"name": c, "type": t} for c, t in r.columns]}
                    for r in relations
                ],
                indent=1,
            )
        )
        return
    if output_format is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["relation", "kind", "column", "type"])
        for r in relations:
            for c, t in r.columns:
                writer.writerow([r.name, r.kind, c, t])
        return
    for r in relations:
        typer.echo(f"{r.name}  [{r.detail}]")
        if r.description:
            typer.echo(f"  {r.description}")
        width = max((len(c) for c, _ in r.columns), default=0)
        for c, t in r.columns:
            typer.echo(f"    {c.ljust(width)}  {t}")
        typer.echo("")

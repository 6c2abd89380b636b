"""The dbt-style project loader: the real project's DAG, and load-time errors with file, line and name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lerobot_assets.sql import ProjectLoadError, default_project_dir, load_project

REAL = default_project_dir()

# A snapshot of the DAG: an accidental change of lineage shows up here.
EXPECTED_MODELS = {
    "stg_byte_index": ("view", [], ["byte_index"]),
    "stg_cameras": ("view", [], ["lerobot_dataset"]),
    "stg_episode_videos": ("view", [], ["lerobot_dataset"]),
    "stg_episodes": ("view", [], ["lerobot_dataset"]),
    "stg_frames": ("view", [], ["lerobot_dataset"]),
    "stg_info": ("view", [], ["lerobot_dataset"]),
    "stg_stats": ("view", [], ["lerobot_dataset"]),
    "stg_tasks": ("view", [], ["lerobot_dataset"]),
    "stg_video_files": ("view", [], ["lerobot_dataset"]),
    "int_episode_frame_checks": ("incremental", ["stg_frames"], []),
    "episode_quality": (
        "table",
        ["int_episode_frame_checks", "stg_byte_index", "stg_episode_videos", "stg_episodes", "stg_info"],
        [],
    ),
    "task_summary": ("table", ["stg_episodes", "stg_info", "stg_tasks"], []),
    "dataset_summary": (
        "table",
        ["episode_quality", "stg_cameras", "stg_episodes", "stg_info", "stg_tasks", "stg_video_files"],
        [],
    ),
    "camera_summary": ("table", ["stg_cameras", "stg_episode_videos", "stg_episodes", "stg_video_files"], []),
    "curated_episodes": ("table", ["episode_quality"], []),
    "annotation_summary": ("table", ["stg_episodes", "stg_info"], ["annotated_dataset"]),
}


def test_real_project_dag() -> None:
    project = load_project(REAL)
    got = {
        name: (m.materialized, sorted(m.refs), sorted({t.asset for t in project.source_tables(name)}))
        for name, m in project.models.items()
    }
    assert got == EXPECTED_MODELS
    order = project.topological_order()
    for name, model in project.models.items():
        assert all(order.index(dep) < order.index(name) for dep in model.refs)
    # asset deps for the Dagster layer: refs first, then the assets the sources come from
    assert project.upstream_assets("stg_byte_index") == ["byte_index"]
    assert project.upstream_assets("task_summary") == ["stg_episodes", "stg_tasks", "stg_info"]
    assert {(k, t.asset) for k, t in project.sources.items()} >= {
        (("lerobot", "episodes"), "lerobot_dataset"),
        (("lerobot", "frames"), "lerobot_dataset"),
        (("lerobot", "byte_index"), "byte_index"),
    }
    tests = {name: (t.model, t.blocking) for name, t in project.tests.items()}
    assert tests == {
        "assert_episode_index_unique": ("stg_episodes", True),
        "assert_episode_ranges_contiguous": ("stg_episodes", True),
        "assert_episode_tasks_known": ("task_summary", True),
        "assert_no_flagged_episodes": ("episode_quality", False),
        "assert_splits_cover_curated": ("stg_episodes", False),
        "assert_totals_match_info": ("dataset_summary", True),
        "assert_video_files_present": ("camera_summary", True),
        "assert_annotated_episodes_have_subtasks": ("annotation_summary", True),
    }
    assert project.models["episode_quality"].description.startswith("One row per episode with quality flags")
    assert project.ancestors(["task_summary"]) == [n for n in order if n in {"stg_episodes", "stg_info", "stg_tasks", "task_summary"}]


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(REAL, dst)
    return dst


def _problems(root: Path) -> list[tuple[str, int, str, str]]:
    with pytest.raises(ProjectLoadError) as info:
        load_project(root)
    return [(p.path.name, p.line, p.name, p.message) for p in info.value.problems]


def test_unknown_ref_names_file_line_and_name(project_copy: Path) -> None:
    (project_copy / "models/marts/bad.sql").write_text(
        "{{ config(materialized='table') }}\nselect *\nfrom {{ ref('stg_episode') }}\n"
    )
    problems = _problems(project_copy)
    assert problems == [("bad.sql", 3, "stg_episode", "unknown ref (did you mean 'stg_episodes'?)")]
    # and the message a person sees
    with pytest.raises(ProjectLoadError, match=r"bad\.sql:3: stg_episode: unknown ref"):
        load_project(project_copy)


def test_unknown_source(project_copy: Path) -> None:
    (project_copy / "models/bad.sql").write_text("select 1 as x\nunion all\nselect * from {{ source('lerobot', 'episodez') }}\n")
    assert _problems(project_copy) == [("bad.sql", 3, "lerobot.episodez", "unknown source")]


def test_cycle(project_copy: Path) -> None:
    (project_copy / "models/a.sql").write_text("select * from {{ ref('b') }}\n")
    (project_copy / "models/b.sql").write_text("-- b\nselect * from {{ ref('c') }}\n")
    (project_copy / "models/c.sql").write_text("\n\nselect * from {{ ref('a') }}\n")
    (project_copy / "models/d.sql").write_text("select * from {{ ref('a') }}\n")  # depends on the cycle only
    problems = _problems(project_copy)
    assert len(problems) == 1
    path, line, name, message = problems[0]
    assert message.startswith("cycle: ")
    cycle = message.removeprefix("cycle: ").split(" -> ")
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    # reported at the ref that closes the cycle, with its line
    lines = {"a.sql": 1, "b.sql": 2, "c.sql": 3}
    assert (path, line) == (f"{cycle[-2]}.sql", lines[f"{cycle[-2]}.sql"]) and name == cycle[-1]


def test_sql_that_does_not_parse(project_copy: Path) -> None:
    (project_copy / "models/bad.sql").write_text(
        "{{ config(materialized='view') }}\nselect dataset,\n  count(*\nfrom {{ ref('stg_episodes') }}\ngroup by dataset\n"
    )
    [(path, line, name, message)] = _problems(project_copy)
    assert (path, name) == ("bad.sql", "bad")
    assert line in (4, 5)  # DuckDB reports the token where parsing failed
    assert message.startswith("SQL does not parse: Parser Error: syntax error")


def test_multiline_config_keeps_parse_error_line(project_copy: Path) -> None:
    (project_copy / "models/bad.sql").write_text(
        "{{ config(\n    materialized='table',\n) }}\nselect dataset\nfrom {{ ref('stg_episodes') }}\nwhere dataset = = 'x'\n"
    )
    [(path, line, name, message)] = _problems(project_copy)
    assert (path, line, name) == ("bad.sql", 6, "bad")


def test_not_a_select_and_several_statements(project_copy: Path) -> None:
    (project_copy / "models/w.sql").write_text("delete from stg_episodes\n")
    (project_copy / "models/two.sql").write_text("select 1;\nselect 2\n")
    problems = sorted(_problems(project_copy))
    assert problems == [
        ("two.sql", 1, "two", "expected exactly one SQL statement, found 2"),
        ("w.sql", 1, "w", "a model must be a SELECT query, not DELETE"),
    ]


def test_config_and_jinja_errors(project_copy: Path) -> None:
    (project_copy / "models/m1.sql").write_text("\n{{ config(materialized='incremental') }}\nselect 1\n")
    (project_copy / "models/m2.sql").write_text("select 1\n{% if %}\n")
    (project_copy / "models/m3.sql").write_text("{% set n = 'stg_info' %}\nselect * from {{ ref(n) }}\n")
    (project_copy / "models/m4.sql").write_text("select {{ var('nope') }} as x\n")
    problems = {p[0]: p for p in _problems(project_copy)}
    assert problems["m1.sql"][1:3] == (2, "config") and "materialized" in problems["m1.sql"][3]
    assert problems["m2.sql"][1] == 2 and problems["m2.sql"][3].startswith("Jinja syntax error")
    assert problems["m3.sql"][1:] == (2, "ref", "ref() arguments must be literals")
    assert problems["m4.sql"][1:] == (1, "nope", "var() without a default and no value given")


def test_every_problem_is_reported_at_once(project_copy: Path) -> None:
    (project_copy / "models/x.sql").write_text("select * from {{ ref('missing_one') }}\n")
    (project_copy / "models/y.sql").write_text("select * from {{ ref('missing_two') }}\n")
    names = sorted(p[2] for p in _problems(project_copy))
    assert names == ["missing_one", "missing_two"]


def test_data_test_needs_a_target(project_copy: Path) -> None:
    (project_copy / "tests/assert_two.sql").write_text(
        "select * from {{ ref('stg_info') }} join {{ ref('stg_tasks') }} using (dataset)\n"
    )
    assert _problems(project_copy) == [
        ("assert_two.sql", 1, "assert_two", "data test refs several models (or none): set config(model='...')")
    ]
    (project_copy / "tests/assert_two.sql").write_text(
        "{{ config(model='stg_tasks', severity='warn') }}\n"
        "select * from {{ ref('stg_info') }} join {{ ref('stg_tasks') }} using (dataset)\n"
    )
    test = load_project(project_copy).tests["assert_two"]
    assert (test.model, test.blocking) == ("stg_tasks", False)


def test_sources_yml_errors(project_copy: Path) -> None:
    text = (project_copy / "sources.yml").read_text()
    (project_copy / "sources.yml").write_text(text.replace("parser: stats", "parser: statz"))
    [(path, line, name, message)] = _problems(project_copy)
    assert (path, name) == ("sources.yml", "stats") and "unknown parser 'statz'" in message
    assert text.splitlines()[line - 1].strip() == "- name: stats"
    (project_copy / "sources.yml").write_text(text.replace("format: listing", "format: csv"))
    [(path, line, name, message)] = _problems(project_copy)
    assert path == "sources.yml" and name.startswith("video_files") and "format" in name


def test_vars_change_compiled_sql() -> None:
    project = load_project(REAL)
    assert "0.5 * e.fps" in project.compile("episode_quality")
    assert "2 * e.fps" in project.compile("episode_quality", {"min_episode_seconds": 2})
    assert '"stg_episodes"' in project.compile("task_summary")

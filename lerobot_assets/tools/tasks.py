"""modify_tasks: a new dataset with episodes' tasks changed, by LeRobot's precedence rules.

Per episode the new task is the first that applies: `episode_tasks[episode]`, then
`task_replacements[its first task]`, then `new_task`; otherwise the episode keeps its tasks.
Beats LeRobot's `modify_tasks`, which edits its input in place with no backup, numbers tasks
alphabetically and leaves `task_index` stats stale: here the output is a new root, task indices
follow first appearance, and every stat is recomputed (`tools.rewrite`).
"""

import difflib
from collections.abc import Mapping
from pathlib import Path

from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.tools.output import EditResult, Progress, Stopwatch, local_input, new_dataset, resolve_output, tree_bytes
from lerobot_assets.tools.rewrite import Transform, rewrite_dataset
from lerobot_assets.tools.selection import check_episodes


def _task_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: the task {value!r} is empty; a task is a non-empty string")
    return value


def plan_tasks(
    meta: DatasetMeta,
    new_task: str | None,
    episode_tasks: Mapping[int, str] | None,
    task_replacements: Mapping[str, str] | None,
) -> dict[int, str]:
    """{source episode: its new task} for the episodes that change (ValueError naming the bad
    argument: unknown episode, unknown task to replace with its close match, empty task)."""
    episode_tasks = dict(episode_tasks or {})
    task_replacements = dict(task_replacements or {})
    if new_task is None and not episode_tasks and not task_replacements:
        raise ValueError("nothing to change: give new_task, episode_tasks or task_replacements")
    if new_task is not None:
        _task_text(new_task, "new_task")
    check_episodes([int(e) for e in episode_tasks], meta.num_episodes)
    for e, task in episode_tasks.items():
        _task_text(task, f"episode {e}")
    for old, task in task_replacements.items():
        if old not in meta.tasks:
            close = difflib.get_close_matches(str(old), meta.tasks, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (tasks: {meta.tasks})"
            raise ValueError(f"unknown task {old!r} to replace{hint}")
        _task_text(task, f"replacement of {old!r}")
    plan = {}
    for row in meta.episodes.select(["episode_index", "tasks"]).to_pylist():
        ep, tasks = int(row["episode_index"]), row["tasks"] or []
        if ep in episode_tasks:
            plan[ep] = episode_tasks[ep]
        elif tasks and tasks[0] in task_replacements:
            plan[ep] = task_replacements[tasks[0]]
        elif new_task is not None:
            plan[ep] = new_task
    return {int(e): t for e, t in plan.items()}


def modify_tasks(
    root: Path | str,
    out: Path | str,
    new_task: str | None = None,
    episode_tasks: Mapping[int, str] | None = None,
    task_replacements: Mapping[str, str] | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EditResult:
    """Write `root` to `out` with tasks changed (see the module docstring for the precedence)."""
    clock = Stopwatch()
    with local_input(root) as src:
        meta = DatasetMeta(src)
        plan = plan_tasks(meta, new_task, episode_tasks, task_replacements)
        with new_dataset(out, [root], overwrite=overwrite, operation="modify-tasks") as tmp:
            done = rewrite_dataset(src, tmp, list(range(meta.num_episodes)), Transform(episode_tasks=plan), progress, meta)
    final = resolve_output(out)
    note = f"{len(plan)} episodes given a new task"
    return EditResult("modify-tasks", final, done.episodes, done.frames, tree_bytes(final), clock.seconds, [note, *done.notes])

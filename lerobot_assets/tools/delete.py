"""delete_episodes: a new dataset without some episodes (stream copy, exact renumbering).

Beats LeRobot's `delete_episodes`: the input is never moved to `<dir>_old`, mixed video files are
cut by packet copy instead of re-encoded, data keeps one row group per episode, file numbering
has no gaps and per-episode index stats hold the new values (see `tools.rewrite`).
"""

from collections.abc import Iterable
from pathlib import Path

from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.tools.output import EditResult, Progress, Stopwatch, local_input, new_dataset, resolve_output, tree_bytes
from lerobot_assets.tools.rewrite import rewrite_dataset
from lerobot_assets.tools.selection import check_episodes


def delete_episodes(
    root: Path | str,
    episodes: Iterable[int],
    out: Path | str,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EditResult:
    """Write `root` without `episodes` to `out`; the rest are renumbered 0..n-1 in order.

    ValueError (nothing written) for an empty list, an unknown episode (named, with the range
    there is) or deleting every episode.
    """
    clock = Stopwatch()
    chosen = list(episodes)
    if not chosen:
        raise ValueError("no episodes to delete (give at least one episode index)")
    with local_input(root) as src:
        meta = DatasetMeta(src)
        total = meta.num_episodes
        drop = set(check_episodes(chosen, total))
        keep = [e for e in range(total) if e not in drop]
        if not keep:
            raise ValueError(f"deleting all {total} episodes would leave an empty dataset")
        with new_dataset(out, [root], overwrite=overwrite, operation="delete") as tmp:
            done = rewrite_dataset(src, tmp, keep, progress=progress, meta=meta)
    final = resolve_output(out)
    return EditResult("delete", final, done.episodes, done.frames, tree_bytes(final), clock.seconds, done.notes)

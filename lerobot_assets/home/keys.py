"""Session keys: the names of recording sessions, and what each name says.

A session is a batch of episodes from one source, and the unit of work and of partitioning:

- `sim-s0000-0009`: PushT simulation episodes of seeds 0..9 (the name is the whole recipe);
- `inbox-<folder>`: a raw-v1 recording dropped into `<home>/inbox/<folder>/`;
- `import-<name>`: an existing LeRobot v3 dataset, registered under `<home>/imports/<name>.json`.
"""

import re
from dataclasses import dataclass
from typing import Literal

SESSION_KINDS = ("sim", "inbox", "import")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}"
# Matched with fullmatch, never match + `$`: `$` also matches before a final newline, which let
# "name\n" through to become a file name.
_KEY_RE = re.compile(rf"(sim|inbox|import)-({_NAME})")
_NAME_RE = re.compile(_NAME)
_SIM_RE = re.compile(r"s(\d+)-(\d+)")


@dataclass(frozen=True)
class SessionKey:
    key: str
    kind: Literal["sim", "inbox", "import"]
    name: str

    @property
    def seeds(self) -> list[int]:
        """Seeds of a sim session, in episode order."""
        if self.kind != "sim":
            raise ValueError(f"{self.key} is not a sim session")
        m = _SIM_RE.fullmatch(self.name)
        assert m is not None  # checked by parse_session_key
        return list(range(int(m.group(1)), int(m.group(2)) + 1))


def parse_session_key(key: str) -> SessionKey:
    m = _KEY_RE.fullmatch(key)
    if m is None:
        raise ValueError(
            f"session {key!r} is not a session name: expected sim-s<first>-<last>, inbox-<folder> or "
            f"import-<name> (letters, digits, '.', '_', '-')"
        )
    kind, name = m.group(1), m.group(2)
    if kind == "sim":
        s = _SIM_RE.fullmatch(name)
        if s is None or int(s.group(2)) < int(s.group(1)):
            raise ValueError(f"sim session {key!r}: expected sim-s<first seed>-<last seed> with first <= last, e.g. sim-s0000-0009")
    return SessionKey(key, kind, name)  # type: ignore[arg-type]


def sim_session_key(first_seed: int, episodes: int) -> str:
    if first_seed < 0 or episodes < 1:
        raise ValueError(f"a sim session needs first_seed >= 0 and episodes >= 1, got {first_seed}, {episodes}")
    return f"sim-s{first_seed:04d}-{first_seed + episodes - 1:04d}"


def sim_session_keys(sessions: int, episodes: int, first_seed: int = 0) -> list[str]:
    """`sessions` consecutive sim sessions of `episodes` episodes each, seeds from `first_seed` on."""
    return [sim_session_key(first_seed + i * episodes, episodes) for i in range(sessions)]


def inbox_session_key(folder: str) -> str:
    if not _NAME_RE.fullmatch(folder):
        raise ValueError(f"inbox folder {folder!r} cannot name a session: use letters, digits, '.', '_', '-' (first a letter or digit)")
    return f"inbox-{folder}"


def import_session_key(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"import name {name!r}: use letters, digits, '.', '_', '-' (first a letter or digit)")
    return f"import-{name}"


def sim_seed_ranges(keys: list[str]) -> dict[str, tuple[int, int]]:
    """{session: (first seed, last seed)} of the sim sessions among `keys`."""
    out = {}
    for k in keys:
        try:
            key = parse_session_key(k)
        except ValueError:
            continue
        if key.kind == "sim":
            seeds = key.seeds
            out[k] = (seeds[0], seeds[-1])
    return out


def next_free_seed(keys: list[str]) -> int:
    """The seed after the highest one any registered sim session uses (0 if none)."""
    ranges = sim_seed_ranges(keys)
    return max((last for _, last in ranges.values()), default=-1) + 1


def overlapping_sim_sessions(keys: list[str], new: str) -> list[str]:
    """Registered sim sessions sharing a seed with `new` (their episodes would be duplicated)."""
    first, last = parse_session_key(new).seeds[0], parse_session_key(new).seeds[-1]
    return [k for k, (a, b) in sim_seed_ranges(keys).items() if k != new and a <= last and first <= b]

"""One dynamic partition per recording session (a batch of episodes), never one per episode.

Keys are session names (`sim-s0000-0009`, `inbox-<folder>`, `import-<name>`; see
lerobot_assets.home). Sessions are added by the inbox sensor, the register jobs and
the demo; 10,000 episodes in sessions of 20-50 stay a few hundred partitions.
"""

import dagster as dg

SESSIONS = "sessions"
sessions_partitions = dg.DynamicPartitionsDefinition(name=SESSIONS)

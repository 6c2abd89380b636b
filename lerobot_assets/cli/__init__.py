"""The `lerobot-assets` command line. Each command group lives in its own module."""

import typer

app = typer.Typer(
    help="lerobot-assets: build, inspect and query LeRobot v3.0 datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registering modules decorate `app` with their commands; imported for that side effect.
# Import order is registration order, which is the order `--help` lists the commands in: not sorted.
# isort: off
from lerobot_assets.cli import commands_sql  # noqa: E402,F401
from lerobot_assets.cli import commands_dataset  # noqa: E402,F401
from lerobot_assets.cli import commands_byte_index  # noqa: E402,F401
from lerobot_assets.cli import commands_pipeline  # noqa: E402,F401
from lerobot_assets.cli import commands_record  # noqa: E402,F401
from lerobot_assets.cli import commands_edit  # noqa: E402,F401
from lerobot_assets.cli import commands_train  # noqa: E402,F401
from lerobot_assets.cli import commands_annotate  # noqa: E402,F401
# isort: on

__all__ = ["app"]

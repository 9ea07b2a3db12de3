"""Entry point of the ``ddfad-apps`` console script.

Sub-commands live in their own modules and are added here, so a new command is one module plus one line.
"""

from __future__ import annotations

import importlib
import os

# On a few shared cores, OpenMP threads that spin while waiting for work slow small-tensor torch code several
# times over (bench_features: 8x -> 26x over librosa); set before torch is imported by any command.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

# name -> "module:attribute"; imported lazily so `ddfad-apps --help` stays fast and one broken command
# cannot take the others down.
COMMANDS: dict[str, str] = {
    "data": "ddfad_apps.cli.data_cmd:data",
    "train": "ddfad_apps.cli.train_cmd:train",
    "distill": "ddfad_apps.cli.distill_cmd:distill",
    "evaluate": "ddfad_apps.cli.distill_cmd:evaluate",
    "reconstruct": "ddfad_apps.cli.distill_cmd:reconstruct",
    "cicl": "ddfad_apps.cli.cicl_cmd:cicl",
    "nas": "ddfad_apps.cli.nas_cmd:nas",
    "cache": "ddfad_apps.cli.cache_cmd:cache",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup)
@click.version_option(package_name="ddfad-apps")
def cli() -> None:
    """Dataset distillation for audio (DDFAD): features, distillation, continual learning, NAS."""


if __name__ == "__main__":  # pragma: no cover
    cli()

"""The data-set options every data-consuming command shares (the checks on them live in :mod:`ddfad_apps.jobs.data`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ddfad_apps.data.registry import DATASETS

DATA_ROOT_HELP = "Folder holding the data sets (default: $DDFAD_DATA, else the ddfad-apps cache)."


def data_options(required: bool = False) -> Callable[[Callable], Callable]:
    """``--dataset`` (``fsdd`` unless ``required``), ``--data-root`` and ``--split-mode``, in that order on
    ``--help``."""

    def add(f: Callable) -> Callable:
        f = click.option("--split-mode", type=click.Choice(["actor", "stratified"]), default=None,
                         help="RAVDESS only: actor-independent (default; actors 21-24 test) or stratified split.")(f)
        f = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                         help=DATA_ROOT_HELP)(f)
        default = {"required": True} if required else {"default": "fsdd", "show_default": True}
        return click.option("--dataset", metavar="NAME|DIR", **default,
                            help=f"Data set name ({', '.join(sorted(DATASETS))}) or a folder with one sub-folder "
                                 "per class.")(f)

    return add


def run_folder_options(f: Callable) -> Callable:
    """``--dataset`` and ``--data-root`` of the commands reading a distillation run folder (``evaluate``,
    ``reconstruct``): the data set recorded in the folder is used unless ``--dataset`` names another."""
    f = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=DATA_ROOT_HELP)(f)
    return click.option("--dataset", default=None, metavar="NAME|DIR",
                        help="Data set to use instead of the one recorded in FOLDER/run.json (e.g. a folder that "
                             "moved); it must match the set (classes, features, normalisation, sample rate, clip "
                             "length).")(f)

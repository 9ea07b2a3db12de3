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


def float_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    """A comma-separated list of numbers (``0,0.001,0.01``) as a tuple; a bad entry is a usage error naming it."""
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from exc


def feature_option(default: str | None = "fd_mfcc") -> Callable[[Callable], Callable]:
    """``--feature``, declared once for every command that extracts features (``None``: the recorded kind)."""
    from ddfad_apps.features.transforms import FEATURE_MODULES

    extra = ({"default": default, "show_default": True} if default else
             {"default": None, "help_suffix": " (default: the kind the set was distilled in)"})
    suffix = extra.pop("help_suffix", "")
    return click.option("--feature", type=click.Choice(tuple(FEATURE_MODULES)), **extra,
                        help="Feature kind: MFCC + deltas as 3 channels (fd_mfcc), MFCC only, or LPCC" + suffix + ".")


def duration_option(f: Callable) -> Callable:
    """``--duration``, declared once for every command that reads audio."""
    return click.option("--duration", type=click.FloatRange(min=0.0, min_open=True), default=None,
                        help="Seconds every clip is padded/cropped to (default: per data set, FSDD 1.0, RAVDESS 3.0, "
                             "a folder's manifest or 1.0; a warning counts the clips cropped).")(f)


def protocol_options(f: Callable) -> Callable:
    """``--protocol``, ``--lr-grid`` and ``--extend-edges``: how the networks trained on a set get their rate."""
    f = click.option("--extend-edges", type=click.IntRange(min=0), default=0, show_default=True,
                     help="A winning rate at the grid's edge adds the next one beyond it (one grid step), up to this "
                          "many times a side.")(f)
    f = click.option("--lr-grid", default=None, metavar="LR,LR,...", callback=float_list,
                     help="Learning rates the protocol chooses from (default 0.003,0.01,0.03; plus the set's learned "
                          "one).")(f)
    return click.option("--protocol", "eval_protocol", type=click.Choice(["lr-grid", "fixed-lr"]), default="lr-grid",
                        show_default=True,
                        help="lr-grid: the learning rate chosen per set on the validation part carved from the "
                             "training split; fixed-lr: the set's learned rate, else 0.01 (older results).")(f)


def group_pattern_option(f: Callable) -> Callable:
    """``--group-pattern``: a folder data set split by group (speaker...) instead of by file."""
    return click.option("--group-pattern", default=None, metavar="REGEX",
                        help="Folder data sets without train/ and test/: a regex on each file name giving its group "
                             "(the group named 'group', else the first group), e.g. '_(?P<group>[a-z]+)_' for FSDD "
                             "speakers; no group is then on both sides of the split (a manifest's 'group_pattern' "
                             "or 'groups' does the same).")(f)

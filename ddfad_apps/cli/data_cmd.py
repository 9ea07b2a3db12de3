"""``ddfad-apps data``: fetch the supported data sets, show where (or whether) they are found, and split them by group."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from ddfad_apps.data.download import DownloadError, download_dataset, download_root
from ddfad_apps.data.group_split import write_group_split
from ddfad_apps.data.layouts import LAYOUTS
from ddfad_apps.data.locate import DatasetNotFoundError, candidate_roots, find_dataset_dir

_DATA_ROOT = click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the data sets (default: $DDFAD_DATA, else the ddfad-apps cache).",
)


@click.group()
def data() -> None:
    """Download data sets and show where they are."""


@data.command("download")
@click.argument("name", type=click.Choice(sorted(LAYOUTS)), metavar="NAME")
@_DATA_ROOT
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Mirror serving <URL>/<archive file name> (default: $DDFAD_DOWNLOAD_BASE_URL, else the official host).",
)
@click.option("--force", is_flag=True, help="Download and unpack again even if the data set is already there.")
def download(name: str, data_root: Path | None, base_url: str | None, force: bool) -> None:
    """Download, verify and unpack data set NAME (fsdd, ravdess or urbansound8k) into <data root>/<folder>."""
    click.echo(f"Downloading {name} into {download_root(data_root)} ...", err=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            folder = download_dataset(name, root=data_root, base_url=base_url, force=force)
        except (DownloadError, ValueError, OSError) as e:
            raise click.ClickException(str(e)) from e
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)
    click.echo(f"{name}: {folder}")


@data.command("list")
@_DATA_ROOT
def list_(data_root: Path | None) -> None:
    """Show, for each data set, whether it is found and where."""
    searched = candidate_roots(data_root)[:1] if data_root is not None else candidate_roots()  # as find_dataset_dir
    roots = ", ".join(f"{origin}={root}" for origin, root in searched)
    click.echo(f"Searched roots: {roots}")
    width = max(map(len, LAYOUTS))
    for name, layout in LAYOUTS.items():
        try:
            folder = find_dataset_dir(layout, data_root)
        except DatasetNotFoundError:
            click.echo(
                f"{name:<{width}}  missing  expected <root>/{layout.folder_names[0]}/{layout.marker} "
                f"({layout.description}); run `ddfad-apps data download {name}`"
            )
        else:
            click.echo(f"{name:<{width}}  found    {folder}")


@data.command("split")
@click.argument("name", type=click.Choice(sorted(LAYOUTS)), metavar="NAME")
@click.option("--test-groups", required=True, metavar="G1,G2",
              help="Groups to hold out as the test split: FSDD speakers (lucas,nicolas), RAVDESS actors (9,10,11,12).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New folder to write the split into.")
@_DATA_ROOT
@click.option("--stratified-carve", is_flag=True,
              help="Leave the group pattern out of the manifest: the validation carve is then stratified, not grouped.")
def split(name: str, test_groups: str, out: Path, data_root: Path | None, stratified_carve: bool) -> None:
    """Write a split of NAME holding whole groups out: OUT/train, OUT/test (links to the clips) and a manifest."""
    asked = [g.strip() for g in test_groups.split(",") if g.strip()]
    try:
        made = write_group_split(name, asked, out, data_root=data_root, grouped_carve=not stratified_carve)
    except (DatasetNotFoundError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{made.folder}: train {made.train_clips} clips ({', '.join(made.train_groups)}), "
               f"test {made.test_clips} clips ({', '.join(made.test_groups)})")
    click.echo(f"use it as --dataset {made.folder}")

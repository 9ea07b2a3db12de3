"""``ddfad-apps cache list|clear``: what the cache folder holds, and trimming it without breaking running jobs.

Nothing else ever deletes cache entries, so the folder (``$DDFAD_CACHE``, else ``~/.cache/ddfad-apps``) grows
with every data set and setting tried; ``clear`` is how it shrinks.  See :mod:`ddfad_apps.storage.caches`.
"""

from __future__ import annotations

import time

import click

from ddfad_apps.storage.caches import CACHE_NAMES


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _age(modified: float) -> str:
    days = (time.time() - modified) / 86400
    return f"{days:.1f} d" if days >= 1 else f"{days * 24:.1f} h"


@click.group()
def cache() -> None:
    """What the ddfad-apps cache holds (features, experts, NAS proxies, downloads), and clearing it."""


@cache.command("list")
@click.option("-v", "--verbose", is_flag=True, help="One line per entry (size, age, in use).")
def list_caches(verbose: bool) -> None:
    """Show each cache's folder, entry count and size."""
    from ddfad_apps.data.locate import cache_dir
    from ddfad_apps.storage.caches import entries, known_caches

    root = cache_dir()
    click.echo(f"cache root: {root}  (move it with $DDFAD_CACHE)")
    total = 0
    for c in known_caches():
        found = entries(c, root)
        size = sum(e.size for e in found)
        total += size
        main = [e for e in found if e.kind == "entry"]
        extra = []
        if busy := sum(e.in_use for e in found):
            extra.append(f"{busy} in use")
        if left := len(found) - len(main):
            extra.append(f"{left} temporary/corrupt")
        note = f" ({', '.join(extra)})" if extra else ""
        click.echo(f"{c.name:<12} {len(main):>5} entries {_human(size):>11}{note}  {root / c.folder}  - {c.what}")
        if verbose:
            for e in found:
                tag = "" if e.kind == "entry" else f" [{e.kind}]"
                click.echo(f"    {e.path.name}{tag}  {_human(e.size)}, {e.files} file(s), used {_age(e.modified)} "
                           f"ago{'  IN USE' if e.in_use else ''}")
    click.echo(f"total {_human(total)}")


@cache.command("clear")
@click.argument("names", nargs=-1, type=click.Choice([*CACHE_NAMES, "all"]))
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=None, metavar="DAYS",
              help="Only entries not used or modified for DAYS days.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_caches(names: tuple[str, ...], older_than: float | None, yes: bool) -> None:
    """Delete cache entries (default: features, experts and nas-proxies; `data` only when named).

    Entries a running job holds are skipped; only paths inside the cache root are deleted.  Everything removed
    is rebuilt on demand (experts and proxies take minutes, downloads much longer).
    """
    from ddfad_apps.data.locate import cache_dir
    from ddfad_apps.storage.caches import clear, plan, select

    root = cache_dir()
    caches = select(names)
    todo = plan(caches, older_than, root)
    if not todo:
        click.echo(f"nothing to clear in {', '.join(c.name for c in caches)} under {root}"
                   + (f" older than {older_than:g} days" if older_than is not None else ""))
        return
    for c in caches:
        mine = [e for e in todo if e.cache == c.name]
        if mine:
            click.echo(f"{c.name}: {len(mine)} entries, {_human(sum(e.size for e in mine))} in {root / c.folder}")
    if not yes:
        click.confirm("delete them?", abort=True)
    removed, skipped = clear(todo, root)
    click.echo(f"removed {len(removed)} entries ({_human(sum(e.size for e in removed))})")
    for e in skipped:
        click.echo(f"skipped {e.path} (in use by a running job)")

"""Shared pieces of the ``brand-studio`` CLI: the Typer apps, consoles and the studio session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from studio.api import Studio, open_studio
from studio.errors import StudioError
from studio.settings import Settings

app = typer.Typer(help="Brand Studio: brand kit -> LoRA -> seed-locked, on-brand images.", no_args_is_help=True)
kit_app = typer.Typer(help="Brand kits: product photos, trigger token, class noun.", no_args_is_help=True)
app.add_typer(kit_app, name="kit")
out = Console()
err = Console(stderr=True)


@contextmanager
def studio_session() -> Iterator[Studio]:
    """Open the studio, turn a StudioError into exit code 2 and Ctrl-C into 130, always close the database."""
    studio = None
    try:
        studio = open_studio(Settings())
        yield studio
    except StudioError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:  # Ctrl-C: a generation stops at its next step and stores nothing
        err.print("cancelled (Ctrl-C); an interrupted generation stores nothing", markup=False)
        raise typer.Exit(130) from None
    finally:
        if studio is not None:
            studio.close()


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StudioError(f"cannot read {path}: {exc.strerror}") from None

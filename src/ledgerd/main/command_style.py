"""How every ``ledgerd`` command presents itself: plain help, usage lines in README's words."""

from __future__ import annotations

from typing import Any

# Typer vendors click (typer._click): its commands are handed this context, not click's.
from typer._click import Context as CommandContext
from typer.core import TyperCommand

# Plain help: Rich's panels print a value type after every flag (`--help <bool>`).
PLAIN_HELP: dict[str, Any] = {
    "rich_markup_mode": None,
    "add_completion": False,
    "no_args_is_help": True,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


class Command(TyperCommand):
    """A command whose usage line names arguments as README does: ``verify LEDGER``.

    Typer writes a required argument as ``{LEDGER}``; plain is the usual convention, and
    optional ones keep their brackets.
    """

    def collect_usage_pieces(self, ctx: CommandContext) -> list[str]:
        return [
            piece.removeprefix("{").removesuffix("}") for piece in super().collect_usage_pieces(ctx)
        ]

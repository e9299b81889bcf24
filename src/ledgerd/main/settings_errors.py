"""A refused ``LEDGERD_*`` setting as one line naming the variable, never a traceback."""

from __future__ import annotations

from pydantic import ValidationError

from ledgerd.main.settings import Settings

ENV_PREFIX = "LEDGERD_"
# Their values can hold a password or are a secret: say what is wrong, not what was given.
_SECRET_FIELDS = frozenset(
    {
        "database_url",
        "rabbitmq_url",
        "redis_url",
        "nats_url",
        "csrf_key",
        "vault_token",
        "signing_keys_secret",
        "signing_keys_secret_previous",
    }
)


def settings_problems(error: ValidationError) -> list[str]:
    """One line per refused variable: its name, what was given, what is accepted."""
    lines = []
    for problem in error.errors(include_url=False):
        if not problem["loc"]:  # a rule across settings: its message names them
            lines.append("error: " + str(problem["msg"]).removeprefix("Value error, "))
            continue
        field = str(problem["loc"][0])
        variable = ENV_PREFIX + field.upper()
        reason = str(problem["msg"]).removeprefix("Value error, ")
        reason = reason[:1].lower() + reason[1:]
        given = "" if field in _SECRET_FIELDS else f"={problem['input']!r}"
        lines.append(f"error: {variable}{given}: {reason}")
    return lines


def load_settings() -> Settings | list[str]:
    """The settings, or the lines that say why the environment's are refused."""
    try:
        return Settings()
    except ValidationError as error:
        return settings_problems(error)

"""The default store: environment variables and files (e.g. mounted at /run/secrets)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from ledgerd.platform.secrets.ports import SecretNotFoundError, SecretUnreachableError
from ledgerd.platform.secrets.references import SecretReference
from ledgerd.platform.secrets.secret import Secret


class LocalSecretStore:
    """``secret://env/NAME`` and ``secret://file/PATH``: read anew on every refresh.

    A file is read whole, its one trailing newline dropped (``echo`` and editors add one).
    """

    def __init__(self, environment: Mapping[str, str] = os.environ) -> None:
        self._environment = environment

    async def read(self, reference: SecretReference) -> Secret:
        if reference.store == "env":
            value = self._environment.get(reference.path)
            if value is None:
                raise SecretNotFoundError(reference, "the variable is not set")
            return Secret(value)
        return Secret(await asyncio.to_thread(_read_file, reference))

    async def aclose(self) -> None:
        return None


def _read_file(reference: SecretReference) -> str:
    try:
        text = Path(reference.path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretNotFoundError(reference, "no such file") from None
    except PermissionError:
        raise SecretNotFoundError(reference, "the file may not be read") from None
    except UnicodeDecodeError:
        raise SecretNotFoundError(reference, "the file is not UTF-8 text") from None
    except OSError as error:
        # A network or FUSE mount that does not answer: the file may come back.
        raise SecretUnreachableError(reference, error.strerror or "cannot read") from None
    return text.removesuffix("\n")

"""AWS Secrets Manager, through aiobotocore; credentials from botocore's usual chain."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from ledgerd.platform.secrets.ports import SecretNotFoundError, SecretUnreachableError
from ledgerd.platform.secrets.references import SecretReference
from ledgerd.platform.secrets.secret import Secret

if TYPE_CHECKING:
    from types_aiobotocore_secretsmanager.client import SecretsManagerClient

DEFAULT_STAGE = "AWSCURRENT"
# The answers that say the store is there but will not give this secret.
_REFUSALS = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "InvalidRequestException"}
)


class AwsSecretsManagerStore:
    """``secret://aws/SECRET_ID[#FIELD]``: the version staged ``AWSCURRENT`` unless named.

    ``endpoint_url``: an emulator's or a VPC endpoint's address instead of the region's.
    """

    def __init__(
        self, *, region: str | None, endpoint_url: str | None, timeout_s: float = 5.0
    ) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        self._config = AioConfig(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"mode": "standard", "max_attempts": 2},
        )
        self._stack = AsyncExitStack()
        self._client: SecretsManagerClient | None = None

    async def read(self, reference: SecretReference) -> Secret:
        version = reference.option("version")
        selector = (
            {"VersionId": version}
            if version
            else {"VersionStage": reference.option("stage") or DEFAULT_STAGE}
        )
        try:
            client = await self._connected()
            answer = await client.get_secret_value(SecretId=reference.path, **selector)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "?"))
            if code in _REFUSALS:
                raise SecretNotFoundError(reference, f"refused ({code})") from None
            raise SecretUnreachableError(reference, f"the store answered {code}") from None
        except (EndpointConnectionError, BotoConnectionError) as error:
            raise SecretUnreachableError(
                reference, f"the store did not answer ({type(error).__name__})"
            ) from None
        except BotoCoreError as error:  # no credentials, no region, and the like
            raise SecretUnreachableError(reference, type(error).__name__) from None
        text = answer.get("SecretString")
        if text is None:
            raise SecretNotFoundError(reference, "the secret is binary, not a SecretString")
        if reference.field is None:
            return Secret(text)
        return Secret(_json_field(reference, text))

    async def _connected(self) -> SecretsManagerClient:
        if self._client is None:
            created: SecretsManagerClient = await self._stack.enter_async_context(
                get_session().create_client(
                    "secretsmanager",
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                )
            )
            self._client = created
        return self._client

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()


def _json_field(reference: SecretReference, text: str) -> str:
    try:
        document: Any = json.loads(text)
    except ValueError:
        raise SecretNotFoundError(reference, "the SecretString is not JSON") from None
    value = document.get(reference.field) if isinstance(document, dict) else None
    if not isinstance(value, str):
        raise SecretNotFoundError(reference, "the secret has no such string field")
    return value

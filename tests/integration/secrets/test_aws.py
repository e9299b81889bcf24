"""The AWS Secrets Manager store against moto's server, an AWS emulator (not AWS itself).

moto keeps staging labels as Secrets Manager does: ``put_secret_value`` makes the new version
AWSCURRENT and the one before AWSPREVIOUS; a version put with ``VersionStages=["AWSPENDING"]``
is pending until a rotation promotes it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from aiobotocore.session import get_session  # type: ignore[import-untyped]

from ledgerd.platform.secrets.aws import AwsSecretsManagerStore
from ledgerd.platform.secrets.cache import SecretCache
from ledgerd.platform.secrets.ports import SecretNotFoundError
from ledgerd.platform.secrets.references import parse_reference
from tests.integration.messaging.sqs_emulator import REGION, emulated_aws


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Moto's server with dummy credentials, nothing of the developer's AWS set-up."""
    with emulated_aws(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        yield endpoint


async def _create(emulator: str, value: str) -> str:
    name = f"ledgerd/{uuid.uuid4().hex[:8]}"
    async with get_session().create_client(
        "secretsmanager", region_name=REGION, endpoint_url=emulator
    ) as client:
        await client.create_secret(Name=name, SecretString=value)
    return name


async def _put(emulator: str, name: str, value: str, stages: list[str] | None = None) -> str:
    async with get_session().create_client(
        "secretsmanager", region_name=REGION, endpoint_url=emulator
    ) as client:
        extra = {"VersionStages": stages} if stages else {}
        answer = await client.put_secret_value(SecretId=name, SecretString=value, **extra)
    version: str = answer["VersionId"]
    return version


def _store(emulator: str) -> AwsSecretsManagerStore:
    return AwsSecretsManagerStore(region=REGION, endpoint_url=emulator)


async def test_reads_the_whole_secret_string_or_one_json_field(emulator: str) -> None:
    name = await _create(emulator, json.dumps({"url": "postgresql://a:b@db/x", "user": "a"}))
    store = _store(emulator)
    try:
        whole = await store.read(parse_reference(f"secret://aws/{name}"))
        field = await store.read(parse_reference(f"secret://aws/{name}#url"))
    finally:
        await store.aclose()
    assert json.loads(whole.reveal())["user"] == "a"
    assert field.reveal() == "postgresql://a:b@db/x"


async def test_a_rotation_becomes_current_and_pending_or_a_version_is_read_on_demand(
    emulator: str,
) -> None:
    name = await _create(emulator, "one")
    first = None
    store = _store(emulator)
    reference = parse_reference(f"secret://aws/{name}")
    cache = SecretCache({"aws": store}, ttl_s=1)
    try:
        assert (await cache.resolve(reference)).reveal() == "one"
        await _put(emulator, name, "two")  # the new AWSCURRENT
        pending = await _put(emulator, name, "three", stages=["AWSPENDING"])
        await cache.refresh()
        assert cache.current(reference).reveal() == "two"
        staged = await store.read(parse_reference(f"secret://aws/{name}?stage=AWSPENDING"))
        assert staged.reveal() == "three"
        by_version = await store.read(parse_reference(f"secret://aws/{name}?version={pending}"))
        assert by_version.reveal() == "three"
        previous = await store.read(parse_reference(f"secret://aws/{name}?stage=AWSPREVIOUS"))
        first = previous.reveal()
    finally:
        await cache.aclose()
    assert first == "one"


async def test_a_missing_secret_or_field_is_refused_naming_the_reference(emulator: str) -> None:
    name = await _create(emulator, json.dumps({"url": "the-value"}))
    store = _store(emulator)
    try:
        for text in (f"secret://aws/{name}-absent", f"secret://aws/{name}#password"):
            with pytest.raises(SecretNotFoundError) as refused:
                await store.read(parse_reference(text))
            assert text in str(refused.value)
            assert "the-value" not in str(refused.value)
    finally:
        await store.aclose()

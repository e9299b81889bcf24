"""A small Kubernetes API client: get, create, merge-patch and delete objects by manifest.

kopf watches and patches the `Ledgerd` resources itself but offers no client for the children,
so the operator speaks to the same endpoint with the credentials kopf's login found.
"""

import contextlib
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import kopf

from ledgerd_operator.manifests import Manifest

_NOT_FOUND = 404
_CONFLICT = 409
_TIMEOUT = aiohttp.ClientTimeout(total=30)


class KubeApiError(Exception):
    """The API server refused a request; kopf retries the handler that made it."""


class AlreadyExistsError(KubeApiError):
    """A create found the object there already."""


def _plural(kind: str) -> str:
    # The kinds the operator manages; all pluralise regularly.
    return kind.lower() + "s"


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path of an object (or, without `name`, of its collection)."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{_plural(kind)}"
    return f"{path}/{name}" if name is not None else path


@contextlib.contextmanager
def _written(data: str | bytes | None) -> Iterator[str | None]:
    # ssl.load_cert_chain reads files only; a kubeconfig may carry the certificate inline.
    if data is None:
        yield None
        return
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as file:
        file.write(data.encode() if isinstance(data, str) else data)
        file.flush()
        yield file.name


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cadata = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
    context = ssl.create_default_context(cafile=info.ca_path, cadata=cadata)
    with (
        _written(info.certificate_data) as cert_file,
        _written(info.private_key_data) as key_file,
    ):
        cert = info.certificate_path or cert_file
        if cert is not None:
            context.load_cert_chain(cert, info.private_key_path or key_file)
    return context


def _headers(info: kopf.ConnectionInfo) -> dict[str, str]:
    if info.token:
        return {"Authorization": f"{info.scheme or 'Bearer'} {info.token}"}
    return {}


class KubeApi:
    """Requests to one API server, over one connection pool."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        auth = None
        if info.username and info.password:
            auth = aiohttp.BasicAuth(info.username, info.password)
        self._session = aiohttp.ClientSession(
            base_url=info.server.rstrip("/"),
            headers=_headers(info),
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=_ssl_context(info)),
            timeout=_TIMEOUT,
        )

    async def close(self) -> None:
        await self._session.close()

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> Manifest | None:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with self._session.request(method, path, json=body, headers=headers) as response:
            if response.status == _NOT_FOUND:
                return None
            if response.status == _CONFLICT:
                raise AlreadyExistsError(f"{method} {path}: conflict")
            if response.status >= 400:  # noqa: PLR2004 (HTTP's error range)
                raise KubeApiError(f"{method} {path}: {response.status} {await response.text()}")
            result: Manifest = await response.json()
            return result

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        """The object, or None when there is none."""
        return await self._request("GET", object_path(api_version, kind, namespace, name))

    async def create(self, manifest: Manifest) -> None:
        """Create the object; one that already exists is left as it is (the next pass sees it)."""
        meta = manifest["metadata"]
        path = object_path(manifest["apiVersion"], manifest["kind"], meta["namespace"])
        with contextlib.suppress(AlreadyExistsError):
            await self._request("POST", path, manifest)

    async def patch(self, manifest: Manifest) -> None:
        """Merge-patch the object with `manifest` (lists, such as containers, are replaced)."""
        meta = manifest["metadata"]
        path = object_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        if await self._request("PATCH", path, manifest) is None:
            raise KubeApiError(f"PATCH {path}: the object is gone")

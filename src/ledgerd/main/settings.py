"""Settings from ``LEDGERD_*`` environment variables; the defaults run fully embedded."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///ledgerd.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERD_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite+aiosqlite:///PATH (embedded) or postgresql+asyncpg://USER@HOST/DB",
    )
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    database_echo: bool = False
    expiry_interval_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="how often the worker voids expired holds"
    )
    grpc_address: str = Field(
        default="127.0.0.1:50051", description="HOST:PORT the gRPC server listens on (port 0: any)"
    )
    http_address: str = Field(
        default="127.0.0.1:8080",
        description="HOST:PORT of the REST gateway, health probes and docs (port 0: any)",
    )
    gateway_forward_to: str | None = Field(
        default=None,
        description="HOST:PORT of a remote ledgerd gRPC server for the gateway to forward to; "
        "unset: call this process's servicer directly",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, le=600, description="how long calls in flight may finish on SIGTERM"
    )
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

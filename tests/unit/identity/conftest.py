from __future__ import annotations

import pytest

from tests.unit.identity.oauth_world import OAuthWorld, oauth_world


@pytest.fixture
async def world() -> OAuthWorld:
    """The identity use cases on fakes, seeded with the clients svc and spa and the user alice."""
    return await oauth_world()

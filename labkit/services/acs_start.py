"""The ACS's entry in the supervisor's table of starters, light to import (the CWMP core, lxml
and aiohttp load when the ACS starts, as the other services' do)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labkit.plan.build import Plan
    from labkit.services.acs import AcsServer
    from labkit.services.context import Endpoint, StartContext


async def start_acs_service(plan: Plan, endpoint: Endpoint, ctx: StartContext) -> AcsServer:
    from labkit.services.acs import start_acs_service as start

    return await start(plan, endpoint, ctx)

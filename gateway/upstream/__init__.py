"""The client of the upstream CRM, as layers (see client.py). It does not import the mapping,
and the mapping does not import it: `gateway.exchange` holds what both see."""

from gateway.exchange import Response
from gateway.upstream.client import Upstream
from gateway.upstream.settings import BreakerSettings, RetrySettings

__all__ = ["BreakerSettings", "Response", "RetrySettings", "Upstream"]

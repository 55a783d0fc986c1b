"""Time, injected: every wait, timeout and deadline in the library goes through a `Clock`."""

from chat_mcp_primer.clock._clock import Clock, SystemClock
from chat_mcp_primer.clock._timeout import TIMEOUT_TAG, run_with_timeout

__all__ = ["TIMEOUT_TAG", "Clock", "SystemClock", "run_with_timeout"]

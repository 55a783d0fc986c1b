"""Time, injected: every wait, timeout and deadline in the library goes through a `Clock`.

Every wait carries tags, all listed in `chat_mcp_primer.clock.tags`, by which a test clock traps it.
"""

from chat_mcp_primer.clock import tags
from chat_mcp_primer.clock._clock import Clock, SystemClock
from chat_mcp_primer.clock._timeout import run_with_timeout

__all__ = ["Clock", "SystemClock", "run_with_timeout", "tags"]

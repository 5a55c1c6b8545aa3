"""Moved to agentfleet_eval.sampling (the runtime image scores the evaluation gate with it). This name is
the same module object, private names included, so callers and tests of the old path keep working."""

import sys

from agentfleet_eval import sampling as _moved

sys.modules[__name__] = _moved

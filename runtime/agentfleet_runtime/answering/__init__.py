"""How a fleet answers from its documents: the answer policies (one class each), the stages they are
built from, and the checks and citing their answers go through. Below the loop, above the tools."""

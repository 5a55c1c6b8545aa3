"""LoRA adapters of one simulated replica, as vLLM serves them (pure: the caller passes no clock;
``acquire`` returns the seconds a call waits).

vLLM (started with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``) registers adapters at
run time through ``POST /v1/load_lora_adapter`` (``lora_name``, ``lora_path``) and forgets them
through ``POST /v1/unload_lora_adapter``; ``/v1/models`` lists each beside the base model with the
base as its ``parent``, and a request names an adapter in its ``model`` field. Only ``max_loras``
adapters sit in GPU memory at once (``--max-loras``): a request for another one first moves it in,
evicting the least recently used, and waits for that (``swap_s``). That wait is what adapter-aware
routing saves: a router that sends each adapter where it already sits finds it there (a hit).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .openai_api import ApiError


@dataclass
class AdapterSlots:
    max_loras: int  # adapters in GPU memory at once; 0: LoRA off (vLLM without --enable-lora)
    swap_s: float = 0.5  # moving one adapter into a GPU slot (reading its weights from host memory)
    registered: dict[str, str] = field(default_factory=dict)  # name -> path, in load order
    slots: OrderedDict[str, None] = field(default_factory=OrderedDict)  # in GPU memory, least recent first
    hits: int = 0  # calls that found their adapter in a slot
    misses: int = 0  # calls that waited for a swap

    def load(self, name: str, path: str) -> str:
        if self.max_loras <= 0:
            raise ApiError(400, "LoRA is not enabled: start the server with --enable-lora", param="lora_name")
        if not name or not path:
            raise ApiError(400, "Both 'lora_name' and 'lora_path' must be provided.", param="lora_name")
        if name in self.registered:
            raise ApiError(400, f"The lora adapter '{name}' has already been loaded.", param="lora_name")
        self.registered[name] = path
        return f"Success: LoRA adapter '{name}' added successfully."

    def unload(self, name: str) -> str:
        if name not in self.registered:
            raise ApiError(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError", "lora_name")
        del self.registered[name]
        self.slots.pop(name, None)
        return f"Success: LoRA adapter '{name}' removed successfully."

    def acquire(self, name: str) -> float:
        """A call for adapter ``name`` is admitted: the seconds it waits for the adapter's slot."""
        if name in self.slots:
            self.slots.move_to_end(name)
            self.hits += 1
            return 0.0
        self.misses += 1
        while len(self.slots) >= self.max_loras:
            self.slots.popitem(last=False)
        self.slots[name] = None
        return self.swap_s

    @property
    def in_gpu(self) -> list[str]:
        return list(self.slots)

"""Plain data (vocabularies) stored in a module's state dict as a byte tensor.

``nn.Module.get_extra_state`` may return any object, but MMEngine broadcasts
every state-dict entry as a tensor when it initialises a distributed run, and
torch's weights-only loader only rebuilds plain types. A JSON document held in
a uint8 tensor satisfies both.
"""
import json
from typing import Any

import torch


def encode_extra_state(obj: Any) -> torch.Tensor:
    """JSON-encode ``obj`` into a 1-D uint8 tensor."""
    data = json.dumps(obj, sort_keys=True).encode('utf-8')
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def decode_extra_state(state: Any) -> Any:
    """Inverse of :func:`encode_extra_state` (plain objects pass through)."""
    if isinstance(state, torch.Tensor):
        return json.loads(bytes(state.cpu().tolist()).decode('utf-8'))
    return state

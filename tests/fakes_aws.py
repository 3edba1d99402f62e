"""What the mocked aws provider computes: outputs by resource type, results by invoke token."""

from collections.abc import Callable

OUTPUTS: dict[str, Callable[[dict, str], dict]] = {}
CALLS: dict[str, Callable[[dict], dict]] = {}

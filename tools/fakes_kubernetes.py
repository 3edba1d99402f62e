from tests.fakes_kubernetes import CALLS, OUTPUTS  # noqa: F401  TEMPORARY until the kubernetes backend lands

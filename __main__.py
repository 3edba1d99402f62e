"""vLLM on GCP, AWS or Kubernetes: read the stack spec, build the service, export its outputs."""

import pulumi

from components.service import VllmService, VllmServiceArgs
from components.spec import load_secret, load_spec

spec = load_spec()
service = VllmService(
    "vllm", VllmServiceArgs(spec=spec, hf_token=load_secret("hfToken"), api_key=load_secret("apiKey"))
)

pulumi.export("endpoint", service.endpoint)
pulumi.export("apiKey", service.api_key)
pulumi.export("model", spec.served_model_name)
pulumi.export("costPerHour", spec.cost_per_hour())
pulumi.export("spec", spec.public_view())
pulumi.export("replicaSource", service.deployment.replica_source)
pulumi.export("dashboardUrl", service.deployment.dashboard_url)

"""vLLM on GCP, AWS or Kubernetes: read the stack spec, build the service, export its outputs."""

import pulumi

from components.autoscaling import cost_output, replicas_output
from components.cost import breakdown
from components.launch import time_to_ready
from components.service import VllmService, VllmServiceArgs
from components.spec import load_secret, load_spec, public_view

spec = load_spec()
service = VllmService(
    "vllm", VllmServiceArgs(spec=spec, hf_token=load_secret("hfToken"), api_key=load_secret("apiKey"))
)

pulumi.export("endpoint", service.endpoint)
pulumi.export("dnsRecords", service.dns_records)
pulumi.export("apiKey", service.api_key)
pulumi.export("model", spec.served_model_name)
pulumi.export("replicas", replicas_output(spec))
pulumi.export("costPerHour", cost_output(spec))
pulumi.export("costBreakdown", breakdown(spec))
pulumi.export("spec", public_view(spec))
pulumi.export("timeToReady", time_to_ready(spec))
pulumi.export("replicaSource", service.deployment.replica_source)
pulumi.export("dashboardUrl", service.deployment.dashboard_url)

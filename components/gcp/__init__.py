"""vLLM on Google Cloud: private GPU VMs in managed instance groups behind a global external ALB.

``build`` declares, under the ``VllmService`` component: ``ProjectApis`` (the Google APIs the stack uses,
through a ``gcp-apis`` provider), the explicit ``gcp`` provider that waits for them and that every other
resource uses, ``Network`` (VPC, NAT, firewall), ``ServiceIdentity`` (service account + Secret Manager),
``VllmReplica`` (one regional MIG) or one ``RayGroup`` per replica when ``vllm:nodes`` > 1, and
``LoadBalancer`` (with ``vllm:domain``, its ``HttpsFrontend``: managed certificate, HTTPS proxy on 443, port
80 redirecting). Only the load balancer's forwarding rules have a public address.
"""

"""vLLM on Google Cloud: private GPU VMs in managed instance groups behind a global external ALB.

``build`` declares, under the ``VllmService`` component: ``ProjectApis`` (the Google APIs the stack uses,
through a ``gcp-apis`` provider), the explicit ``gcp`` provider that waits for them and that every other
component passes on to its resources, ``Network`` (VPC, NAT, firewall), ``ServiceIdentity`` (service
account + Secret Manager), ``ReplicaGroup`` (one regional MIG of single-node replicas) or one
``RayReplica`` per replica when ``vllm:nodes`` > 1, and ``LoadBalancer`` (with ``vllm:domain``, its
``HttpsFrontend``: managed certificate, HTTPS proxy on 443, port 80 redirecting). Only the load balancer's
forwarding rules have a public address.
"""

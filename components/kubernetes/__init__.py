"""vLLM on an existing Kubernetes cluster (``vllm:cloud: kubernetes``).

``build`` declares, under the ``VllmService`` component, one explicit ``kubernetes`` provider for
``kubernetes:context`` (empty: the kubeconfig's current context) and, all in ``vllm:namespace``:

- ``ServiceNamespace``: the namespace and the Secret holding the API key (and HF token), which pods read
  through ``secretKeyRef``.
- ``ReplicaGroup``: a Deployment of ``vllm:replicas`` GPU pods (or CPU pods on a laptop cluster), with a
  PodDisruptionBudget; or, when ``vllm:nodes`` > 1, one ``RayReplicaGroup``: a LeaderWorkerSet of
  ``vllm:replicas`` groups of ``vllm:nodes`` pods.
- ``LoadBalancer``: a Service of type LoadBalancer (or ClusterIP) in front of the serving pods, created
  once they serve.
- ``InferenceGateway`` (``vllm:router: inference-gateway``): a Gateway of ``vllm:gatewayClassName``, an
  HTTPRoute, and an InferencePool with its endpoint picker, which routes each request to a replica by
  prefix-cache affinity, queue depth and KV-cache use.

With ``vllm:canary`` (behind the inference gateway only) each revision has its own Deployments, Service,
autoscaler, PodMonitor, InferencePool and endpoint picker, named by its slot (``pods.slot_name``), and the
HTTPRoute splits requests between the two pools by weight (docs/upgrades.md).

Only the Kubernetes SDK's used submodules are imported, and only for Kubernetes stacks.
"""

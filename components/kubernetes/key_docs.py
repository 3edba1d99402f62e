"""What each of Kubernetes's keys means, and its default: the rows tools/docs.py generates into the key tables
of docs/configuration.md (links are relative to docs/)."""

#: Each key of platform.py's ``keys`` (``vllm:``) and ``provider_keys``: (meaning, default).
KEYS: dict[str, tuple[str, str]] = {
    "namespace": (
        "Kubernetes: the namespace the stack creates and owns",
        "`vllm-<stack>`, so two stacks on one cluster never share one",
    ),
    "gpuNodeSelector": (
        "Kubernetes: the node labels that pin the GPU type: `none` (only the `nvidia.com/gpu` limit "
        "places the pod), `gke`, `nvidia` or `karpenter`; `spot` needs `gke` or `karpenter`; see "
        "[GPU type](kubernetes.md#gpu-type)",
        "`none`",
    ),
    "storageClass": (
        "Kubernetes: a StorageClass for each pod's HF cache, a PVC of `diskSizeGb`; see "
        "[Disk for the weights](kubernetes.md#disk-for-the-weights)",
        "none: node ephemeral storage (the weights + 10 GB requested)",
    ),
    "serviceType": (
        "Kubernetes: the Service's type: `LoadBalancer` (`allowedCidrs` becomes "
        "`loadBalancerSourceRanges`) or `ClusterIP` (behind your Ingress or Gateway, which "
        "[keeps `/metrics` private]"
        "(kubernetes.md#a-plain-l4-service-cannot-keep-metrics-and-friends-private))",
        "`LoadBalancer`",
    ),
    "cpu": (
        "Kubernetes: the CPU request per pod, in cores. With GPUs at least one core per GPU + 1: H100:8 "
        "needs 9 cores",
        "half the catalog machine's share per GPU",
    ),
    "memoryGb": (
        "Kubernetes: the memory request per pod, in GB. With GPUs at least 4 GB per GPU + 3 GB (per GPU 2"
        " GB of memory-backed /dev/shm and a 2 GB worker process; 3 GB for the API server and engine): "
        "H100:8 needs 35 GB",
        "half the catalog machine's share per GPU",
    ),
    "installLeaderWorkerSet": (
        "Kubernetes, `nodes` > 1: `true` installs the LeaderWorkerSet controller (v0.8.0) from its pinned"
        " release manifest; it is cluster-wide, so let one stack per cluster own it; see "
        "[Multi-node: a LeaderWorkerSet](kubernetes.md#multi-node-a-leaderworkerset)",
        "`false`",
    ),
    "maxSurge": (
        "Kubernetes: pods (multi-node: Ray replicas) a rollout adds above `replicas` at a time; 0 replaces"
        " them in place; see [Rollouts](kubernetes.md#rollouts-vllmmaxsurge)",
        "0 with `replicas` > 1, 1 with one replica",
    ),
    "prometheusUrl": (
        "Kubernetes autoscaling: the Prometheus that scrapes the vLLM pods' `/metrics`, where KEDA reads "
        "the request rate; required with `maxReplicas`; see [Autoscaling](autoscaling.md)",
        "none",
    ),
    "prometheusSelector": (
        "Kubernetes: the labels of the stack's PodMonitor, `key=value[,key=value]`, that the cluster's "
        "Prometheus selects; see [Autoscaling signals](autoscaling.md#autoscaling-signals-and-reaction-time)",
        "`release=kube-prometheus-stack`",
    ),
    "coldStartTimeoutSeconds": (
        "Kubernetes, `minReplicas` 0: how long the KEDA HTTP add-on's interceptor holds a request while a "
        "replica starts; see [Autoscaling signals](autoscaling.md#autoscaling-signals-and-reaction-time)",
        "the pod's start budget",
    ),
    "installKedaHttpAddOn": (
        "Kubernetes: `true` applies the pinned KEDA HTTP add-on release (cluster-wide, like "
        "`installLeaderWorkerSet`)",
        "`false`",
    ),
    "activationQuery": (
        "Kubernetes, `minReplicas` 0: a PromQL request rate measured in front of vLLM (your Ingress or "
        "Gateway) that wakes a service scaled to zero; see [Autoscaling](autoscaling.md)",
        "none",
    ),
    "tlsSecretName": (
        "Kubernetes: a `kubernetes.io/tls` Secret in the namespace, for `domain`; vLLM serves it on 443",
        "none",
    ),
    "cacheClaim": (
        "Kubernetes: a ReadWriteMany PVC in the namespace, mounted as every pod's HF cache: an init "
        "container fills it with the model's commit once (one pod downloads under a lock, the others "
        "wait), and vLLM's startup budget is the claim's read. Either yours, existing before `up` in a "
        "namespace of yours (`createNamespace: false`), or created by the stack (`cacheStorageClass`); an"
        " existing claim in the namespace the stack creates is refused (it cannot exist yet). See [Cold "
        "start](cold-start.md)",
        "none: a cache per pod",
    ),
    "cacheStorageClass": (
        "Kubernetes: a ReadWriteMany StorageClass (Filestore, EFS, NFS); the stack creates `cacheClaim` "
        "from it, of `diskSizeGb`, kept by `pulumi destroy` (`retainOnDelete`; in the stack's own "
        "namespace it still goes with the namespace)",
        "none: `cacheClaim` exists",
    ),
    "createNamespace": (
        "Kubernetes: `false` uses `namespace` as it exists: you create it before `up`, with what the pods"
        " need from you (the `cacheClaim`, the `tlsSecretName` Secret), and `pulumi destroy` leaves it "
        "and them (pulumi-kubernetes 4.29+ refuses to adopt an existing namespace, #4278)",
        "`true`",
    ),
    "prometheusOperator": (
        "Kubernetes: `true` adds a PodMonitor on the serving pods and the service dashboard as a Grafana "
        "ConfigMap (needs the Prometheus Operator's CRDs); see [Metrics](kubernetes.md#metrics)",
        "`false`",
    ),
    "kubernetes:context": (
        "the kubeconfig context the stack's `kubernetes` provider targets",
        "the kubeconfig's current context",
    ),
    "router": (
        "Kubernetes: `service`, or `inference-gateway`: the Gateway API Inference Extension routes each "
        "request by prefix cache, queue and KV-cache use; see [Routing](routing.md)",
        "`service`",
    ),
    "gatewayClassName": (
        "Kubernetes, `router: inference-gateway`: the GatewayClass of the Gateway the stack creates "
        "(your cluster's Gateway implementation); see [Routing](routing.md)",
        "none: required unless `gatewayName` or `installGateway`",
    ),
    "gatewayName": (
        "Kubernetes, `router: inference-gateway`: `<namespace>/<name>` of an existing Gateway the route "
        "attaches to instead; see [Routing](routing.md)",
        "none: the stack creates one",
    ),
    "installGateway": (
        "Kubernetes, `router: inference-gateway`: `agentgateway` (v1.0.0) or `istio` (1.28.3) installs that "
        "Gateway implementation with InferencePool support, the Gateway API (v1.5.1) and GIE (v1.5.0) CRDs, "
        "and sets `gatewayClassName`; cluster-wide, like `installLeaderWorkerSet`; see "
        "[Routing](routing.md#a-gateway-implementation-installed-by-the-stack)",
        "none: the cluster's",
    ),
    "affinityHeader": (
        "refused on Kubernetes: use `router: inference-gateway`; see [Routing](routing.md)",
        "none",
    ),
}

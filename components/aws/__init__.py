"""vLLM on EC2 GPU instances behind an Application Load Balancer.

What ``build`` declares, all through one explicit ``aws.Provider`` for ``aws:region``:

- ``Network``: the default VPC and its default subnets, or ``vllm:vpcId`` + ``vllm:subnetIds``; the ALB's
  and the instances' security groups. The ALB spans every subnet; instances go only to zones that sell
  the catalog's instance type (``ec2:DescribeInstanceTypeOfferings``), and with ``vllm:reservation`` only
  to ``vllm:reservationZone``. Before any group, ``up`` checks the EC2 vCPU quotas the stack draws on
  (``machines.quota_preflight``).
- ``ServiceIdentity``: the API key and HF token as Secrets Manager secrets, and an instance role that may
  ``GetSecretValue`` on exactly those ARNs. User data names the secrets; it never holds their values.
- ``LoadBalancer``: ALB -> listener 80 -> ``/v1/*`` and ``/health`` to the replicas; everything else 404.
  With ``vllm:domain`` its ``HttpsFrontend`` (ACM certificate, listener 443) holds that rule and 80
  redirects to HTTPS. With ``vllm:canary`` its ``ServingGate`` (a Lambda function invoked during ``up``,
  serving_gate.py) lets a revision's weight rise only once every replica of it serves.
- ``ReplicaGroup`` (one ASG of ``vllm:replicas`` machines, whose launch lifecycle hook counts a new
  machine once it serves: lifecycle.py) or, when ``vllm:nodes`` > 1, one ``RayReplica`` per replica.
  Every machine boots the Deep Learning Base OSS NVIDIA driver AMI (or ``vllm:amiId``) and runs
  ``components/scripts/vm_bootstrap.sh`` as user data.

Public IPs: instances in the default VPC keep the public IPv4 address its subnets hand out, and their
security group admits nothing from the internet (only the vLLM port, from the ALB's security group; no
SSH). A default VPC has no NAT gateway, and adding one per stack would put every image pull and every
weight download (hundreds of GB per machine, per boot) through NAT data processing charges. Anyone who
wants private instances names their own VPC and subnets (``vllm:vpcId``/``vllm:subnetIds``), with the
NAT or VPC endpoints their platform already runs; there the subnet's own public-IP setting applies. The
internet-facing ALB uses the same subnets, so at least two of them (in two zones) must route to an
internet gateway.

The AMI is ``resolve:ssm:<the Deep Learning AMI's public parameter>``, resolved by EC2 at each launch, so
a new release never changes the launch template nor rolls the fleet; ``vllm:amiId`` pins one image. User
data is the boot script as is when it fits EC2's 16 KB (6 KB for a replica, 12 KB for a Ray node, which
carries ``ray_bootstrap.sh`` compressed), else gzip'd, which cloud-init unpacks itself.

Multi-node (``RayReplica``): the head's stable address is an internal Network Load Balancer on the Ray GCS
port in front of the head's ASG of one; see ``ray_replica.py`` for why, and for EFA.
"""

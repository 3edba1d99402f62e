"""What the mocked gcp provider computes: outputs by resource type, results by invoke token.

The mock echoes a resource's inputs as its outputs; these add what GCP computes (autonamed names, links,
the load balancer's address, a service account's email) in a fixed fake project.
"""

from collections.abc import Callable

PROJECT = "test-project"
LB_ADDRESS = "203.0.113.10"
COMPUTE = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
STORAGE = "https://www.googleapis.com/storage/v1"


def _named(collection: str) -> Callable[[dict, str], dict]:
    def outputs(inputs: dict, name: str) -> dict:
        physical = inputs.get("name") or name
        link = f"{COMPUTE}/{collection}/{physical}"
        return {
            "name": physical,
            "selfLink": link,
            "selfLinkUnique": f"{link}?uniqueId=1",
            "project": PROJECT,
        }

    return outputs


def _group_manager(collection: str) -> Callable[[dict, str], dict]:
    def outputs(inputs: dict, name: str) -> dict:
        result = _named(collection)(inputs, name)
        result["instanceGroup"] = f"{COMPUTE}/{collection.replace('Managers', 's')}/{result['name']}"
        return result

    return outputs


def _service_account(inputs: dict, name: str) -> dict:
    email = f"{inputs['accountId']}@{PROJECT}.iam.gserviceaccount.com"
    return {"email": email, "member": f"serviceAccount:{email}", "project": PROJECT}


def _secret_version(inputs: dict, name: str) -> dict:
    return {"name": f"{inputs['secret']}/versions/1", "version": "1"}


def _repository(inputs: dict, name: str) -> dict:
    repository = inputs["repositoryId"]
    return {
        "name": repository,
        "project": PROJECT,
        "registryUri": f"{inputs['location']}-docker.pkg.dev/{PROJECT}/{repository}",
    }


def _global_address(inputs: dict, name: str) -> dict:
    return {**_named("global/addresses")(inputs, name), "address": LB_ADDRESS}


def _bucket(inputs: dict, name: str) -> dict:
    physical = inputs.get("name") or f"{name}-0a1b2c3"  # Pulumi's auto-name: a random suffix
    return {
        "name": physical,
        "url": f"gs://{physical}",
        "selfLink": f"{STORAGE}/b/{physical}",
        "project": PROJECT,
    }


OUTPUTS: dict[str, Callable[[dict, str], dict]] = {
    "gcp:compute/network:Network": _named("global/networks"),
    "gcp:compute/subnetwork:Subnetwork": _named("regions/r/subnetworks"),
    "gcp:compute/router:Router": _named("regions/r/routers"),
    "gcp:compute/instanceTemplate:InstanceTemplate": _named("global/instanceTemplates"),
    "gcp:compute/resourcePolicy:ResourcePolicy": _named("regions/r/resourcePolicies"),
    "gcp:compute/address:Address": _named("regions/r/addresses"),
    "gcp:compute/healthCheck:HealthCheck": _named("global/healthChecks"),
    "gcp:compute/backendService:BackendService": _named("global/backendServices"),
    "gcp:compute/securityPolicy:SecurityPolicy": _named("global/securityPolicies"),
    "gcp:compute/uRLMap:URLMap": _named("global/urlMaps"),
    "gcp:compute/targetHttpProxy:TargetHttpProxy": _named("global/targetHttpProxies"),
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": _named("global/targetHttpsProxies"),
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": _named("global/sslCertificates"),
    "gcp:compute/sSLPolicy:SSLPolicy": _named("global/sslPolicies"),
    "gcp:compute/globalAddress:GlobalAddress": _global_address,
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": _group_manager(
        "regions/r/instanceGroupManagers"
    ),
    "gcp:compute/instanceGroupManager:InstanceGroupManager": _group_manager("zones/z/instanceGroupManagers"),
    "gcp:serviceaccount/account:Account": _service_account,
    "gcp:monitoring/dashboard:Dashboard": lambda inputs, name: {
        "id": f"projects/123456789012/dashboards/{name}-0f1e2d3c",
        "project": PROJECT,
    },
    "gcp:secretmanager/secretVersion:SecretVersion": _secret_version,
    "gcp:artifactregistry/repository:Repository": _repository,
    "gcp:storage/bucket:Bucket": _bucket,
}
#: The fake project's GPU quotas: ample (-1 is unlimited in the Cloud Quotas API), so the preflight passes
#: unless a test answers with less (tests/test_gcp_quota.py).
UNLIMITED_GPU_QUOTAS = [
    {
        "quotaId": quota_id,
        "dimensionsInfos": [{"applicableLocations": [], "details": [{"value": "-1"}], "dimensions": {}}],
    }
    for quota_id in (
        "GPUS-ALL-REGIONS-per-project",
        "GPUS-PER-GPU-FAMILY-per-project-region",
        "PREEMPTIBLE-GPUS-PER-GPU-FAMILY-per-project-region",
    )
]
#: The fake boot image's ``diskSizeGb``. Illustrative: GCP documents no size for the DLVM family
#: common-cu129-ubuntu-2204-nvidia-580 (``gcloud compute images describe-from-family ... --project
#: deeplearning-platform-release`` shows a real one's); gcloud reported 50 GB for earlier DLVM families.
BOOT_IMAGE_DISK_GB = 50


def _get_image(args: dict) -> dict:
    """A public image as ``compute.images.get`` / ``getFromFamily`` describe it, by name or family."""
    project, name = args["project"], args.get("name") or f"{args['family']}-v20261201"
    return {
        "id": f"projects/{project}/global/images/{name}",
        "name": name,
        "family": args.get("family") or "",
        "project": project,
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/global/images/{name}",
        "diskSizeGb": BOOT_IMAGE_DISK_GB,
        "archiveSizeBytes": 27_000_000_000,
        "status": "READY",
    }


CALLS: dict[str, Callable[[dict], dict]] = {
    "gcp:compute/getImage:getImage": _get_image,
    "gcp:organizations/getClientConfig:getClientConfig": lambda args: {
        "project": PROJECT,
        "id": PROJECT,
        "accessToken": "",
        "region": "",
        "zone": "",
        "defaultLabels": {},
    },
    "gcp:cloudquota/getSQuotaInfos:getSQuotaInfos": lambda args: {
        "parent": args.get("parent", ""),
        "service": args.get("service", ""),
        "id": "quotaInfos",
        "quotaInfos": UNLIMITED_GPU_QUOTAS,
    },
}

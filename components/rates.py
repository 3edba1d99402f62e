"""Every rate and fixed time a replica's start is modelled from: one table, each figure with its source.

A figure is ``published`` (a vendor's documented limit or table), ``measured`` (a stated measurement: who,
when, how, in a public log) or ``modelled`` (this project's assumption, with its reasoning):
docs/cold-start.md prints the table from here (tools.cold_start), so what is measured and what is only
modelled is visible. This project has measured none of them on real machines yet.

Each entry has an *expected* figure (what the estimate uses) and a *slowest* one (what the hard caps use):
the estimate is the time a start is expected to take, the budget the longest a healthy start may take
(``components/launch.py``). Rates are sustained MB/s (10^6 bytes/s); vendors' MiB/s are converted.

A leaf module: it imports nothing of the program, so the platforms and the launch model both read it.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: MB per MiB.
MIB = 1.048576


class Basis(enum.Enum):
    PUBLISHED = "published"  # a vendor's documented limit or table
    MEASURED = "measured"  # a stated public measurement (who, when, how)
    MODELLED = "modelled"  # this project's assumption, reasoned from the sources it names


@dataclass(frozen=True)
class Rate:
    """A sustained transfer rate in MB/s: expected, and the slowest a healthy start still sees."""

    expected_mbps: int
    slowest_mbps: int
    basis: Basis
    source: str

    def seconds(self, gb: float, slowest: bool = False) -> int:
        """Seconds to move ``gb`` GB at this rate."""
        return math.ceil(gb * 1000 / (self.slowest_mbps if slowest else self.expected_mbps))

    def capped(self, mbps: int, why: str) -> Rate:
        """This rate, no faster than ``mbps`` (a NIC, a disk)."""
        if mbps >= self.expected_mbps:
            return self
        return Rate(mbps, min(mbps, self.slowest_mbps), Basis.PUBLISHED, f"capped by {why}")


@dataclass(frozen=True)
class Step:
    """A fixed part of a start, in seconds: expected, and the longest a healthy start may take."""

    expected_seconds: int
    slowest_seconds: int
    basis: Basis
    source: str


@dataclass(frozen=True)
class Storage:
    """Where a node keeps the model's files, with its sustained sequential rates."""

    name: str
    write: Rate
    read: Rate
    local: bool = False  # local NVMe: local_nvme.sh puts the HF cache and Docker's data root on a RAID0 of it
    #: One volume every replica mounts (Kubernetes' vllm:cacheClaim): filled from the Hub once, then read.
    shared: bool = False

    @property
    def write_mbps(self) -> int:
        return self.write.expected_mbps

    @property
    def read_mbps(self) -> int:
        return self.read.expected_mbps

    @property
    def source(self) -> str:
        return self.read.source


def _mib(mibps: float) -> int:
    return int(mibps * MIB)


# --- the network: the Hub and the stack's bucket -----------------------------------------------------------

#: Hugging Face Hub downloads through Xet with HF_XET_HIGH_PERFORMANCE (launch.STATIC_ENV).
HUB = Rate(
    250,
    100,
    Basis.MODELLED,
    "Hub via Xet: a user measured 304 MB/s for a 50 GB download with HF_XET_HIGH_PERFORMANCE "
    "(github.com/huggingface/huggingface_hub/issues/3580, 2025-11-28); expected 250, slowest 100 MB/s "
    "modelled (one NAT address per stack; issue 28 simulated a slow Hub at 150 MB/s)",
)
#: The stack's bucket to a VM in its region with this project's clients: gcloud storage rsync (parallel,
#: sliced object downloads by default) and the AWS CLI with the CRT client or 64 concurrent requests
#: (scripts/weight_cache.sh). Per VM: reads of one prefix scale past any one VM (S3 serves at least 5,500
#: GET/s per prefix and scales further, S3 user guide "Best practices design patterns: optimizing Amazon S3
#: performance"), so replicas copying at once each get their own VM's rate, capped by its NIC (below).
BUCKET = Rate(
    2500,
    1000,
    Basis.MEASURED,
    "bucket to VM with parallel clients: 2-3 GB/s on A3/p5 (issue 28's report); S3 to one EC2 instance "
    "measured up to 6,269 MB/s on p3dn.24xlarge, 8,003 MB/s on c5n.18xlarge with many threads "
    "(github.com/dvassallo/s3-benchmark, 2019-04-02); gcloud storage cp: sliced downloads by default "
    "(cloud.google.com/storage/docs/sliced-object-downloads, read 2026-12-07); slowest 1,000 MB/s modelled",
)

#: Machines whose NIC is slower than the bucket clients: Gbps, as the clouds list them ("up to" for AWS).
#: The others carry 20 Gbps (2,500 MB/s) or more. GCP: "Network bandwidth" (N1: 2 Gbps per vCPU) and the
#: G2 machine table (cloud.google.com/compute/docs/gpus#l4-gpus); AWS: the instance types' "Network
#: performance" (docs.aws.amazon.com/ec2/latest/instancetypes/ac.html). The search corpus held no copy of
#: these tables to re-read this session: published figures, not re-verified here.
NIC_GBPS: Mapping[str, int] = MappingProxyType(
    {
        "g2-standard-4": 10,
        "g2-standard-8": 16,
        "g2-standard-12": 16,
        "n1-highmem-4": 8,
        "n1-highmem-8": 16,
        "g5.xlarge": 10,
        "g6.xlarge": 10,
    }
)


def bucket_to_vm(machine_type: str | None) -> Rate:
    """The bucket's rate into one machine: the client's, capped by the machine's NIC."""
    gbps = NIC_GBPS.get(machine_type) if machine_type else None
    if gbps is None:
        return BUCKET
    return BUCKET.capped(gbps * 125, f"{machine_type}'s {gbps} Gbps NIC")


# --- the node's storage --------------------------------------------------------------------------------

#: GCP Local SSD (NVMe), per number of disks: (read, write) MiB/s, the "NVMe Local SSD performance" table
#: (cloud.google.com/compute/docs/disks/local-ssd#performance, read 2026-12-07). One disk alone reads 660
#: MiB/s over NVMe (390 MiB/s over SCSI); 4 to 8 disks share the 8-disk limit.
GCP_LOCAL_SSD_MIBPS: Mapping[int, tuple[int, int]] = MappingProxyType(
    {
        1: (660, 350),
        2: (1320, 700),
        3: (1980, 1050),
        4: (2650, 1400),
        16: (6240, 3120),
        24: (9360, 4680),
        32: (12480, 6240),
    }
)
GCP_LOCAL_SSD_SOURCE = (
    "GCP NVMe Local SSD performance table (cloud.google.com/compute/docs/disks/local-ssd, read 2026-12-07)"
)
#: A published maximum is what the array can do; the slowest a healthy start sees is modelled at half of it
#: (a filesystem over RAID0, the Hub's writes and vLLM's reads at once).
SLOWEST_SHARE_OF_A_DISK_MAXIMUM = 0.5


def _disk(mbps: int, basis: Basis, source: str) -> Rate:
    return Rate(mbps, int(mbps * SLOWEST_SHARE_OF_A_DISK_MAXIMUM), basis, source)


def gcp_local_ssd(disks: int) -> Storage:
    """A RAID0 of ``disks`` GCP Local SSDs (scripts/local_nvme.sh), at the table's row for that many."""
    rows = sorted(GCP_LOCAL_SSD_MIBPS)
    read, write = GCP_LOCAL_SSD_MIBPS[rows[max(0, bisect.bisect_right(rows, disks) - 1)]]
    return Storage(
        f"local SSD RAID0 ({disks} x 375 GiB NVMe)",
        write=_disk(_mib(write), Basis.PUBLISHED, GCP_LOCAL_SSD_SOURCE),
        read=_disk(_mib(read), Basis.PUBLISHED, GCP_LOCAL_SSD_SOURCE),
        local=True,
    )


#: EC2 instance store (NVMe SSD) per volume: AWS lists the volumes of each type (P5: 8 x 3.84 TB) and the
#: IOPS of some, but no sequential throughput for the GPU types; modelled per volume as GCP's NVMe Local
#: SSD disk (660 / 350 MiB/s read / write), which the larger EC2 volumes are unlikely to undercut. One older
#: 300 GB volume (m5d.4xlarge) was measured at 689-819 MB/s uncached reads (hdparm -t) and 349 MB/s direct
#: writes (dd oflag=direct): gist.github.com/ouranos/bcad6055ff7cfe5c3903a60ff5c3ade4.
EC2_INSTANCE_STORE_PER_VOLUME_MIBPS = (660, 350)
EC2_INSTANCE_STORE_SOURCE = (
    "no throughput published for the GPU types' instance store (docs.aws.amazon.com/ec2/latest/"
    "instancetypes/ac.html); per volume as a GCP NVMe Local SSD disk, which a measured m5d.4xlarge "
    "volume matches (689-819 MB/s read, 349 MB/s direct write; "
    "gist.github.com/ouranos/bcad6055ff7cfe5c3903a60ff5c3ade4)"
)


def ec2_instance_store(volumes: int, volume_gb: int) -> Storage:
    """A RAID0 of ``volumes`` EC2 NVMe instance store volumes of ``volume_gb`` each (the DLAMI's array)."""
    read, write = EC2_INSTANCE_STORE_PER_VOLUME_MIBPS
    return Storage(
        f"instance store RAID0 ({volumes} x {volume_gb} GB NVMe)",
        write=_disk(_mib(write * volumes), Basis.MODELLED, EC2_INSTANCE_STORE_SOURCE),
        read=_disk(_mib(read * volumes), Basis.MODELLED, EC2_INSTANCE_STORE_SOURCE),
        local=True,
    )


#: pd-balanced: 140 MiB/s per VM plus 0.28 MiB/s per GiB (cloud.google.com/compute/docs/disks/performance;
#: issue 28 saw ~190 MiB/s for 200 GB), up to 1,200 MiB/s per VM on the largest machines. Hyperdisk Balanced
#: provisions its throughput; unprovisioned (as this program creates it) it is taken with the same formula
#: ("Hyperdisk Balanced throughput scales at 0.28 MiBps per GiB with a baseline of 140 MiBps per instance",
#: a GKE operator's notes citing the same page): the figure GCP does not state for the default was not found.
GCP_BALANCED_BASE_MIBPS = 140
GCP_BALANCED_MIBPS_PER_GIB = 0.28
GCP_BALANCED_MAX_MIBPS = 1200
GCP_BALANCED_SOURCE = (
    "140 MiB/s + 0.28 MiB/s per GiB, GCP disk performance (cloud.google.com/compute/docs/disks/performance, "
    "read 2026-12-07)"
)


def gcp_balanced_disk(disk_type: str, size_gb: int) -> Storage:
    """A pd-balanced or (unprovisioned) hyperdisk-balanced disk of ``size_gb``: provisioned performance,
    so the slowest a healthy start sees is the same figure."""
    mibps = min(GCP_BALANCED_MAX_MIBPS, GCP_BALANCED_BASE_MIBPS + GCP_BALANCED_MIBPS_PER_GIB * size_gb)
    rate = Rate(_mib(mibps), _mib(mibps), Basis.PUBLISHED, GCP_BALANCED_SOURCE)
    return Storage(f"{disk_type} boot disk ({size_gb} GB)", write=rate, read=rate)


def gp3(throughput_mibps: int, size_gb: int) -> Storage:
    """A gp3 volume at its provisioned throughput (125-1,000 MiB/s, EBS volume types, read 2026-12-07)."""
    rate = Rate(
        _mib(throughput_mibps),
        _mib(throughput_mibps),
        Basis.PUBLISHED,
        f"gp3 provisioned at {throughput_mibps} MiB/s "
        "(docs.aws.amazon.com/ebs/latest/userguide/general-purpose.html)",
    )
    return Storage(f"gp3 root volume ({size_gb} GB)", write=rate, read=rate)


#: A network volume of a class the stack does not know (a pod's cache volume: its StorageClass decides).
#: Modelled between the clouds' default SSD classes: pd-balanced at 200 GB (196 MiB/s, above) expected,
#: gp3's unprovisioned 125 MiB/s (EBS volume types) the slowest.
NETWORK_VOLUME = Storage(
    "a network volume (its StorageClass)",
    write=Rate(_mib(196), _mib(125), Basis.MODELLED, "pd-balanced at 200 GB expected, gp3 baseline slowest"),
    read=Rate(_mib(196), _mib(125), Basis.MODELLED, "pd-balanced at 200 GB expected, gp3 baseline slowest"),
)
#: vllm:cacheClaim's ReadWriteMany volume: Filestore Zonal's smallest instance (1 TiB) reads 260 MiB/s and
#: writes 88 MiB/s, scaling with capacity (cloud.google.com/filestore/docs/service-tiers-zonal); EFS serves
#: 500 MiB/s per client with provisioned throughput, 1,500 with Elastic (docs.aws.amazon.com/efs/latest/
#: ug/performance.html). Slower tiers (Filestore Basic HDD: 100 MiB/s) are no place to serve a model from.
SHARED_CLAIM = Storage(
    "ReadWriteMany claim (vllm:cacheClaim)",
    write=Rate(90, 90, Basis.PUBLISHED, "Filestore Zonal at 1 TiB writes 88 MiB/s"),
    read=Rate(
        250,
        250,
        Basis.PUBLISHED,
        "Filestore Zonal at 1 TiB: 260/88 MiB/s read/write; EFS 500+ MiB/s per client",
    ),
    shared=True,
)

#: From the node's files into GPU memory (safetensors, vLLM's default loader), when the storage is not
#: slower: "Loading weights took 0.69 seconds ... Model loading took 3.4213 GiB" from the page cache,
#: 5.3 GB/s (vLLM log in github.com/vllm-project/vllm/issues/20264, 2025-06-30); slowest modelled.
SAFETENSORS_LOAD = Rate(5000, 1000, Basis.MEASURED, "vLLM's log in vllm-project/vllm#20264 (2025-06-30)")


# --- the fixed part ------------------------------------------------------------------------------------

#: From the VM's start to the GPUs answering nvidia-smi (the images ship the driver).
BOOT_AND_DRIVER = Step(
    90,
    900,
    Basis.MODELLED,
    "EC2 launch to SSH measured at 25.8 s average (github.com/brevdev/ec2-coldboot-research) and 40 s "
    "(depot.dev/blog/faster-ec2-boot-time, 2024-05-23) for CPU types; GPU machines add the driver's start "
    "for each GPU: 90 s modelled; slowest 900 s, vm_bootstrap.sh's wait for the NVIDIA driver",
)
#: The vLLM image: about 12 GB to pull ("docker pull vllm/vllm-openai:latest - the image is around 12 GB",
#: github.com/vllm-project/vllm/issues/27154, 2025-10-18).
VLLM_IMAGE_GB = 12
#: Pulling and unpacking it from the stack's registry mirror (GCP) or Docker Hub (AWS): layers pull in
#: parallel, but each unpacks on one core; modelled.
IMAGE_PULL = Rate(
    200,
    50,
    Basis.MODELLED,
    "docker pull and unpack of the vLLM image, modelled (no public measurement found)",
)
#: vLLM's custom all-reduce checks P2P access between every GPU pair once per machine and caches the answer
#: ("reading GPU P2P access cache from /root/.cache/vllm/gpu_p2p_access_cache_for_0,...,7.json",
#: github.com/vllm-project/vllm/issues/10702, 2024-11-27): a fresh VM runs the check.
P2P_CHECK = Step(5, 60, Basis.MODELLED, "vLLM's GPU P2P check, cached per machine (vllm#10702's log)")
TORCH_COMPILE = Step(
    30,
    600,
    Basis.MEASURED,
    "torch.compile takes 28.77 s in total (vLLM log in kubernetes-sigs/gateway-api-inference-extension#550, "
    "2025-03-21), 7.51 s from its cache (vllm#20264, 2025-06-30); slowest 600 s modelled (vllm#34399 "
    "reports 2,222 s for one model, an outlier)",
)
#: The same from vLLM's compile cache, which a later replica restores from the stack's bucket
#: (scripts/compile_cache.sh) or reads from Kubernetes' shared claim. Its slowest figure is no budget's: a
#: replica that misses the cache compiles, so every budget keeps TORCH_COMPILE's slowest.
TORCH_COMPILE_FROM_CACHE = Step(
    8, 60, Basis.MEASURED, "torch.compile takes 7.51 s in total from its cache (vllm#20264, 2025-06-30)"
)
#: vLLM's compile cache of one replica, per GPU (each tensor-parallel rank compiles its own units,
#: ``torch_compile_cache/<hash>/rank_<r>_<dp>/``): modelled, as no public size of it was found.
COMPILE_CACHE_GB_PER_GPU = 0.25
COMPILE_CACHE_SIZE_SOURCE = (
    "no public size found (vLLM, llm-d, Dynamo and SkyRL threads on persisting the cache name its layout, "
    "not its size; searched 2026-12-07): Inductor's generated code and Triton's kernels for one model's "
    "graphs, a few hundred MB a rank at most, modelled at 0.25 GB per GPU (2 GB for 8)"
)
#: compile_cache.sh's calls around the bytes of a restore: the listing of the key's markers, a marker read
#: per unit, the sync's start (a gcloud or aws CLI start each, about a second); modelled.
COMPILE_CACHE_RESTORE = Step(
    5,
    60,
    Basis.MODELLED,
    "compile_cache.sh's listing, marker reads and sync start: a CLI call of about a second each",
)
CUDA_GRAPHS = Step(
    20,
    120,
    Basis.MEASURED,
    "Graph capturing finished in 17 secs (vllm#20264, 2025-06-30), 10-15 secs for Llama-3-8B "
    "(vllm-project/vllm#11005, 2024-12-09); slowest modelled",
)
#: The rest of vLLM's start: engine processes, the KV cache's profile, the API server: ~30 s not in the
#: engine's log between its start and the first answer (vllm#20264).
SERVER_START = Step(30, 120, Basis.MEASURED, "~30 s outside the logged steps (vllm#20264, 2025-06-30)")
#: A Ray group's nodes boot together; the head waits for the last to join (scripts/ray_bootstrap.sh).
RAY_JOIN = Step(30, 300, Basis.MODELLED, "the last node of a group joining Ray after the first")


def image_pull() -> Step:
    """The vLLM image's pull as a step, from its size and the registry's rate."""
    return Step(
        IMAGE_PULL.seconds(VLLM_IMAGE_GB),
        IMAGE_PULL.seconds(VLLM_IMAGE_GB, slowest=True),
        IMAGE_PULL.basis,
        f"{VLLM_IMAGE_GB} GB (vllm#27154) at {IMAGE_PULL.expected_mbps} MB/s, "
        f"slowest {IMAGE_PULL.slowest_mbps}",
    )


def vllm_start() -> tuple[tuple[str, Step], ...]:
    """vLLM's start after its weights are on the node, step by step."""
    return (
        ("P2P check", P2P_CHECK),
        ("torch.compile", TORCH_COMPILE),
        ("CUDA graph capture", CUDA_GRAPHS),
        ("server start", SERVER_START),
    )


def fixed_steps() -> tuple[tuple[str, Step], ...]:
    """Every fixed step of a start, in order, by name."""
    return (("boot and driver", BOOT_AND_DRIVER), ("image pull", image_pull()), *vllm_start())


def table() -> tuple[tuple[str, str, str, str], ...]:
    """The table as rows (what, expected, slowest, basis and source), for docs/cold-start.md."""
    rows: list[tuple[str, str, str, str]] = []

    def rate(what: str, r: Rate) -> None:
        rows.append(
            (what, f"{r.expected_mbps} MB/s", f"{r.slowest_mbps} MB/s", f"{r.basis.value}: {r.source}")
        )

    def step(what: str, s: Step) -> None:
        rows.append(
            (what, f"{s.expected_seconds} s", f"{s.slowest_seconds} s", f"{s.basis.value}: {s.source}")
        )

    rate("Hub download", HUB)
    rate("bucket to VM (per VM)", BUCKET)
    for machine in NIC_GBPS:
        rate(f"bucket to {machine}", bucket_to_vm(machine))
    for disks in GCP_LOCAL_SSD_MIBPS:
        ssd = gcp_local_ssd(disks)
        rate(f"GCP local SSD x{disks} write", ssd.write)
        rate(f"GCP local SSD x{disks} read", ssd.read)
    store = ec2_instance_store(8, 3840)
    rate("EC2 instance store x8 write", store.write)
    rate("EC2 instance store x8 read", store.read)
    rate("pd-balanced / hyperdisk-balanced 200 GB", gcp_balanced_disk("pd-balanced", 200).read)
    rate("gp3 at 1,000 MiB/s", gp3(1000, 200).read)
    rate("network volume of unknown class", NETWORK_VOLUME.read)
    rate("ReadWriteMany claim write", SHARED_CLAIM.write)
    rate("ReadWriteMany claim read", SHARED_CLAIM.read)
    rate("safetensors load to GPU", SAFETENSORS_LOAD)
    for name, s in fixed_steps():
        step(name, s)
    step("torch.compile from its cache", TORCH_COMPILE_FROM_CACHE)
    gb = f"{COMPILE_CACHE_GB_PER_GPU} GB"
    rows.append(("compile cache per GPU", gb, gb, f"{Basis.MODELLED.value}: {COMPILE_CACHE_SIZE_SOURCE}"))
    step("compile cache restore (beside its bytes)", COMPILE_CACHE_RESTORE)
    step("Ray group join", RAY_JOIN)
    return tuple(rows)

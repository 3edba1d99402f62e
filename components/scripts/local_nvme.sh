#!/usr/bin/env bash
# Puts a directory (the HF cache, where the weights land) and Docker's data root (the vLLM image's layers and
# the container's writable layer, ~10-20 GB) on the machine's local NVMe instead of the network boot disk: a
# RAID0 of every local NVMe SSD, formatted and mounted at ROOT, the directory bound to ROOT/vllm-cache.
# Run as root at boot by vm_bootstrap.sh on machines that have local NVMe (GCP A3/A4 local SSDs, EC2
# instance store), and after a reboot by docker.service itself, before dockerd starts (a drop-in).
#
#   local_nvme.sh DIRECTORY
#
# Local NVMe is scratch: it survives a guest reboot but not a stop or a host maintenance event, which on a
# GPU VM recreates the disks empty. So the array is assembled if it exists, created otherwise, formatted only
# when it holds no file system, and the weights and the image are fetched again when it comes back empty.
#
#   LOCAL_NVME_BY_ID   where the disks' stable names are                                  [/dev/disk/by-id]
#   LOCAL_NVME_DLAMI   the AWS Deep Learning AMI's own RAID0 of the instance store, mounted at boot when
#                      present; used as it is                                               [/opt/dlami/nvme]
#   LOCAL_NVME_ROOT    where this script mounts the array otherwise                          [/mnt/vllm-nvme]
#   LOCAL_NVME_DOCKER  Docker's daemon.json and the docker.service drop-in that runs this script first
#                      [/etc/docker/daemon.json:/etc/systemd/system/docker.service.d/vllm-nvme.conf]
set -euo pipefail

readonly TARGET=${1:?usage: local_nvme.sh DIRECTORY}
readonly BY_ID=${LOCAL_NVME_BY_ID:-/dev/disk/by-id}
readonly DLAMI=${LOCAL_NVME_DLAMI:-/opt/dlami/nvme}
readonly ROOT=${LOCAL_NVME_ROOT:-/mnt/vllm-nvme}
readonly DOCKER=${LOCAL_NVME_DOCKER:-/etc/docker/daemon.json:/etc/systemd/system/docker.service.d/vllm-nvme.conf}
readonly ARRAY=/dev/md/vllm-nvme

log() { echo "local-nvme: $*"; }

# The local NVMe SSDs, each once: GCP names them google-local-nvme-ssd-N; EC2 names instance store volumes
# nvme-Amazon_EC2_NVMe_Instance_Storage_<serial> (EBS volumes are nvme-Amazon_Elastic_Block_Store_*).
local_disks() {
  local link
  for link in "$BY_ID"/google-local-nvme-ssd-* "$BY_ID"/nvme-Amazon_EC2_NVMe_Instance_Storage_*; do
    [ -e "$link" ] || continue
    case "$link" in *-part[0-9]* | *_[0-9]) continue ;; esac # partitions and namespace aliases
    readlink -f "$link"
  done | sort -u
}

# Mounts the array at ROOT (or finds it, or the DLAMI's) and sets NVME to where it is; empty without local
# NVMe. Called as a command, never as a condition, so that set -e stops the script at any failed step.
mount_array() {
  NVME=$DLAMI
  if mountpoint -q "$DLAMI"; then return 0; fi
  NVME=$ROOT
  if mountpoint -q "$ROOT"; then return 0; fi
  local -a disks
  mapfile -t disks < <(local_disks)
  if [ "${#disks[@]}" -eq 0 ]; then
    NVME=
    return 0
  fi
  local device=${disks[0]}
  if [ "${#disks[@]}" -gt 1 ]; then
    command -v mdadm >/dev/null || apt-get install -y -q mdadm
    # After a reboot udev has usually assembled the array already (mdadm's incremental rules): --assemble
    # and --create then fail on busy disks, so an active array is used as it is.
    if ! mdadm --detail "$ARRAY" >/dev/null 2>&1 && ! mdadm --assemble "$ARRAY" "${disks[@]}" >/dev/null 2>&1; then
      mdadm --create "$ARRAY" --run --level=0 --raid-devices="${#disks[@]}" "${disks[@]}"
    fi
    device=$ARRAY
  fi
  if ! blkid "$device" >/dev/null 2>&1; then
    # No reserved blocks (root needs none on a cache); lazy init: the disk is usable at once.
    mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1 "$device"
  fi
  mkdir -p "$ROOT"
  mount -o noatime "$device" "$ROOT"
  log "$ROOT is on ${#disks[@]} local NVMe disk(s) ($device)"
}

# Docker's data root on the array: "data-root" merged into daemon.json, its other keys (the NVIDIA runtime)
# kept; a drop-in has docker.service run this script before dockerd, so after a reboot the array is mounted
# before Docker reads its data root (ordered after the DLAMI's own dlami-nvme.service where it exists).
# Sets RESTART_DOCKER when the data root changed (never when this script runs as that drop-in).
docker_on_nvme() {
  local config=${DOCKER%%:*} drop_in=${DOCKER#*:} changed
  changed=$(python3 -c 'import json, os, sys
path, root = sys.argv[1:]
config = json.load(open(path)) if os.path.exists(path) else {}
if config.get("data-root") != root:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump({**config, "data-root": root}, open(path, "w"), indent=2)
    print("changed")' "$config" "$NVME/docker")
  if [ -z "$changed" ]; then return 0; fi
  mkdir -p "$(dirname "$drop_in")"
  # "-": Docker starts even if the array cannot be mounted; vllm.service's own run of this script then fails
  # loudly and the health agent judges the machine, where a failed docker.service would leave it down.
  printf '[Unit]\nAfter=dlami-nvme.service\n[Service]\nExecStartPre=-%s %s\n' "$(readlink -f "$0")" "$TARGET" >"$drop_in"
  systemctl daemon-reload
  RESTART_DOCKER=1
}

main() {
  RESTART_DOCKER=
  mkdir -p "$TARGET"
  exec 9>>"$TARGET.lock" # docker.service's drop-in and the boot may both run this at boot: one at a time
  flock 9
  mount_array
  if [ -z "$NVME" ]; then
    log "no local NVMe: $TARGET and docker's data root stay on the boot disk"
    return 0
  fi
  if ! mountpoint -q "$TARGET"; then
    mkdir -p "$NVME/vllm-cache"
    mount --bind "$NVME/vllm-cache" "$TARGET"
    log "$TARGET is on the local NVMe ($NVME)"
  fi
  docker_on_nvme
  # Unlocked before the restart: docker's start runs this script (the drop-in), which takes the lock, and
  # moby's docker.service has TimeoutStartSec=0, so a restart under the lock would wait forever.
  flock -u 9
  exec 9>&-
  if [ -n "$RESTART_DOCKER" ]; then
    systemctl restart docker
    log "docker's data root is $NVME/docker"
  fi
}

main

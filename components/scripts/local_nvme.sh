#!/usr/bin/env bash
# Puts a directory (the HF cache, where the weights land) on the machine's local NVMe instead of the network
# boot disk: a RAID0 of every local NVMe SSD, formatted and mounted there. Run as root at boot by
# vm_bootstrap.sh on machines that have local NVMe (GCP A3/A4 local SSDs, EC2 instance store).
#
#   local_nvme.sh DIRECTORY
#
# Local NVMe is scratch: it survives a guest reboot but not a stop or a host maintenance event, which on a
# GPU VM recreates the disks empty. So the array is assembled if it exists, created otherwise, formatted only
# when it holds no file system, and the weights are fetched again when it comes back empty.
#
#   LOCAL_NVME_BY_ID   where the disks' stable names are                                  [/dev/disk/by-id]
#   LOCAL_NVME_DLAMI   the AWS Deep Learning AMI's own RAID0 of the instance store, mounted at boot when
#                      present; used as it is                                               [/opt/dlami/nvme]
set -euo pipefail

readonly TARGET=${1:?usage: local_nvme.sh DIRECTORY}
readonly BY_ID=${LOCAL_NVME_BY_ID:-/dev/disk/by-id}
readonly DLAMI=${LOCAL_NVME_DLAMI:-/opt/dlami/nvme}
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

main() {
  mkdir -p "$TARGET"
  if mountpoint -q "$TARGET"; then
    log "$TARGET is already mounted"
    return 0
  fi
  if mountpoint -q "$DLAMI"; then
    mkdir -p "$DLAMI/vllm-cache"
    mount --bind "$DLAMI/vllm-cache" "$TARGET"
    log "$TARGET is on the Deep Learning AMI's instance store array ($DLAMI)"
    return 0
  fi
  local -a disks
  mapfile -t disks < <(local_disks)
  if [ "${#disks[@]}" -eq 0 ]; then
    log "no local NVMe: $TARGET stays on the boot disk"
    return 0
  fi
  local device=${disks[0]}
  if [ "${#disks[@]}" -gt 1 ]; then
    command -v mdadm >/dev/null || apt-get install -y -q mdadm
    if ! mdadm --assemble "$ARRAY" "${disks[@]}" >/dev/null 2>&1; then
      mdadm --create "$ARRAY" --run --level=0 --raid-devices="${#disks[@]}" "${disks[@]}"
    fi
    device=$ARRAY
  fi
  if ! blkid "$device" >/dev/null 2>&1; then
    # No reserved blocks (root needs none on a cache); lazy init: the disk is usable at once.
    mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1 "$device"
  fi
  mount -o noatime "$device" "$TARGET"
  log "$TARGET is on ${#disks[@]} local NVMe disk(s) ($device)"
}

main

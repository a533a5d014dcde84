#!/usr/bin/env bash
# Install the Debian packages pytest-iotemu uses, if any is missing.
# Run as root (CI, lab machines); as another user it only says what is missing.
set -euo pipefail

PACKAGES=(
  iproute2          # ip netns, veth, bridge, tc
  nftables          # the lab's branch policy
  dnsmasq-base      # DHCP server (default)
  kea-dhcp4-server  # DHCP server (option)
  kea-admin         # perfdhcp, the reference load generator
  tcpdump           # BPF filters (tcpdump -dd) and captures
  tshark            # decoding checks of our frames
  ethtool           # offloads on lab links
  libpcap0.8        # BPF compilation for scapy in tests
  isc-dhcp-client   # dhclient: a real DHCP client for the lab tests
  chromium          # headless check that the HTML report renders
  mosquitto         # the lab's MQTT broker (the devices' MQTT peer)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

# Node.js and npm for the report tools (`make report-tools`): Debian's, unless the
# machine already has an npm (a NodeSource nodejs bundles its own; Debian's npm would
# conflict with it).
if ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing: ${missing[*]}" >&2
  echo "install them as root: apt-get install ${missing[*]}" >&2
  exit 0
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# tshark asks whether non-root users may capture: answer no, never prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged daemons on install; the lab runs its own per-run
# instances, so stop only the units this step just installed (never a user's).
for unit in kea-dhcp4-server isc-kea-dhcp4-server kea-ctrl-agent isc-kea-ctrl-agent mosquitto; do
  if systemctl list-unit-files "$unit.service" >/dev/null 2>&1; then
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  fi
done
echo "system packages: installed"

"""Bad specs and the exact messages they get: place, key path, what was expected."""
from __future__ import annotations

import pytest

from pytest_iotemu.spec.errors import SpecError
from pytest_iotemu.spec.schema import parse_spec

BASE = "fleet: t\nlab:\n  lan: 10.0.0.0/24\n"

# name -> (spec text, environment, every error line expected, in order)
CASES = {
    'empty': (
        '',
        None,
        [
            'spec.yaml:1:1: (document): the file is empty: a fleet spec needs at least `fleet:` and `devices:` (see docs/spec.md)',
        ],
    ),
    'comment_only': (
        '# nothing\n',
        None,
        [
            'spec.yaml:1:1: (document): the file is empty: a fleet spec needs at least `fleet:` and `devices:` (see docs/spec.md)',
        ],
    ),
    'top_list': (
        '- a\n- b\n',
        None,
        [
            'spec.yaml:1:1: (document): expected a fleet spec mapping (fleet:, devices:, …), got a list',
        ],
    ),
    'yaml_syntax': (
        'fleet: t\ndevices: [{profile: axis-camera\n',
        None,
        [
            "spec.yaml:3:1: (document): not valid YAML: while parsing a flow mapping, expected ',' or '}', but got '<stream end>'",
        ],
    ),
    'python_tag': (
        BASE + "devices: !!python/object/apply:os.system ['echo pwned']\n",
        None,
        [
            "spec.yaml:4:10: devices: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed: only plain values, lists and mappings are read (tags are refused, never executed); remove the tag",
        ],
    ),
    'custom_tag': (
        BASE + 'devices: !include other.yaml\n',
        None,
        [
            "spec.yaml:4:10: devices: YAML tag '!include' is not allowed: only plain values, lists and mappings are read (tags are refused, never executed); remove the tag",
        ],
    ),
    'duplicate_key': (
        BASE + 'devices: []\ndevices:\n  - {profile: axis-camera}\n',
        None,
        [
            "spec.yaml:5:1: devices: duplicate key 'devices' (first written at line 4); keep one",
        ],
    ),
    'misspelt_top': (
        BASE + 'devics:\n  - {profile: axis-camera}\n',
        None,
        [
            "spec.yaml:1:1: devices: required key 'devices' is missing: list the device groups, e.g. devices: [{profile: axis-camera, count: 4}]",
            "spec.yaml:4:1: devics: unknown key 'devics' (did you mean 'devices'?); a fleet spec mapping (fleet:, devices:, …) takes: fleet, seed, profiles, allow_live, sites, interface, lab, targets, devices, expect, pacing, engines",
        ],
    ),
    'missing_fleet': (
        'lab: {lan: 10.0.0.0/24}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:1:1: fleet: required key 'fleet' is missing from a fleet spec mapping (fleet:, devices:, …)",
        ],
    ),
    'unknown_profile': (
        BASE + 'devices:\n  - {profile: axis-camra, count: 2}\n',
        None,
        [
            "spec.yaml:5:15: devices[0].profile: unknown profile 'axis-camra' (did you mean 'axis-camera'?); `iotemu profiles` lists them, or add your own with `profiles:`",
        ],
    ),
    'count_zero': (
        BASE + 'devices:\n  - {profile: axis-camera, count: 0}\n',
        None,
        [
            "spec.yaml:5:35: devices[0].count: expected a device count 1 to 1000000, got '0'",
        ],
    ),
    'count_text': (
        BASE + 'devices:\n  - {profile: axis-camera, count: twelve}\n',
        None,
        [
            "spec.yaml:5:35: devices[0].count: expected a device count, got 'twelve'",
        ],
    ),
    'lan_host_bits': (
        'fleet: t\nlab:\n  lan: 10.0.0.1/24\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:3:8: lab.lan: expected a network address with no host bits set (write 10.0.0.0/24), got '10.0.0.1/24'",
        ],
    ),
    'gateway_outside': (
        BASE + '  gateway: 10.0.1.1\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            'spec.yaml:4:12: lab.gateway: gateway 10.0.1.1 is not a host address of the LAN 10.0.0.0/24',
        ],
    ),
    'pool_outside': (
        BASE + '  pools:\n    default: {range: 10.0.0.10-10.0.1.20}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:5:22: lab.pools.default.range: range 10.0.0.10-10.0.1.20 is not inside the LAN's host addresses (10.0.0.1-10.0.0.254)",
        ],
    ),
    'pools_overlap': (
        BASE + '  pools:\n    cams: {range: 10.0.0.10-10.0.0.50, match: {class: camera}}\n    default: {range: 10.0.0.40-10.0.0.90}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:6:22: lab.pools.default.range: range 10.0.0.40-10.0.0.90 overlaps pool 'cams' (10.0.0.10-10.0.0.50, line 5); pools must not share addresses",
        ],
    ),
    'pool_has_gateway': (
        BASE + '  pools:\n    default: {range: 10.0.0.1-10.0.0.90}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            'spec.yaml:5:22: lab.pools.default.range: range 10.0.0.1-10.0.0.90 holds the gateway 10.0.0.1; start or end it beside the gateway',
        ],
    ),
    'pool_capacity': (
        BASE + '  pools:\n    cams: {range: 10.0.0.10-10.0.0.12, match: {class: camera}}\n    default: {range: 10.0.0.20-10.0.0.90}\ndevices: [{profile: axis-camera, count: 5}]\n',
        None,
        [
            "spec.yaml:5:19: lab.pools.cams.range: pool 'cams' has 3 addresses but 5 enabled devices classify into it; widen the range or move devices to another pool",
        ],
    ),
    'two_catch_all': (
        BASE + '  pools:\n    a: {range: 10.0.0.10-10.0.0.20}\n    b: {range: 10.0.0.30-10.0.0.40}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:6:8: lab.pools.b: pools 'a' and 'b' both lack `match:`; only one pool can take the devices no other pool matched: give this one a match",
        ],
    ),
    'unmatched': (
        BASE + '  pools:\n    cams: {range: 10.0.0.10-10.0.0.20, match: {class: camera}}\ndevices: [{profile: axis-camera}, {profile: hp-printer}]\n',
        None,
        [
            "spec.yaml:6:35: devices[1]: 1 device of group 'hp-printer' matches no pool and there is no catch-all pool; add a pool without `match:` or a match for them",
        ],
    ),
    'match_class': (
        BASE + '  pools:\n    cams: {range: 10.0.0.10-10.0.0.20, match: {class: camra}}\n    default: {range: 10.0.0.30-10.0.0.40}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:5:55: lab.pools.cams.match.class: expected one of access-control, camera, lighting, medical, mobile, nvr, phone, plc, plug, pos, printer, sbc, … (16 in all), got 'camra' (did you mean 'camera'?)",
        ],
    ),
    'group_clash': (
        BASE + 'devices:\n  - {profile: axis-camera, count: 2}\n  - {profile: axis-camera, count: 3}\n',
        None,
        [
            "spec.yaml:6:15: devices[1]: group 'axis-camera' (named after its profile) clashes with devices[0] (line 5); give one of them a distinct `name:`",
        ],
    ),
    'group_all': (
        BASE + 'devices:\n  - {profile: axis-camera, name: all}\n',
        None,
        [
            "spec.yaml:5:34: devices[0].name: 'all' is reserved (it means every DHCP device); pick another",
        ],
    ),
    'bad_mac': (
        BASE + "devices:\n  - {profile: axis-camera, mac: '00:40:8c:12:34'}\n",
        None,
        [
            "spec.yaml:5:33: devices[0].mac: expected a MAC address such as 00:40:8c:12:34:56, got '00:40:8c:12:34'",
        ],
    ),
    'dup_mac': (
        BASE + "devices:\n  - {profile: axis-camera, mac: '00:40:8c:12:34:56'}\n  - {profile: hp-printer, mac: '00:40:8C:12:34:56'}\n",
        None,
        [
            'spec.yaml:6:32: devices[1].mac: MAC 00:40:8c:12:34:56 is already used by t/axis-camera-1; every device needs its own MAC',
        ],
    ),
    'mac_count': (
        BASE + "devices:\n  - {profile: axis-camera, count: 3, mac: ['00:40:8c:12:34:56', '00:40:8c:12:34:57']}\n",
        None,
        [
            'spec.yaml:5:35: devices[0].count: count is 3 but `mac:` lists 2 addresses; give one MAC per device',
        ],
    ),
    'multicast_mac': (
        BASE + "devices:\n  - {profile: axis-camera, mac: '01:00:5e:00:00:01'}\n",
        None,
        [
            "spec.yaml:5:33: devices[0].mac: expected a unicast MAC address (the first octet of this one is multicast), got '01:00:5e:00:00:01'",
        ],
    ),
    'pattern_field': (
        BASE + "devices:\n  - {profile: hp-printer, count: 2, hostname: 'prn-{x}'}\n",
        None,
        [
            "spec.yaml:5:47: devices[0].hostname: expected a pattern using only {n}, {group}, {mac}, {mac6}, {MAC} or {MAC6} (found {x}), got 'prn-{x}'",
        ],
    ),
    'pattern_attr': (
        BASE + "devices:\n  - {profile: hp-printer, count: 2, hostname: '{n.__class__}'}\n",
        None,
        [
            "spec.yaml:5:47: devices[0].hostname: expected a pattern using only {n}, {group}, {mac}, {mac6}, {MAC} or {MAC6} (found {n.__class__}), got '{n.__class__}'",
        ],
    ),
    'pattern_no_n': (
        BASE + 'devices:\n  - {profile: hp-printer, count: 3, hostname: printer}\n',
        None,
        [
            "spec.yaml:5:47: devices[0].hostname: all 3 devices would send the host name 'printer'; add {n} (e.g. printer-{n}) or {mac6}",
        ],
    ),
    'pattern_bad_host': (
        BASE + "devices:\n  - {profile: hp-printer, count: 2, hostname: 'prn {n}'}\n",
        None,
        [
            "spec.yaml:5:47: devices[0].hostname: device 1 would send 'prn 1', not a valid host name (letters, digits, '-' and '_' in labels of at most 63 characters, not starting or ending with '-')",
        ],
    ),
    'duration_unit': (
        BASE + 'devices: [{profile: axis-camera}]\nexpect:\n  - dhcp: {within: 5}\n',
        None,
        [
            "spec.yaml:6:20: expect[0].dhcp.within: expected a duration such as 250ms, 5s, 10m or 1h (a bare number has no unit: write 5s?), got '5'",
        ],
    ),
    'rate_bytes': (
        BASE + 'targets:\n  c: {address: 192.0.2.1, services: [554/udp]}\ndevices: [{profile: axis-camera}]\nexpect:\n  - throughput: {from: axis-camera, to: c, rate: 2MBps}\n',
        None,
        [
            "spec.yaml:8:50: expect[0].throughput.rate: expected a rate such as 500kbps, 2mbps (or 2mbit) or 1gbps (rates are in bits: 1MBps is 8mbps), got '2MBps'",
        ],
    ),
    'size_bad': (
        BASE + 'devices: [{profile: axis-camera}]\nexpect:\n  - resources: {engine_rss: 150 megs}\n',
        None,
        [
            "spec.yaml:6:29: expect[0].resources.engine_rss: expected a size such as 150MB (10^6 bytes) or 150MiB (2^20 bytes), got '150 megs'",
        ],
    ),
    'percent_over': (
        BASE + 'devices: [{profile: axis-camera}]\nexpect:\n  - dhcp: {bound: 120%}\n',
        None,
        [
            "spec.yaml:6:19: expect[0].dhcp.bound: expected a percentage between 0% and 100%, got '120%'",
        ],
    ),
    'service_proto': (
        BASE + 'targets:\n  c: {address: 192.0.2.1, services: [445/tpc]}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:5:38: targets.c.services[0]: expected a service such as 445/tcp, 554/udp or icmp, got '445/tpc'",
        ],
    ),
    'service_port': (
        BASE + 'targets:\n  c: {address: 192.0.2.1, services: [70000/tcp]}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:5:38: targets.c.services[0]: expected a port between 1 and 65535 (as in 445/tcp), got '70000/tcp'",
        ],
    ),
    'expect_kind': (
        BASE + 'devices: [{profile: axis-camera}]\nexpect:\n  - dchp: {group: all}\n',
        None,
        [
            "spec.yaml:6:5: expect[0].dchp: unknown key 'dchp' (did you mean 'dhcp'?); an expectation takes: dhcp, policy, path, throughput, resources",
        ],
    ),
    'expect_group': (
        BASE + 'devices: [{profile: axis-camera}]\nexpect:\n  - dhcp: {group: axis-camrea}\n',
        None,
        [
            "spec.yaml:6:19: expect[0].dhcp.group: unknown device group 'axis-camrea' (did you mean 'axis-camera'?); known: all, axis-camera",
        ],
    ),
    'policy_target': (
        BASE + 'targets:\n  files: {address: 192.0.2.1, services: [445/tcp]}\ndevices: [{profile: axis-camera}]\nexpect:\n  - policy: {from: axis-camera, to: file, verdict: block}\n',
        None,
        [
            "spec.yaml:8:37: expect[0].policy.to: unknown target 'file' (did you mean 'files'?); known: files; declare it under `targets:`",
        ],
    ),
    'policy_service': (
        BASE + 'targets:\n  files: {address: 192.0.2.1, services: [445/tcp]}\ndevices: [{profile: axis-camera}]\nexpect:\n  - policy: {from: axis-camera, to: files, service: 139/tcp, verdict: block}\n',
        None,
        [
            "spec.yaml:8:53: expect[0].policy.service: target 'files' does not offer 139/tcp (it lists: 445/tcp); add it to targets.files.services",
        ],
    ),
    'policy_verdict': (
        BASE + 'targets:\n  files: {address: 192.0.2.1, services: [445/tcp]}\ndevices: [{profile: axis-camera}]\nexpect:\n  - policy: {from: axis-camera, to: files, verdict: deny}\n',
        None,
        [
            "spec.yaml:8:53: expect[0].policy.verdict: expected one of allow, block, got 'deny'",
        ],
    ),
    'path_via': (
        BASE + '  wan: [{name: mpls}, {name: internet}]\ntargets:\n  sip: {address: 192.0.2.5, services: [5060/udp]}\ndevices: [{profile: cisco-ip-phone}]\nexpect:\n  - path: {from: cisco-ip-phone, to: sip, via: mlps}\n',
        None,
        [
            "spec.yaml:9:48: expect[0].path.via: unknown WAN 'mlps' (did you mean 'mpls'?); known: internet, mpls; WANs are declared under lab.wan",
        ],
    ),
    'failover_one_wan': (
        BASE + 'targets:\n  sip: {address: 192.0.2.5, services: [5060/udp]}\ndevices: [{profile: cisco-ip-phone}]\nexpect:\n  - path: {from: cisco-ip-phone, to: sip, failover: {within: 3s}}\n',
        None,
        [
            'spec.yaml:8:53: expect[0].path.failover: failover needs a second WAN to move to; add one under lab.wan',
        ],
    ),
    'throughput_min': (
        BASE + 'targets:\n  c: {address: 192.0.2.1, services: [554/udp]}\ndevices: [{profile: axis-camera}]\nexpect:\n  - throughput: {from: axis-camera, to: c, rate: 2mbps, min: 3mbps}\n',
        None,
        [
            'spec.yaml:8:62: expect[0].throughput.min: min 3mbps is above the offered rate 2mbps; it can never pass',
        ],
    ),
    'throughput_service': (
        BASE + 'targets:\n  c: {address: 192.0.2.1, services: [443/tcp, 554/udp, 5000/udp]}\ndevices: [{profile: axis-camera}]\nexpect:\n  - throughput: {from: axis-camera, to: c, rate: 2mbps}\n',
        None,
        [
            "spec.yaml:8:17: expect[0].throughput.service: target 'c' has several UDP services (554/udp, 5000/udp); say which with `service:`",
        ],
    ),
    'server_rss_live': (
        'fleet: t\ninterface: ens4\ndevices: [{profile: axis-camera}]\nexpect:\n  - resources: {server_rss: 100MB}\n',
        None,
        [
            "spec.yaml:5:29: expect[0].resources.server_rss: server_rss measures the lab's DHCP server; on a real interface the server is not ours to measure",
        ],
    ),
    'unset_env': (
        'fleet: t\nlab:\n  lan: ${LAN}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            'spec.yaml:3:8: lab.lan: environment variable LAN is not set: export it or give a default, ${LAN:-value}',
        ],
    ),
    'lease_dnsmasq': (
        BASE + '  lease_time: 30s\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:4:15: lab.lease_time: expected at least 120s for dnsmasq, got '30s' (use dhcp_server: kea for shorter leases)",
        ],
    ),
    'static_in_pool': (
        BASE + '  pools:\n    default: {range: 10.0.0.10-10.0.0.90}\ndevices: [{profile: axis-camera, count: 2, static_ip: 10.0.0.50}]\n',
        None,
        [
            "spec.yaml:6:55: devices[0].static_ip: addresses 10.0.0.50-10.0.0.51 overlap DHCP pool 'default' (10.0.0.10-10.0.0.90); the server would hand them out: pick addresses outside the pools",
        ],
    ),
    'sites_mix': (
        'fleet: t\ndevices: [{profile: axis-camera}]\nsites:\n  - name: a\n    lab: {lan: 10.0.0.0/24}\n    devices: [{profile: axis-camera}]\n',
        None,
        [
            'spec.yaml:2:1: devices: `devices:` cannot stand beside `sites:`; move it into a site (the one-site shorthand is for files without `sites:`)',
        ],
    ),
    'dup_site': (
        'fleet: t\nsites:\n  - name: a\n    lab: {lan: 10.0.0.0/24}\n    devices: [{profile: axis-camera}]\n  - name: a\n    lab: {lan: 10.1.0.0/24}\n    devices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:6:11: sites[1].name: site 'a' is defined twice (first at line 3); site names must be unique",
        ],
    ),
    'threat': (
        BASE + 'devices: [{profile: axis-camera, threats: [port_scn]}]\n',
        None,
        [
            "spec.yaml:4:44: devices[0].threats[0]: expected one of beacon, data_exfil, dns_flood, pan_test_domains, port_scan, random, got 'port_scn' (did you mean 'port_scan'?)",
        ],
    ),
    'rule_via_block': (
        BASE + '  wan: [mpls, internet]\n  policy:\n    rules:\n      - {to: files, action: block, via: mpls}\ntargets:\n  files: {address: 192.0.2.1, services: [445/tcp]}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            'spec.yaml:7:41: lab.policy.rules[0].via: `via` routes allowed traffic; a rule that says block sends nothing anywhere: remove `via` or allow',
        ],
    ),
    'lab_missing': (
        'fleet: t\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            'spec.yaml:1:1: lab: `interface: lab` needs a `lab:` block with at least `lan:` (e.g. lab: {lan: 10.20.0.0/22})',
        ],
    ),
    'target_in_lan': (
        BASE + 'targets:\n  files: {address: 10.0.0.5, services: [445/tcp]}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            'spec.yaml:5:20: targets.files.address: address 10.0.0.5 is inside the LAN 10.0.0.0/24; in the lab targets sit behind the WANs: pick an address outside the LAN',
        ],
    ),
    'bound_count': (
        BASE + 'devices: [{profile: axis-camera, count: 2}]\nexpect:\n  - dhcp: {group: axis-camera, bound: 3}\n',
        None,
        [
            "spec.yaml:6:39: expect[0].dhcp.bound: expected at most 2 (the size of 'axis-camera'), got 3",
        ],
    ),
    'dhcp_static': (
        BASE + 'devices: [{profile: axis-camera, count: 2, static_ip: 10.0.0.250}]\nexpect:\n  - dhcp: {group: axis-camera}\n',
        None,
        [
            "spec.yaml:4:55: devices[0].static_ip: addresses 10.0.0.250-10.0.0.251 overlap DHCP pool 'default' (10.0.0.2-10.0.0.254); the server would hand them out: pick addresses outside the pools",
            "spec.yaml:6:19: expect[0].dhcp.group: group 'axis-camera' has static_ip and does no DHCP; pick a DHCP group or `all`",
        ],
    ),
    'laughs': (
        'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n',
        None,
        [
            'spec.yaml:1:24: f[0][6][8][8][8][8]: the document expands to more than 200000 values (aliases nested too deeply?); write it out or split it',
        ],
    ),
    'match_profile': (
        BASE + '  pools:\n    cams: {range: 10.0.0.10-10.0.0.20, match: {profile: axis-cam}}\n    default: {range: 10.0.0.30-10.0.0.40}\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:5:57: lab.pools.cams.match.profile: unknown profile 'axis-cam' (did you mean 'axis-camera'?); `iotemu profiles` lists them",
        ],
    ),
    'wan_dup': (
        BASE + '  wan: [mpls, mpls]\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:4:15: lab.wan[1].name: WAN 'mpls' is listed twice (first at line 4); WAN names must be unique",
        ],
    ),
    'option_unknown': (
        BASE + 'devices: [{profile: axis-camera}]\nexpect:\n  - dhcp: {options: {routers: 10.0.0.1}}\n',
        None,
        [
            "spec.yaml:6:22: expect[0].dhcp.options.routers: unknown key 'routers' (did you mean 'router'?); a mapping of DHCP option names to values takes: subnet_mask, router, dns_server, hostname, domain_name, mtu, broadcast_address, ntp_server, lease_time, server_id, renewal_time, rebinding_time, tftp_server, bootfile",
        ],
    ),
    'dhcp_server': (
        BASE + '  dhcp_server: isc\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:4:16: lab.dhcp_server: expected one of dnsmasq, kea, got 'isc'",
        ],
    ),
    'sample_big': (
        BASE + 'targets:\n  files: {address: 192.0.2.1, services: [445/tcp]}\ndevices: [{profile: axis-camera, count: 2}]\nexpect:\n  - policy: {from: axis-camera, to: files, verdict: block, sample: 5}\n',
        None,
        [
            "spec.yaml:8:68: expect[0].policy.sample: expected at most 2 (the size of 'axis-camera'), got 5",
        ],
    ),
    'multi_doc': (
        BASE + 'devices: [{profile: axis-camera}]\n---\nfleet: u\n',
        None,
        [
            'spec.yaml:6:1: (document): the file holds several YAML documents (---); keep one fleet per file',
        ],
    ),
    'iface_bad': (
        'fleet: t\ninterface: eth0/../../x\ndevices: [{profile: axis-camera}]\n',
        None,
        [
            "spec.yaml:2:12: interface: expected `lab` or a network interface name such as ens4 (at most 15 characters), got 'eth0/../../x'",
        ],
    ),
    'var_inject': (
        'fleet: t\nlab:\n  lan: ${LAN}\ndevices: [{profile: axis-camera}]\n',
        {'LAN': '{a: 1}'},
        [
            "spec.yaml:3:8: lab.lan: expected an IPv4 network such as 10.20.0.0/22, got '{a: 1}'",
        ],
    ),
    'request_and_static': (
        BASE + "devices: [{profile: axis-camera, static_ip: 10.0.0.9, request_ip: 10.0.0.9}]\n",
        None,
        [
            "spec.yaml:4:67: devices[0].request_ip: request_ip asks a DHCP server for an address; a group with static_ip does no DHCP: keep one of them",
        ],
    ),
    'request_outside_lan': (
        BASE + "devices: [{profile: axis-camera, count: 3, request_ip: 10.0.0.253}]\n",
        None,
        [
            "spec.yaml:4:56: devices[0].request_ip: 3 addresses from 10.0.0.253 do not fit in the LAN's hosts (10.0.0.1-10.0.0.254)",
        ],
    ),
    'group_protocol': (
        BASE + "devices: [{profile: axis-camera, protocols: [{name: telnet, interval: 5s}]}]\n",
        None,
        [
            "spec.yaml:4:53: devices[0].protocols[0].name: expected one of cloud, coap, dns, http, https, lldp, mdns, mqtt, ntp, rtp, rtsp, sip, … (17 in all), got 'telnet'",
        ],
    ),
    'protocol_dscp_jitter': (
        BASE + "devices: [{profile: axis-camera, protocols: [{name: mqtt, dscp: 64, jitter: 5s}, "
        "{name: rtp, dscp: af51}]}]\n",
        None,
        [
            "spec.yaml:4:65: devices[0].protocols[0].dscp: expected a DSCP: a code point 0 to 63, or ef, af11-af43, cs0-cs7, got '64'",
            "spec.yaml:4:77: devices[0].protocols[0].jitter: expected a percentage such as 99.5%, got '5s'",
            "spec.yaml:4:100: devices[0].protocols[1].dscp: expected a DSCP: a code point 0 to 63, or ef, af11-af43, cs0-cs7, got 'af51'",
        ],
    ),
    'group_vendor': (
        BASE + "devices: [{profile: axis-camera, vendor: [Axis]}]\n",
        None,
        [
            "spec.yaml:4:42: devices[0].vendor: expected the vendor's name, got a list",
        ],
    ),
    'pacing_rate': (
        BASE + "pacing: {rate: fast, stagger: 5}\n" + "devices: [{profile: axis-camera}]\n",
        None,
        [
            "spec.yaml:4:16: pacing.rate: expected DHCP starts per second, a number above zero, got 'fast'",
            "spec.yaml:4:31: pacing.stagger: expected a duration such as 250ms, 5s, 10m or 1h (a bare number has no unit: write 5s?), got '5'",
        ],
    ),
    'pacing_window': (
        BASE + "pacing: {window: 0, burst: 3}\n" + "devices: [{profile: axis-camera}]\n",
        None,
        [
            "spec.yaml:4:18: pacing.window: expected a number of outstanding DHCP starts 1 to 100000, got '0'",
            "spec.yaml:4:21: pacing.burst: unknown key 'burst'; a pacing mapping takes: window, rate, stagger",
        ],
    ),
    'engines_count': (
        BASE + "engines: 0\n" + "devices: [{profile: axis-camera}]\n",
        None,
        [
            "spec.yaml:4:10: engines: expected a number of engine processes 1 to 64, got '0'",
        ],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_spec_gets_exact_errors(name: str) -> None:
    text, env, expected = CASES[name]
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.yaml", env=env or {})
    assert [str(issue) for issue in info.value.issues] == expected


def test_all_errors_are_reported_at_once() -> None:
    text = BASE + (
        "  gateway: 10.9.9.9\n"
        "devices:\n"
        "  - {profile: axis-camra, count: 0}\n"
        "  - {profile: hp-printer, threats: [worm]}\n"
        "expect:\n"
        "  - dhcp: {within: soon}\n"
        "  - dhcp: {group: axis-camra}\n"  # the broken group: no second error for it
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.yaml", env={})
    paths = [issue.path for issue in info.value.issues]
    assert paths == ["lab.gateway", "devices[0].profile", "devices[0].count",
                     "devices[1].threats[0]", "expect[0].dhcp.within"]
    assert str(info.value).endswith("5 errors found; nothing was started")


def test_unsafe_tag_is_never_executed(tmp_path) -> None:
    marker = tmp_path / "pwned"
    text = BASE + f"devices: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError):
        parse_spec(text, "spec.yaml", env={})
    assert not marker.exists()


"""The ``iotemu`` command: validate and show fleet specs, list profiles.

Exit status: 0 success, 2 bad input (spec errors, unknown names, bad options) — with a
message that says what is wrong and how to fix it, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from . import __version__
from .profiles import ProfileLibrary, builtin_profiles
from .spec.errors import SpecError
from .spec.model import FleetSpec
from .importer import read_legacy
from .spec.schema import load_spec, parse_spec, read_text

EXIT_USAGE = 2


class CliError(Exception):
    """Bad input on the command line: printed, exit status 2."""


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _library(args: argparse.Namespace) -> ProfileLibrary:
    return builtin_profiles().with_files(getattr(args, "profiles", None) or [])


def _load(path: str, args: argparse.Namespace) -> FleetSpec:
    spec = load_spec(path, profiles=_library(args))
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return spec


def cmd_validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            spec = _load(path, args)
        except SpecError as exc:
            print(exc.render(), file=sys.stderr)
            status = EXIT_USAGE
            continue
        devices = len(spec.devices)
        checks = sum(len(s.expectations) for s in spec.sites)
        sites = len(spec.sites)
        print(f"{path}: ok: fleet {spec.name}, {sites} site{'s' if sites != 1 else ''}, "
              f"{devices} device{'s' if devices != 1 else ''}, "
              f"{checks} expectation{'s' if checks != 1 else ''}")
    return status


def spec_as_json(spec: FleetSpec) -> dict[str, Any]:
    return {
        "fleet": spec.name,
        "seed": spec.seed,
        "source": spec.source,
        "sites": [{
            "name": site.name,
            "interface": site.interface,
            "dhcp_server": site.lab.dhcp_server if site.lab else None,
            "devices": [d.as_dict() for d in site.devices],
            "expectations": [{"id": e.id, "line": e.line, "spec": e.fragment}
                             for e in site.expectations],
        } for site in spec.sites],
    }


def cmd_show(args: argparse.Namespace) -> int:
    spec = _load(args.file, args)
    if args.json:
        print(json.dumps(spec_as_json(spec), indent=2))
        return 0
    print(f"fleet {spec.name} (seed {spec.seed}) from {spec.source}")
    for site in spec.sites:
        server = f", DHCP server {site.lab.dhcp_server}" if site.lab and site.is_lab else ""
        print(f"\nsite {site.name}: interface {site.interface}{server}, "
              f"{len(site.devices)} devices")
        rows = [[d.name, d.mac, d.vendor, d.profile, d.cls, d.hostname or "-",
                 d.pool or (f"static {d.static_ip}" if d.static_ip else "-")]
                + (["disabled"] if not d.enabled else [""])
                for d in site.devices]
        print(_table(rows, ["NAME", "MAC", "VENDOR", "PROFILE", "CLASS", "HOSTNAME", "POOL",
                            ""]))
        if site.expectations:
            print("\nexpectations:")
            for entry in site.expectations:
                print(f"  {entry.id}  (line {entry.line})")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    library = _library(args)
    if args.action == "show":
        if args.name not in library:
            raise CliError(f"unknown profile {args.name!r}{library.suggest(args.name)}; "
                           "`iotemu profiles` lists them")
        profile = library[args.name]
        if args.json:
            print(json.dumps(profile.as_dict(), indent=2))
        else:
            data = profile.as_dict()
            data["ouis"] = [o.upper() for o in data["ouis"]]
            print(yaml.safe_dump(data, sort_keys=False, width=100).rstrip())
        return 0
    profiles = [library[name] for name in library]
    if args.json:
        print(json.dumps([p.as_dict() for p in profiles], indent=2))
        return 0
    rows = [[p.name, p.vendor, p.cls, " ".join(o.upper() for o in p.ouis) or "(local)",
             "unverified" if p.source == "unverified" else "sourced"] for p in profiles]
    print(_table(rows, ["NAME", "VENDOR", "CLASS", "OUIS", "FINGERPRINT"]))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    library = _library(args)
    path = Path(args.file)
    text = read_text(path)
    root, errors, result = read_legacy(text, str(path), library, interface=args.interface,
                                       fleet=args.fleet)
    if root is None or result is None:
        raise SpecError(errors.issues)
    output = result.to_yaml(str(path))
    # the written spec must validate as it stands before anything is written
    spec = parse_spec(output, args.output or "<import>", profiles=library, env={})
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.output:
        sys.stdout.write(output)
        return 0
    out = Path(args.output)
    if out.exists() and not args.force:
        raise CliError(f"{out} exists; pass --force to replace it")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(output, encoding="utf-8")
    tmp.replace(out)
    print(f"{out}: {len(spec.devices)} devices imported from {path}", file=sys.stderr)
    return 0


def _pick_site(spec: FleetSpec, name: str | None, lab_only: bool = True):
    """The site named by ``--site``, or the only one (of the lab sites, with lab_only)."""
    if name is not None:
        match = [s for s in spec.sites if s.name == name]
        if not match:
            raise CliError(f"no site {name!r} in {spec.source}; sites: "
                           + ", ".join(s.name for s in spec.sites))
        if lab_only and not match[0].is_lab:
            raise CliError(f"site {name} runs on interface {match[0].interface}, not the lab")
        return match[0]
    sites = [s for s in spec.sites if s.is_lab or not lab_only]
    if not sites:
        raise CliError(f"{spec.source} has no site on `interface: lab`")
    if len(sites) > 1:
        raise CliError("several sites: choose one with --site ("
                       + ", ".join(s.name for s in sites) + ")")
    return sites[0]


def _pick_run(run: str | None, *, detached_only: bool = False):
    from .lab.state import load_all
    labs = load_all()
    if run is not None:
        found = [s for s in labs if s.run == run or f"iotemu-{s.run}" == run]
        if not found:
            raise CliError(f"no lab {run!r}; `iotemu lab status` lists them")
        return found[0]
    candidates = [s for s in labs if s.detached or not detached_only]
    if len(candidates) != 1:
        listed = ", ".join(s.run for s in candidates) or "none"
        raise CliError(f"say which lab (labs: {listed})")
    return candidates[0]


def cmd_lab(args: argparse.Namespace) -> int:
    from .lab import Lab, LabError
    from .lab.state import load_all, reap, run_dir
    try:
        if args.action == "up":
            spec = _load(args.file, args)
            site = _pick_site(spec, args.site)
            lab = Lab(site, detached=True, engine_ports=args.engine_ports,
                      spec_path=str(Path(args.file).resolve())).build()
            print(lab.describe())
            print(f"\nlab {lab.run} is up (detached). Enter a role with:")
            for role in ("lan", "gw", "cloud"):
                print(f"  ip netns exec {lab.namespace(role)} bash")
            print(f"Take it down with: iotemu lab down {lab.run}")
            return 0
        if args.action == "status":
            labs = load_all()
            if not labs:
                print("no labs")
                return 0
            rows = [[s.run, s.site, str(s.owner_pid),
                     "alive" if s.owner_alive else "gone",
                     "detached" if s.detached else "-",
                     str(len(s.processes)), " ".join(s.namespaces)] for s in labs]
            print(_table(rows, ["RUN", "SITE", "OWNER", "OWNER STATE", "MODE", "DAEMONS",
                                "NAMESPACES"]))
            return 0
        if args.action == "show":
            state = _pick_run(args.run)
            directory = run_dir(state.run)
            print(f"lab {state.run} (site {state.site}) in {directory}")
            for name in ("dnsmasq.args", "dnsmasq-hosts/fleet", "kea-dhcp4.json", "dns.args",
                         "responder.json", "nftables.conf"):
                path = directory / name
                if path.exists():
                    print(f"\n--- {name}\n{path.read_text().rstrip()}")
            return 0
        if args.action == "down":
            state = _pick_run(args.run, detached_only=True)
            if state.owner_alive and not state.detached:
                raise CliError(f"lab {state.run} belongs to a running process "
                               f"({state.owner_pid}); stop that instead")
            problems = reap(state)
            if problems:
                raise CliError("could not remove: " + "; ".join(problems))
            print(f"lab {state.run} is down")
            return 0
    except LabError as exc:
        print(f"iotemu: lab error: {exc}", file=sys.stderr)
        return 1
    raise CliError("say what to do: iotemu lab up|status|show|down")


def cmd_clean(args: argparse.Namespace) -> int:
    from .lab.state import sweep
    reaped = sweep(include_detached=args.all)
    print("reaped: " + (", ".join(reaped) if reaped else "nothing"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Build the lab (or use the real interface), run the fleet, summarise or stream:
    the same ``SiteRun`` that pytest uses."""
    import signal as _signal
    import time as _time
    from .engine import EngineCommandError, EngineError
    from .lab import LabError
    from .run import RunOptions, RunUnavailable, SiteRun
    from .spec.units import UnitError, parse_duration

    try:
        duration = parse_duration(args.duration) if args.duration else None
    except UnitError as exc:
        raise CliError(f"--duration: expected {exc}") from None
    spec = _load(args.file, args)
    site = _pick_site(spec, args.site, lab_only=False)

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds like Ctrl-C: engine and lab are taken down

    if _signal.getsignal(_signal.SIGTERM) in (_signal.SIG_DFL, None):
        _signal.signal(_signal.SIGTERM, on_term)
    out = sys.stdout
    closed: list[bool] = []

    def stream(event: dict) -> None:
        try:
            out.write(json.dumps(event) + "\n")
            out.flush()
        except (BrokenPipeError, ValueError):  # the reader went away
            closed.append(True)

    run = SiteRun(spec, site, RunOptions(allow_live=args.allow_live,
                                         on_event=stream if args.jsonl else None,
                                         traffic=not args.no_traffic))
    try:
        run.start()
        started = _time.monotonic()
        while (duration is None or _time.monotonic() - started < duration) and not closed:
            _time.sleep(1.0)
            stats = run.engine.call("stats")
            if not args.jsonl:
                lat = stats["latency"]
                p95 = f"{lat['p95']:.2f}s" if lat["p95"] is not None else "-"
                print(f"[{_time.monotonic() - started:6.1f}s] bound {stats['bound']}/"
                      f"{stats['devices']}  outstanding {stats['outstanding']}  "
                      f"waiting {stats['waiting']}  DORA p95 {p95}  "
                      f"retransmits {stats['counters'].get('retransmits', 0)}",
                      file=out, flush=True)
                if stats.get("apps") or stats.get("threats"):
                    from .metrics import traffic_line
                    print("          " + traffic_line(stats), file=out, flush=True)
    except KeyboardInterrupt:
        print("iotemu: stopped; lab and engine taken down", file=sys.stderr)
        return 130
    except RunUnavailable as exc:
        raise CliError(str(exc).replace("--iot-allow-live", "--allow-live")) from None
    except (LabError, EngineError, EngineCommandError) as exc:
        print(f"iotemu: {exc}", file=sys.stderr)
        return 1
    finally:
        run.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotemu",
        description="Emulated IoT fleets for branch testing: validate and inspect fleet "
                    "specs, list device profiles. Run the fleet itself with "
                    "`pytest --iot-fleet=FILE`.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profiles", metavar="FILE", action="append", default=argparse.SUPPRESS,
                        help="extra profile file (adds or overrides profiles); repeatable")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("validate", parents=[common], help="check fleet specs; report every "
                       "error with file:line:col",
                       description="Validate fleet spec files. Every problem is reported "
                       "as file:line:col: key.path: message. Exit status 2 if any is bad.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("show", parents=[common], help="print the expanded fleet",
                       description="Print every device of a fleet spec: name, MAC, vendor, "
                       "profile, class, hostname and pool.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("import", parents=[common], help="convert the previous emulator's "
                       "iot-devices.json into a fleet spec",
                       description="Convert the previous emulator's device file (JSON) into "
                       "a fleet spec: one group per device with its exact MAC, host name, "
                       "option 55 list, vendor class and behaviours. The result is validated "
                       "before it is written.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT", help="write the spec here (default: "
                   "standard output)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--fleet", metavar="NAME", help="fleet name (default: the file's name)")
    p.add_argument("--interface", default="lab", metavar="IFACE",
                   help="`lab` (default: the virtual branch), `keep` (the file's "
                   "network.interface) or an interface name")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("run", parents=[common], help="run a fleet: lab up, devices bound, "
                       "live summary (or JSON lines)",
                       description="Build the virtual branch for `interface: lab` (or use "
                       "the real interface), start the fleet in one engine and print a live "
                       "summary; with --jsonl, stream the engine's events instead. Ctrl-C or "
                       "SIGTERM takes everything down.")
    p.add_argument("file", metavar="FLEET")
    p.add_argument("--site", help="the site, when the spec has several")
    p.add_argument("--duration", metavar="DURATION", help="stop after this long (e.g. 60s); "
                   "default: until Ctrl-C")
    p.add_argument("--jsonl", action="store_true", help="stream the engine's events as JSON "
                   "lines on stdout")
    p.add_argument("--allow-live", action="store_true", help="allow a real interface")
    p.add_argument("--no-traffic", action="store_true",
                   help="DHCP only: no protocol traffic from the devices' profiles and no "
                   "threat behaviours")
    p.set_defaults(func=cmd_run)

    sub.add_parser("engine", help="the engine process itself: `iotemu engine --iface IF` "
                   "(JSON lines on stdin/stdout; see `iotemu engine --help`)")

    p = sub.add_parser("lab", parents=[common], help="the virtual branch: up, status, show, down",
                       description="Bring the virtual branch of a fleet spec up (detached), "
                       "list labs, show their generated configurations, take them down.")
    lsub = p.add_subparsers(dest="action", metavar="ACTION")
    up = lsub.add_parser("up", parents=[common], help="build a detached lab for a spec")
    up.add_argument("file", metavar="FLEET")
    up.add_argument("--site", help="the site, when the spec has several lab sites")
    up.add_argument("--engine-ports", type=int, default=1, metavar="N",
                    help="engine ports on the LAN bridge (default 1)")
    lsub.add_parser("status", help="list labs: run, site, owner, mode")
    show = lsub.add_parser("show", help="print a lab's generated configurations")
    show.add_argument("run", nargs="?", metavar="RUN")
    down = lsub.add_parser("down", help="take a detached lab down")
    down.add_argument("run", nargs="?", metavar="RUN")
    p.set_defaults(func=cmd_lab, action=None)

    p = sub.add_parser("clean", help="reap labs whose owner died",
                       description="Remove labs whose owning process is gone (killing the "
                       "processes inside their namespaces first). Live runs are never "
                       "touched; detached labs only with --all.")
    p.add_argument("--all", action="store_true", help="also remove detached labs")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("profiles", parents=[common], help="list device profiles, or show one",
                       description="List the device profiles (built-in and from --profiles), "
                       "or `iotemu profiles show NAME` for one profile in full.")
    p.add_argument("--json", action="store_true", help="print JSON")
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    show = psub.add_parser("show", parents=[common], help="show one profile in full")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_profiles, action=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["engine"]:  # its own options, --help included
        from .engine.main import main as engine_main
        return engine_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"iotemu: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `iotemu show … | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

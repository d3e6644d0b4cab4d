#!/usr/bin/env python3
"""Rehearse `nix flake check` without Nix: run every check's own phases, sandboxed.

`scripts/ci-local.sh nix-rehearse` runs this. Evaluating the flake is not building it: a
check can evaluate on every system and still fail in the sandbox because it calls rustup,
apt or pip, reaches the network, or runs a compiler other than the one the lock selects.
This script builds what evaluation cannot, on a machine without Nix:

1. Evaluates the flake with the nix-eval kit (../shared/nix-eval: a Nix 2.34 chroot, a
   nixpkgs stub around the real nixpkgs lib) and the inputs at the revisions flake.lock
   pins (crane, rust-overlay and advisory-db unpacked from MIRROR at the locked commit,
   with the locked narHash, so a drifted snapshot fails here). It reads each check from
   `nix derivation show -r`: its phases, hooks and environment. Nothing is copied by
   hand: a command exists here because a derivation says so.
2. Stands in for each input the derivation names: the rust-overlay toolchain by the
   rustup toolchain of the same version; cargo-nextest, cargo-audit, cargo-deny and git by
   the host's; the Python environment by a venv holding BITNET_PYTHON_MODULES; crane's
   setup hooks by crane's own scripts at the locked revision; crane's dummy source and
   the vendored crates by the same construction (`cargo vendor` of Cargo.lock); sources
   by the store paths evaluation wrote.
3. Runs unpack, patch (crane's hooks: CARGO_HOME, vendored sources, the dependency
   layer's target/), configure, build and, when doCheck is set, check, in `unshare -n`
   (loopback only), with an empty environment (HOME=/homeless-shelter), a PATH of only
   the declared inputs and the basic tools every stdenv has, and /usr/bin/env hidden (the
   sandbox has none). rustup, apt, apt-get, sudo and pip are stand-ins that log the call
   and fail, unless the derivation itself declares one. Dependency layers also run their
   install phase (crane's target.tar.zst), which the checks unpack as in Nix.
4. Fails a check that fails, that calls a forbidden tool, or that compiles a dependency
   (a crate not in the workspace) although it has a dependency layer, or without one:
   every compiling check must reuse the layer, none repeats a build from scratch.

Differences from Nix, on purpose: checks run as the invoking user in the host's file
system (read-only store paths are copies); the install and fixup phases of checks do not
run (they copy results, no cargo); the Python stand-in takes the newest PyPI releases of
the modules nixpkgs provides. A passing check is remembered by derivation path (as Nix
would have it built); --rebuild forgets that.

Usage: nix_rehearse.py [--flake DIR] [--system SYS] [--only a,b] [--rebuild] [--graph]
Environment: MIRROR and NIX_EVAL_KIT as for `ci-local.sh nix-eval` (which must have run
once: it builds the kit's chroot and nixpkgs stub), NIXCHECK_DIR (the kit's work dir),
REHEARSE_DIR (default: FLAKE/target/nix-rehearse).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

STORE_PATH = re.compile(r"/nix/store/([a-z0-9]{32})-([^/\s\"'`;:)]+)")
TOOLCHAIN = re.compile(r"^rust-(?:default|minimal|complete)(?:-with-[\w-]+)?-(\d+\.\d+\.\d+)$")
PYTHON_ENV = re.compile(r"^python3-[\d.]+-env$")
# The host's commands that stand in for a nixpkgs package (`<name>-<version>`).
HOST_TOOLS = {"cargo-nextest": ["cargo-nextest"], "cargo-audit": ["cargo-audit"],
              "cargo-deny": ["cargo-deny"], "git": ["git"], "curl": ["curl"], "jq": ["jq"],
              "rsync": ["rsync"], "zstd": ["zstd"], "procps": ["kill", "ps", "pgrep", "pkill"]}
# Never inside the sandbox unless a derivation declares its own.
FORBIDDEN = ["rustup", "rustup-init", "apt", "apt-get", "dpkg", "sudo", "pip", "pip3", "pipx"]
# What every nixpkgs stdenv puts on PATH (coreutils, findutils, diffutils, sed, grep, awk,
# tar, gzip, bzip2, xz, make, patch, bash) and its C toolchain (rustc links through cc).
STDENV_PACKAGES = ["coreutils", "findutils", "diffutils", "sed", "grep", "gawk", "mawk", "tar",
                   "gzip", "bzip2", "xz-utils", "make", "patch", "bash", "binutils"]
STDENV_EXTRA = ["cc", "gcc", "c++", "g++", "cpp", "awk", "sh"]
# crane's setup hooks this script runs, from crane's source at the locked revision.
HOOKS_RUN = ["cargoHelperFunctionsHook", "configureCargoCommonVarsHook",
             "configureCargoVendoredDepsHook", "inheritCargoArtifactsHook", "replaceCargoLockHook"]
UNIT_LINE = re.compile(r"^\s*(Compiling|Checking|Documenting|Fresh) (\S+) v(\S+)(?: \((.+)\))?\s*$")
CLIPPY_LINT = re.compile(r"rust-clippy/[^#\s]*#([a-z0-9_]+)")


def log(msg: str) -> None:
    print(f"nix-rehearse: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    log(msg)
    sys.exit(2)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


class Kit:
    """Nix 2.34 in the nix-eval kit's chroot, the flake's inputs pinned as flake.lock says."""

    def __init__(self, flake: Path, rehearse: Path):
        self.flake = flake
        self.w = Path(os.environ.get("NIXCHECK_DIR") or Path.home() / ".cache/nix-eval/check")
        self.root = self.w / "sid-root"
        mirror = os.environ.get("MIRROR")
        if not mirror:
            die("MIRROR is not set (the folder with the fetched snapshots, as for nix-eval)")
        self.mirror = Path(mirror)
        if not (self.root / "usr/bin/nix").exists() or not (self.w / "inputs/nixpkgs-stub").is_dir():
            die(f"no kit chroot or nixpkgs stub under {self.w}: run `scripts/ci-local.sh nix-eval` once")
        common = subprocess.run(["git", "-C", str(flake), "rev-parse", "--path-format=absolute",
                                 "--git-common-dir"], capture_output=True, text=True, check=True)
        self.mounts = [self.w, flake, rehearse]
        gitdir = Path(common.stdout.strip())
        if flake not in gitdir.parents:
            self.mounts.append(gitdir)
        self.overrides = ["--override-input", "nixpkgs", f"path:{self.w}/inputs/nixpkgs-stub"]
        lock = json.loads((flake / "flake.lock").read_text())
        for name in ("crane", "rust-overlay", "advisory-db"):
            node = lock["nodes"].get(name)
            if not node:
                continue
            locked = node["locked"]
            repo = self.mirror / f"{locked['owner']}+{locked['repo']}" / "repo"
            dest = rehearse / "inputs" / f"{name}-{locked['rev']}"
            if not dest.is_dir():
                have = subprocess.run(["git", "--git-dir", str(repo), "cat-file", "-e",
                                       f"{locked['rev']}^{{commit}}"], capture_output=True)
                if have.returncode != 0:
                    die(f"{repo} lacks {name}'s locked commit {locked['rev']}: fetch github:"
                        f"{locked['owner']}/{locked['repo']} again")
                tmp = dest.with_suffix(".part")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                archive = subprocess.run(["git", "--git-dir", str(repo), "archive", locked["rev"]],
                                         capture_output=True, check=True).stdout
                run(["tar", "-x", "-C", str(tmp)], input=archive)
                tmp.rename(dest)
            self.overrides += ["--override-input", name,
                               f"path:{dest}?lastModified={locked['lastModified']}"
                               f"&narHash={locked['narHash']}"]
            setattr(self, name.replace("-", "_"), dest)

    def nix(self, sub: list[str], *args: str) -> str:
        binds = " ".join(shlex.quote(str(m)) for m in self.mounts)
        inner = (
            'set -e; R=$1; F=$2; shift 2; mount --rbind /dev "$R/dev"; mount -t proc proc "$R/proc"; '
            f'for d in {binds}; do mkdir -p "$R$d"; mount --bind "$d" "$R$d"; done; '
            'exec chroot "$R" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin TERM=dumb NO_COLOR=1 '
            'bash -c "cd \\"\\$0\\" && exec \\"\\$@\\"" "$F" "$@"'
        )
        cmd = ["unshare", "-m", "--propagation", "private", "bash", "-c", inner, "_",
               str(self.root), str(self.flake), "nix", *sub, "--no-write-lock-file",
               *self.overrides, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            die(f"nix {' '.join(sub)} {' '.join(args)} failed")
        return proc.stdout

    def store(self, path: str) -> Path:
        """Where a store path evaluation wrote lives on this machine."""
        return self.root / path.lstrip("/")


class Rehearsal:
    def __init__(self, args):
        self.flake = Path(args.flake).resolve()
        self.dir = Path(os.environ.get("REHEARSE_DIR") or self.flake / "target/nix-rehearse").resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        # One rehearsal per directory: they share the build directory and the layers.
        self.lock = open(self.dir / ".lock", "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            die(f"another nix-rehearse is running in {self.dir}")
        self.system = args.system
        self.rebuild = args.rebuild
        self.kit = Kit(self.flake, self.dir)
        self.cores = str(os.cpu_count() or 1)
        self.results: dict[str, dict] = {}
        self.resolved: dict[str, Path | None] = {}

    # --- evaluation ---

    def evaluate(self) -> None:
        attr = f".#checks.{self.system}"
        names = json.loads(self.kit.nix(["eval"], "--json", attr, "--apply",
                                        "cs: builtins.mapAttrs (_: c: c.drvPath) cs"))
        self.checks = {name: path.rsplit("/", 1)[1] for name, path in names.items()}
        shown = json.loads(self.kit.nix(["derivation", "show"], "-r",
                                        *[f"{attr}.{n}" for n in sorted(names)]))
        self.drvs = {k.rsplit("/", 1)[-1]: v for k, v in shown.get("derivations", shown).items()}
        # Output path -> derivation, to find dependency layers and other inputs.
        self.by_out = {}
        for key, drv in self.drvs.items():
            for out in drv.get("outputs", {}).values():
                if "path" in out:
                    self.by_out[out["path"].rsplit("/", 1)[-1]] = key
        self.layers_needed = {self.layer_of(key) for key in self.checks.values()} - {None}

    def drv_of(self, store_path: str) -> str | None:
        return self.by_out.get(store_path.rsplit("/", 1)[-1])

    def layer_of(self, key: str) -> str | None:
        artifacts = self.drvs[key]["env"].get("cargoArtifacts", "")
        return self.drv_of(artifacts) if artifacts else None

    def graph(self) -> None:
        """Each check and the dependency layer it builds on (derivation paths)."""
        print(f"checks.{self.system} and their dependency layer (cargoArtifacts):")
        width = max(len(n) for n in self.checks)
        for name, key in sorted(self.checks.items()):
            layer = self.layer_of(key)
            print(f"  {name:<{width}}  {key}\n  {'':<{width}}    -> {layer or '(none: builds nothing)'}")

    # --- stand-ins for store paths ---

    def resolve(self, path: str) -> Path | None:
        if path in self.resolved:
            return self.resolved[path]
        base = path.rsplit("/", 1)[1]
        name = base.split("-", 1)[1]
        key = self.drv_of(path)
        env = self.drvs[key]["env"] if key else {}
        result: Path | None = None
        m = TOOLCHAIN.match(name)
        if m:
            result = self.toolchain(m.group(1))
        elif key in self.layers_needed:
            result = self.dir / "layers" / key.removesuffix(".drv")
        elif key and name == "vendor-cargo-deps":
            result = self.vendor()
        elif PYTHON_ENV.match(name):
            result = self.python()
        elif "text" in env:
            result = self.materialize_text(key)
        elif "crane-json2toml" in env.get("buildCommand", ""):
            result = self.materialize_toml(key)
        elif "mkDummySrc" in env.get("buildCommand", ""):
            result = self.dummy_source(key)
        elif self.kit.store(path).exists():
            result = self.kit.store(path)
        else:
            for tool in HOST_TOOLS:
                if name == tool or name.startswith(tool + "-"):
                    result = self.host_tool(tool)
                    break
        self.resolved[path] = result
        return result

    def substitute(self, text: str) -> str:
        def repl(m: re.Match) -> str:
            local = self.resolve(m.group(0))
            return str(local) if local else m.group(0)
        return STORE_PATH.sub(repl, text)

    def toolchain(self, version: str) -> Path:
        triple = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu"}[platform.machine()]
        which = subprocess.run(["rustup", "which", "--toolchain", f"{version}-{triple}", "cargo"],
                               capture_output=True, text=True)
        if which.returncode != 0:
            log(f"installing Rust {version} with rustup (outside the sandbox, as Nix fetches rust-overlay's)")
            run(["rustup", "toolchain", "install", version, "--profile", "minimal",
                 "--component", "clippy", "--component", "rustfmt", "--no-self-update"])
            which = subprocess.run(["rustup", "which", "--toolchain", f"{version}-{triple}", "cargo"],
                                   capture_output=True, text=True, check=True)
        return Path(which.stdout.strip()).parent.parent

    def host_tool(self, tool: str) -> Path | None:
        d = self.dir / "tools" / tool / "bin"
        d.mkdir(parents=True, exist_ok=True)
        for command in HOST_TOOLS[tool]:
            found = shutil.which(command)
            if not found:
                log(f"this machine has no {command} (for {tool}); checks that use it will fail")
                return None
            link = d / command
            if not link.exists():
                link.symlink_to(found)
        return d.parent

    def vendor(self) -> Path:
        lock = (self.flake / "Cargo.lock").read_bytes()
        d = self.dir / f"vendor-{hashlib.sha256(lock).hexdigest()[:16]}-1"
        if not (d / "config.toml").exists():
            log("cargo vendor (outside the sandbox, as Nix fetches crane's vendored crates)")
            crates = d / "crates"
            shutil.rmtree(d, ignore_errors=True)
            vend = subprocess.run(["cargo", "vendor", "--locked", "--versioned-dirs", str(crates)],
                                  cwd=self.flake, capture_output=True, text=True)
            if vend.returncode != 0:
                sys.stderr.write(vend.stderr)
                die("cargo vendor failed")
            # As in the Nix store, every file dated 1970-01-01T00:00:01: the dependency
            # layer's target/ is too (crane archives it so), and a build script that
            # reruns on a changed file must see its vendored file as old as the layer.
            run(["find", str(crates), "-exec", "touch", "-h", "-d", "@1", "{}", "+"])
            (d / "config.toml").write_text(
                '[source.crates-io]\nreplace-with = "rehearse-vendored"\n'
                f'[source.rehearse-vendored]\ndirectory = "{crates}"\n')
        return d

    def python(self) -> Path:
        modules = sorted({m for drv in self.drvs.values()
                          for m in drv["env"].get("BITNET_PYTHON_MODULES", "").split()})
        d = self.dir / ("python-" + "-".join(modules or ["none"]))
        if not (d / "bin/python3").exists():
            log(f"a Python with {modules} (outside the sandbox, as nixpkgs' python3.withPackages)")
            run([sys.executable, "-m", "venv", str(d)])
            if modules:
                run([str(d / "bin/pip"), "install", "-q", *modules])
        # The sandbox sees a wrapper named python3 that refuses pip.
        wrap = self.dir / ("python-wrap-" + "-".join(modules or ["none"]))
        (wrap / "bin").mkdir(parents=True, exist_ok=True)
        script = ('#!/bin/sh\ncase "$1 $2" in "-m pip"|"-m ensurepip")\n'
                  '  echo "python3 $*" >>"$REHEARSE_FORBIDDEN"\n'
                  '  echo "nix-rehearse: python3 $*: no pip in the Nix sandbox" >&2; exit 127;;\nesac\n'
                  f'exec {d}/bin/python3 "$@"\n')
        for n in ("python3", "python"):
            (wrap / "bin" / n).write_text(script)
            (wrap / "bin" / n).chmod(0o755)
        return wrap

    def materialize_text(self, key: str) -> Path:
        env = self.drvs[key]["env"]
        base = self.dir / "store" / key.removesuffix(".drv")
        dest = env.get("destination", "")
        target = base / dest.lstrip("/") if dest else base
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.substitute(env["text"]))
            if env.get("executable") == "1":
                target.chmod(0o755)
        return base

    def materialize_toml(self, key: str) -> Path:
        env = self.drvs[key]["env"]
        target = self.dir / "store" / key.removesuffix(".drv")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(to_toml(json.loads(self.substitute(env["contents"]))))
        return target

    def dummy_source(self, key: str) -> Path:
        """crane's mkDummySrc output, by running its own buildCommand."""
        out = self.dir / "store" / key.removesuffix(".drv")
        if not out.exists():
            cmd = self.substitute(self.drvs[key]["env"]["buildCommand"])
            tmp = out.with_suffix(".part")
            shutil.rmtree(tmp, ignore_errors=True)
            run(["bash", "-euc", cmd], env={"PATH": os.environ["PATH"], "out": str(tmp)})
            tmp.rename(out)
        return out

    # --- running derivations ---

    def stdenv_bin(self) -> Path:
        d = self.dir / "stdenv/bin"
        if d.is_dir():
            return d
        d.mkdir(parents=True)
        names: set[str] = set(STDENV_EXTRA)
        if shutil.which("dpkg"):
            listed = subprocess.run(["dpkg", "-L", *STDENV_PACKAGES], capture_output=True, text=True).stdout
            names |= {Path(p).name for p in listed.split() if re.match(r"^(/usr)?/s?bin/[^/]+$", p)}
        else:
            names |= set("basename cat chmod cmp cp cut date dirname echo env expr false find grep head id "
                         "install ln ls mkdir mktemp mv printf readlink realpath rm rmdir sed seq sleep "
                         "sort stat tail tar tee test touch tr true uname uniq wc xargs gzip zstd make "
                         "bash ld ar as nm ranlib strip".split())
        for n in sorted(names - set(FORBIDDEN) - {"env", "python3", "python"}):
            found = shutil.which(n, path="/usr/bin:/bin:/usr/sbin:/sbin")
            if found:
                (d / n).symlink_to(found)
        return d

    def forbidden_bin(self) -> Path:
        d = self.dir / "forbidden/bin"
        d.mkdir(parents=True, exist_ok=True)
        for n in FORBIDDEN + ["python3", "python"]:
            p = d / n
            p.write_text(f'#!/bin/sh\necho "{n} $*" >>"$REHEARSE_FORBIDDEN"\n'
                         f'echo "nix-rehearse: {n} $*: not in the Nix sandbox (no such input)" >&2\nexit 127\n')
            p.chmod(0o755)
        return d

    def crane_hook(self, name: str) -> Path | None:
        p = self.kit.crane / "lib/setupHooks" / f"{name}.sh"
        return p if p.exists() else None

    def run_drv(self, name: str, key: str, layer: bool = False) -> dict:
        if key in self.results:
            return self.results[key]
        drv = self.drvs[key]
        env = drv["env"]
        label = f"{name} ({key})"
        stamp = self.dir / "passed" / key
        if layer:
            out = self.dir / "layers" / key.removesuffix(".drv")
            # Built from the same derivation and the same vendored crates (their path is
            # part of what the units record, as the store path is in Nix).
            marker = out / ".complete"
            done = marker.exists() and marker.read_text() == str(self.vendor())
        else:
            out = self.dir / "out" / key.removesuffix(".drv")
            done = stamp.exists() and not self.rebuild
        logfile = self.dir / "logs" / f"{name}.log"
        if done:
            log(f"{label}: passed before (same derivation), not run again")
            self.results[key] = {"name": name, "ok": True, "cached": True, "reasons": [], "secs": 0,
                                 "info": layer_info(logfile) if layer else []}
            return self.results[key]

        if "cargoHelperFunctionsHook" not in env.get("nativeBuildInputs", ""):
            what = env.get("name", key)
            log(f"{label}: not a crane (cargo) derivation ({what}), not rehearsed")
            self.results[key] = {"name": name, "ok": True, "cached": False, "skipped": True,
                                 "secs": 0, "reasons": [f"not rehearsed: {what} runs no cargo command"]}
            return self.results[key]

        # The layer first, as Nix would build it first.
        layer_key = self.layer_of(key)
        if layer_key:
            lr = self.run_drv(self.drvs[layer_key]["env"].get("name", layer_key), layer_key, layer=True)
            if not lr["ok"]:
                self.results[key] = {"name": name, "ok": False, "cached": False, "secs": 0,
                                     "reasons": [f"its dependency layer {layer_key} failed"]}
                return self.results[key]

        log(f"{label}: running")
        build = self.dir / "build"
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        (build / "tmp").mkdir(parents=True)
        forbidden_log = build / "forbidden.log"
        forbidden_log.touch()

        path_dirs = []
        unresolved = []
        for p in (env.get("nativeBuildInputs", "") + " " + env.get("buildInputs", "")).split():
            pname = p.rsplit("/", 1)[1].split("-", 1)[1]
            if pname.endswith("Hook"):
                continue
            local = self.resolve(p)
            if local is None:
                unresolved.append(pname)
            elif (local / "bin").is_dir() and str(local / "bin") not in path_dirs:
                path_dirs.append(str(local / "bin"))
        path_dirs += [str(self.stdenv_bin()), str(self.forbidden_bin())]

        src = self.resolve(env["src"]) if env.get("src") else None
        if env.get("src") and src is None:
            die(f"{label}: cannot stand in for its source {env['src']}")

        exports = {
            "PATH": ":".join(path_dirs),
            "HOME": "/homeless-shelter",
            "NIX_BUILD_TOP": str(build),
            "TMPDIR": str(build / "tmp"), "TMP": str(build / "tmp"), "TEMP": str(build / "tmp"),
            "TEMPDIR": str(build / "tmp"),
            "NIX_BUILD_CORES": self.cores,
            "NIX_STORE": "/nix/store",
            "SOURCE_DATE_EPOCH": "315532800",
            "TERM": "dumb",
            "REHEARSE_FORBIDDEN": str(forbidden_log),
        }
        skip = {"builder", "args", "PATH", "HOME", "TMPDIR", "NIX_BUILD_CORES"}
        for k, v in env.items():
            if k in skip or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                continue
            exports[k] = self.substitute(v)
        exports["out"] = str(out)
        if src is not None:
            exports["src"] = str(src)

        lines = ["# generated by scripts/nix_rehearse.py for " + key]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
        lines += [STDENV_FUNCTIONS]
        for hook in HOOKS_RUN + (["installCargoArtifactsHook"] if layer else []):
            if any(p.endswith("-" + hook) for p in env.get("nativeBuildInputs", "").split()):
                h = self.crane_hook(hook)
                if h:
                    lines.append(f"source {shlex.quote(str(h))}")
        lines += [
            'mkdir -p "$NIX_BUILD_TOP"; cd "$NIX_BUILD_TOP"',
            'if [ -n "${src:-}" ]; then cp -pr -- "$src" source; chmod -R u+w -- source; cd source; fi',
            'echo "@@phase patch"; runHook prePatch; runHook postPatch',
            'echo "@@phase configure"; eval "${configurePhase:-runHook preConfigure; runHook postConfigure}"',
            'echo "@@phase build"; eval "$buildPhase"',
            'if [ "${doCheck:-}" = 1 ]; then echo "@@phase check"; eval "$checkPhase"; fi',
        ]
        if layer:
            lines.append('echo "@@phase install"; eval "$installPhase"')
        driver = build / "driver.sh"
        driver.write_text("\n".join(lines) + "\n")
        refuse_env = build / "no-usr-bin-env"
        refuse_env.write_text('#!/bin/sh\necho "nix-rehearse: /usr/bin/env $*: the Nix sandbox has no '
                              '/usr/bin/env (run scripts with bash ...)" >&2\nexit 127\n')
        refuse_env.chmod(0o755)

        bash = shutil.which("bash", path="/usr/bin:/bin")
        ip = shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")
        if not ip:
            die("needs `ip` (iproute2) to bring up loopback inside `unshare -n`")
        sandbox = (f"set -e; {ip} link set lo up; mount --bind {shlex.quote(str(refuse_env))} /usr/bin/env; "
                   f"exec -c {bash} --noprofile --norc {shlex.quote(str(driver))}")
        unshare = ["unshare", "-n", "-m", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare.insert(1, "-r")
        logfile.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        with open(logfile, "w") as f:
            proc = subprocess.Popen(["nice", "-n", "10", *unshare, bash, "-c", sandbox],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    errors="replace")
            assert proc.stdout
            for line in proc.stdout:
                f.write(line)
            rc = proc.wait()
        secs = time.time() - t0
        text = logfile.read_text(errors="replace")
        reasons = self.reasons(text, rc, forbidden_log.read_text().splitlines(), layer, bool(layer_key),
                               unresolved)
        ok = rc == 0 and not reasons
        if not reasons and rc != 0:
            reasons = [f"exit {rc}"]
        if ok:
            if layer:
                (out / ".complete").write_text(str(self.vendor()))
            else:
                stamp.parent.mkdir(parents=True, exist_ok=True)
                stamp.touch()
        log(f"{label}: {'passed' if ok else 'FAILED'} in {secs:.0f}s (log: {logfile})")
        for r in reasons:
            log(f"  {r}")
        self.results[key] = {"name": name, "ok": ok, "cached": False, "secs": secs, "reasons": reasons,
                             "info": layer_info(logfile) if layer else []}
        for i in self.results[key]["info"]:
            log(f"  {i}")
        return self.results[key]

    def reasons(self, text: str, rc: int, forbidden: list[str], layer: bool, has_layer: bool,
                unresolved: list[str]) -> list[str]:
        out = []
        for call in dict.fromkeys(forbidden):
            out.append(f"called `{call}`, which the sandbox does not have")
        if unresolved and rc != 0:
            out.append(f"note: no stand-in for input(s) {', '.join(unresolved)}")
        specific = len(out)
        units = []
        for line in text.splitlines():
            m = UNIT_LINE.match(line)
            if m and m.group(1) in ("Compiling", "Checking") and not m.group(4):
                units.append(f"{m.group(2)} {m.group(3)}")
        if units and not layer:
            sample = ", ".join(sorted(set(units))[:6])
            if has_layer:
                out.append(f"compiled {len(units)} dependency unit(s) its dependency layer lacks "
                           f"(feature sets differ): {sample}, ...")
            else:
                out.append(f"compiled {len(units)} dependency unit(s) from scratch, without the "
                           f"dependency layer: {sample}, ...")
        if rc != 0:
            lints: dict[str, int] = {}
            for line in text.splitlines():
                m = CLIPPY_LINT.search(line)
                if m:
                    lints[m.group(1)] = lints.get(m.group(1), 0) + 1
            if lints:
                top = ", ".join(f"{k} x{v}" for k, v in sorted(lints.items(), key=lambda kv: -kv[1])[:4])
                out.append(f"clippy: {sum(lints.values())} finding(s) denied by --deny warnings: {top}")
            for pat in (r"^error: \d+ vulnerabilit(y|ies) found!?$", r"^error\[vulnerability\]: .*$",
                        r"^\s*ID:\s+RUSTSEC-\S+$", r"^error: no such command: .*$",
                        r".*: not available inside the Nix sandbox.*$", r"^\s+Cancelling due to test failure$",
                        r"^\s+Summary .* failed.*$", r"^error: could not compile .*$",
                        r"^nix-rehearse: .*$", r".*command not found.*$"):
                for m in re.finditer(pat, text, re.M):
                    out.append(m.group(0).strip())
                    break
            if len(out) == specific:
                tail = [line for line in text.splitlines() if line.strip()][-3:]
                out += [f"exit {rc}; last lines:"] + [f"    {line}" for line in tail]
        return list(dict.fromkeys(out))


def layer_info(logfile: Path) -> list[str]:
    """How many dependency units each cargo invocation of a layer compiled."""
    if not logfile.exists():
        return []
    counts: list[tuple[str, int]] = []
    for line in logfile.read_text(errors="replace").splitlines():
        m = re.match(r"^\++ command cargo (\S+)(.*)$", line)
        if m:
            if m.group(1) != "--version":
                counts.append((f"{m.group(1)}{m.group(2)}", 0))
            continue
        u = UNIT_LINE.match(line)
        if u and counts and u.group(1) in ("Compiling", "Checking") and not u.group(4):
            counts[-1] = (counts[-1][0], counts[-1][1] + 1)
    total = sum(n for _, n in counts)
    return [f"layer: {total} dependency units in {len(counts)} cargo invocation(s)"] + \
        [f"  {n:>4}  cargo {cmd.strip()}" for cmd, n in counts]


# nixpkgs stdenv's hook runner (pkgs/stdenv/generic/setup.sh), which crane's hooks use. The
# builder runs the phases with errexit and pipefail, not nounset (setup.sh sets -u only
# while it is sourced).
STDENV_FUNCTIONS = r"""
set -e -o pipefail
_eval() { if declare -F "$1" >/dev/null 2>&1; then "$@"; else eval "$1"; fi; }
_callImplicitHook() {
  local def="$1" hookName="$2"
  if declare -F "$hookName" >/dev/null; then "$hookName"
  elif [ -n "${!hookName:-}" ]; then eval "${!hookName}"
  else return "$def"; fi
}
runHook() {
  local hookName="$1"; shift
  local hooksSlice="${hookName%Hook}Hooks[@]"
  local hook
  for hook in "_callImplicitHook 0 $hookName" ${!hooksSlice+"${!hooksSlice}"}; do
    _eval "$hook" "$@"
  done
  return 0
}
"""


def toml_key(k: str) -> str:
    return k if re.match(r"^[A-Za-z0-9_-]+$", k) else json.dumps(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(doc: dict) -> str:
    """crane-json2toml's job: the cleaned Cargo.toml crane writes from JSON."""
    lines = []
    for k, v in doc.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and not all(isinstance(x, dict) for x in v)):
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"\n[{toml_key(k)}]")
            lines += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                lines.append(f"\n[[{toml_key(k)}]]")
                lines += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in item.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flake", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--system", default=f"{platform.machine()}-linux")
    ap.add_argument("--only", default="", help="comma-separated check names (default: all)")
    ap.add_argument("--rebuild", action="store_true", help="run checks that passed before again")
    ap.add_argument("--graph", action="store_true", help="print the checks and their layers, build nothing")
    args = ap.parse_args()
    if platform.system() != "Linux":
        die("runs on Linux only (unshare)")
    r = Rehearsal(args)
    log(f"evaluating {r.flake} for {r.system} (inputs at flake.lock's revisions)")
    r.evaluate()
    r.graph()
    if args.graph:
        return
    chosen = [n for n in sorted(r.checks) if not args.only or n in args.only.split(",")]
    for name in chosen:
        r.run_drv(name, r.checks[name])
    print("\nnix-rehearse: dependency layers")
    for key in sorted(r.layers_needed):
        res = r.results.get(key)
        if res:
            print(f"  {key}")
            for i in res.get("info", []):
                print(f"    {i}")
    print("\nnix-rehearse summary:")
    failed = 0
    for name in chosen:
        res = r.results[r.checks[name]]
        if res.get("skipped"):
            state = "skipped"
        elif res["ok"]:
            state = "passed" + (" (passed before)" if res.get("cached") else f" {res['secs']:.0f}s")
        else:
            state = f"FAILED {res['secs']:.0f}s"
        print(f"  {name:<24} {state}")
        for reason in res["reasons"]:
            print(f"      {reason}")
        failed += not res["ok"]
    print(f"{len(chosen) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Install the reference Bluesky network for the tests: Node 22 and ``@atproto/dev-env`` (its PDS,
did:plc directory and AppView), from the npm registry alone, into a cache folder outside the checkout.

``./task test`` runs this before the suite. It is quiet when the install is there and current, says
one line while it installs (665 MB; 3.5 to 5 minutes on 2 cores), and one line when it cannot;
that line is kept in the folder, and the Bluesky tests skip with it as their reason.

Debian ships Node 20, and dev-env wants Node 22: the npm package ``node-linux-<arch>`` carries the
official Node 22 binary and headers. ``better-sqlite3`` cannot fetch its prebuilt binary here, so it
builds from source against those headers (``npm_config_nodedir``) with python3, make and g++; any
npm can drive the install, so Debian's ``nodejs npm`` is installed with apt where npm is missing.

Only the standard library: it runs before anything else of the tests is importable.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "botkit" / "bluesky-pds"
NODE_VERSION = "22.23.5"
#: Where the install says it is complete (a hash of what was installed), or why it failed.
STAMP, FAILED, LOG = HOME / "installed", HOME / "failed", HOME / "install.log"
_ARCH = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}


class InstallFailed(RuntimeError):
    """A step of the install failed; the message is the one line to show."""


def node_home() -> Path:
    """The Node 22 package: ``bin/node`` and the headers ``better-sqlite3`` builds against."""
    return HOME / "node" / "node_modules" / f"node-linux-{_ARCH.get(platform.machine(), platform.machine())}"


def wanted() -> str:
    """What a complete install holds: Node's version and the pinned packages (a change installs again)."""
    digest = hashlib.sha256(NODE_VERSION.encode())
    for name in ("package.json", "package-lock.json"):
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()


def ready() -> bool:
    try:
        return STAMP.read_text(encoding="utf-8") == wanted() and (node_home() / "bin" / "node").exists()
    except OSError:
        return False


def unavailable() -> str | None:
    """Why the network cannot run here, or None when it is installed."""
    if ready():
        return None
    try:
        return FAILED.read_text(encoding="utf-8").strip()
    except OSError:
        return f"the reference Bluesky PDS is not installed in {HOME} (./task test installs it)"


def _run(*command: str, cwd: Path = HOME, env: dict[str, str] | None = None) -> None:
    """Run one step, its output appended to the install log."""
    with LOG.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        done = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise InstallFailed(f"{Path(command[0]).name} {command[1]} failed (exit {done.returncode}; see {LOG})")


def _apt(*packages: str) -> None:
    """Install Debian packages where that is possible (root with apt-get), else say what is missing."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise InstallFailed(f"{', '.join(packages)} missing, and not root with apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run("apt-get", "update", "-qq", env=env)
    _run("apt-get", "install", "-y", "-qq", *packages, env=env)


def install() -> None:
    """Node 22 first (the build of better-sqlite3 needs its headers), then the pinned packages."""
    if platform.machine() not in _ARCH:
        raise InstallFailed(f"no Node 22 package for this machine ({platform.machine()})")
    missing = [tool for tool in ("npm", "make", "g++", "python3") if shutil.which(tool) is None]
    if missing:
        _apt(*_debian(missing))
    npm = ["npm", "--no-audit", "--no-fund", "--loglevel=error"]
    (HOME / "node").mkdir(exist_ok=True)
    _run(npm[0], "install", *npm[1:], "--prefix", str(HOME / "node"), f"node-linux-{_ARCH[platform.machine()]}@{NODE_VERSION}")
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(HERE / name, HOME / name)
    node = node_home()
    env = {**os.environ, "PATH": f"{node / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "npm_config_nodedir": str(node)}
    _run(npm[0], "ci", *npm[1:], env=env)


def _debian(tools: list[str]) -> list[str]:
    """The Debian packages that bring ``tools`` (npm comes with Debian's nodejs)."""
    return [package for tool in tools for package in ({"npm": ["nodejs", "npm"]}.get(tool) or [tool])]


def main() -> int:
    """Install when missing or out of date; always exit 0, so the suite runs and the Bluesky tests skip with the reason."""
    if ready():
        return 0
    HOME.mkdir(parents=True, exist_ok=True)
    with (HOME / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second ./task test at the same time waits for this install
        if ready():
            return 0
        print(f"task: installing the reference Bluesky PDS for the Bluesky tests into {HOME} (665 MB, 3-5 minutes)", file=sys.stderr)
        STAMP.unlink(missing_ok=True)
        LOG.write_text("", encoding="utf-8")
        try:
            install()
        except (InstallFailed, OSError) as exc:
            reason = f"could not install the reference Bluesky PDS: {exc}"
            FAILED.write_text(reason + "\n", encoding="utf-8")
            print(f"task: {reason}; the Bluesky tests will skip", file=sys.stderr)
            return 0
        FAILED.unlink(missing_ok=True)
        STAMP.write_text(wanted(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

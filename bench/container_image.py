"""Build deploy/container/Containerfile from this tree with podman and run it: /health
answers, `podman healthcheck run` passes, the engine runs as uid 10001 with no
passphrase on the volume, a device enrolls over EST with the passphrase from a podman
secret, and a new container on the same volume keeps the CAs and the device.

Minutes per run and only where podman and a base image are present, so it is not a
suite test (the suite checks the Containerfile's instructions and its health-check
script: tests/deploy/test_containerfile.py). Only package registries are reachable here,
so the default base cannot be pulled; build one and name it:

    python bench/container_image.py --base localhost/deploy-bookworm-python:latest

Exits 0 when every check passed, 1 otherwise (docs/operating.md, "Container").
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "deploy")]

from deploy_served import est_enroll  # noqa: E402
from harness import free_port  # noqa: E402

CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"


def default_base() -> str:
    found = re.search(r"^ARG BASE=(\S+)", CONTAINERFILE.read_text(), re.M)
    if found is None:
        raise SystemExit("the Containerfile has no ARG BASE")
    return found.group(1)


def podman_limits() -> list[str]:
    """Run options every container here needs: host network (only loopback is reachable)
    and ulimits within this machine's hard limits (podman's defaults exceed them in a
    container)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return ["--network=host", f"--ulimit=nofile={nofile}:{nofile}",
            f"--ulimit=nproc={nproc}:{nproc}"]


def podman(*args: str, timeout: float = 120, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
    """runc when installed (crun refuses hybrid cgroup hierarchies)."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    r = subprocess.run(["podman", *runtime, *args], capture_output=True, text=True,
                       timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {r.stdout}\n{r.stderr}")
    return r


def wait_healthy(http_url: str, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{http_url}/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(podman("logs", name, check=False).stdout[-4000:])


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)
    print(f"ok  {what}")


def build(base: str, tag: str) -> None:
    args = ["build", "--format", "docker", *podman_limits(), "--build-arg", f"BASE={base}",
            "-f", str(CONTAINERFILE), "-t", tag]
    system_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if system_ca.exists():  # a TLS-intercepting proxy in front of PyPI, for pip
        args += ["--secret", f"id=pip-ca,src={system_ca}"]
    started = time.monotonic()
    podman(*args, str(REPO), timeout=900)
    print(f"ok  built {tag} from {base} in {time.monotonic() - started:.0f} s")


def run_image(tag: str, tmp: Path) -> None:
    suffix = secrets.token_hex(4)
    volume, secret, name = f"enroll-data-{suffix}", f"enroll-pass-{suffix}", f"enroll-{suffix}"
    passphrase = tmp / "passphrase"
    passphrase.write_text(secrets.token_urlsafe(32) + "\n")
    podman("secret", "create", secret, str(passphrase))
    http_port, https_port = free_port(), free_port()
    run = ["run", "-d", *podman_limits(), "-v", f"{volume}:/var/lib/enroll",
           "--secret", secret, "-e", f"ENROLL_CA_PASSPHRASE_FILE=/run/secrets/{secret}",
           "-e", f"ENROLL_HTTP_PORT={http_port}", "-e", f"ENROLL_HTTPS_PORT={https_port}",
           "-e", f"ENROLL_PUBLIC_HTTP_URL=http://127.0.0.1:{http_port}",
           "-e", f"ENROLL_PUBLIC_HTTPS_URL=https://127.0.0.1:{https_port}"]
    http_url = f"http://127.0.0.1:{http_port}"
    try:
        podman(*run, "--name", name, tag)
        wait_healthy(http_url, name)
        check(True, "/health answers 200")
        check(podman("healthcheck", "run", name, check=False).returncode == 0,
              "podman healthcheck run passes")
        check(podman("exec", name, "id", "-u").stdout.strip() == "10001", "runs as uid 10001")
        listing = podman("exec", name, "ls", "-A", "/var/lib/enroll").stdout.split()
        check("enroll.db" in listing and "ca-passphrase" not in listing,
              "the volume holds the database and no passphrase")
        endpoints = json.loads(podman("exec", name, "cat",
                                      "/var/lib/enroll/endpoints.json").stdout)
        podman("cp", f"{name}:/var/lib/enroll/tls/ca.pem", str(tmp / "ca.pem"))
        endpoints["tls_ca_bundle"] = str(tmp / "ca.pem")
        est_enroll(endpoints, cn="container-device")
        check(True, "a device enrolls over EST")
        root = podman("exec", name, "cat", "/var/lib/enroll/root.pem").stdout
        podman("rm", "-f", "-t", "30", name)
        podman(*run, "--name", name, tag)  # a new container on the same volume
        wait_healthy(http_url, name)
        check(podman("exec", name, "cat", "/var/lib/enroll/root.pem").stdout == root,
              "a new container on the volume has the same root CA")
        certs = podman("exec", name, "enroll", "certs", "list", "--json").stdout
        check("container-device" in certs, "and knows the device's certificate")
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)
        podman("secret", "rm", secret, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=default_base(),
                        help="the base image, present locally (default: the ARG BASE)")
    args = parser.parse_args()
    if shutil.which("podman") is None:
        print("podman is not installed (apt-get install -y podman)", file=sys.stderr)
        return 1
    if podman("image", "exists", args.base, check=False).returncode != 0:
        print(f"the base image {args.base} is not present locally", file=sys.stderr)
        return 1
    tag = f"localhost/enroll-check-{secrets.token_hex(4)}"
    before = set(podman("images", "-q", "-a", "--no-trunc").stdout.split())
    try:
        build(args.base, tag)
        with tempfile.TemporaryDirectory() as tmp:
            run_image(tag, Path(tmp))
    except AssertionError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:  # what this build left: the image, its build stage and cached layers
        podman("rmi", "-f", tag, check=False)
        left = set(podman("images", "-q", "-a", "--no-trunc").stdout.split()) - before
        if left:
            podman("rmi", "-f", *left, check=False)
    print("every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A stand-in node for the cluster builders' tests: it STANDS IN for k3s, it is not Kubernetes.

No Kubernetes can be downloaded on the test machines, so the container and cloud builds run
against this instead: a rootfs made from Debian's ``busybox-static`` (no registry pull) with
small ``sh`` scripts named ``kubectl``, ``crictl`` and ``k3s`` that honour the node contract of
DESIGN.md ("The node contract") and nothing more:

- ``kubectl get --raw /readyz`` prints ``ok`` (unless the rootfs was made ``never_ready``);
- ``kubectl apply -f FILE|FOLDER|-`` records the manifest under ``/var/lib/standin/applied``
  and "schedules" one pod per ``image:`` line; an image whose registry host ends in
  ``.invalid`` cannot be pulled, so its pod stays waiting in ``ImagePullBackOff`` (how a test
  makes a stuck pod); one on a host ending in ``.slow`` stays ``Pending`` (``ContainerCreating``)
  for ever: a cluster that never settles;
- the "operator": a manifest that names ``kind: StandinOperator`` makes the node pull the
  operator's image (``operator_image``, known only to the node, as a real operator's defaults
  are) and run a pod with it: no file of the Kubefile names that image, only the cluster sees it;
- ``kubectl get pods -A -o json`` lists the pods; a new pod is ``Pending`` the first time it is
  listed and ``Running`` afterwards, so a build has to wait for the cluster to settle;
- ``crictl images -o json`` lists the runtime's images from a state file; the node's own
  system images (``SYSTEM_IMAGES``, with their Running pods) are there before any RUN.

``make_standin_rootfs`` writes the rootfs to a folder: ``podman import`` of a tar of it makes the
node image of the container build (its ``/bin/k3s server`` keeps the container alive), and the
cloud build's tests use the folder as an sshd chroot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

BUSYBOX = Path("/usr/bin/busybox")  # Debian's busybox-static: one static binary, no libraries
STATE = "/var/lib/standin"
SYSTEM_IMAGES = (
    "docker.io/rancher/mirrored-pause:3.6",
    "docker.io/rancher/mirrored-coredns-coredns:1.10.1",
)
ENTRYPOINT = "/bin/k3s"

# Every script says it stands in for k3s, so nobody mistakes a log of it for a real cluster.
_BANNER = "# STAND-IN for k3s (kubenb tests): not Kubernetes, only the node contract of DESIGN.md.\n"

_K3S = """#!/bin/sh
{banner}# `k3s server` keeps the node container alive; the state is already laid out in the rootfs.
echo "stand-in k3s: not Kubernetes; serving the node contract (kubectl, crictl) from {state}"
trap 'exit 0' TERM INT
while :; do sleep 1; done
"""

_KUBECTL = r"""#!/bin/sh
{banner}state={state}
# a pod is one file in $state/pods: "namespace name image phase reason"
new_pod() {{ # namespace name image
  n=$(ls "$state/pods" | wc -l)
  if echo "$3" | cut -d/ -f1 | grep -q '\.invalid$'; then
    echo "$1 $2-$n $3 Pending ImagePullBackOff" > "$state/pods/$n"
  elif echo "$3" | cut -d/ -f1 | grep -q '\.slow$'; then
    echo "$1 $2-$n $3 Pending ContainerCreating" > "$state/pods/$n"
  else
    echo "$1 $2-$n $3 New -" > "$state/pods/$n"
    pull "$3"
  fi
}}
pull() {{ # the runtime now holds this image
  grep -qxF "$1" "$state/images" || echo "$1" >> "$state/images"
}}
apply_file() {{ # record the manifest, then run what it asks for
  n=$(ls "$state/applied" | wc -l)
  cp "$1" "$state/applied/$n-$(basename "$1")"
  echo "stand-in kubectl: applied $1"
  ns=$(sed -n 's/^ *namespace: *\([^ ]*\).*/\1/p' "$1" | head -n 1)
  ns=${{ns:-default}}
  base=$(basename "$1" | sed 's/\.[^.]*$//')
  for image in $(sed -n 's/^[ -]*image: *["'"'"']\{{0,1\}}\([^"'"'"' ]*\).*/\1/p' "$1"); do
    new_pod "$ns" "$base" "$image"
  done
  if grep -q '^kind: *StandinOperator' "$1" && [ -s /etc/standin/operator-image ]; then
    new_pod "$ns" standin-operator-worker "$(cat /etc/standin/operator-image)"
    echo "stand-in kubectl: the stand-in operator pulled $(cat /etc/standin/operator-image)"
  fi
}}
apply() {{
  case "$1" in
    -) tmp=$(mktemp); cat > "$tmp"; apply_file "$tmp"; rm -f "$tmp" ;;
    *) if [ -d "$1" ]; then
         for f in "$1"/*.yaml "$1"/*.yml "$1"/*.json; do if [ -f "$f" ]; then apply_file "$f"; fi; done
       elif [ -f "$1" ]; then apply_file "$1"
       else echo "error: the path \"$1\" does not exist" >&2; exit 1
       fi ;;
  esac
}}
pods_json() {{
  printf '{{"apiVersion": "v1", "kind": "List", "items": ['
  sep=""
  for f in $(ls "$state/pods" | sort -n); do
    read -r ns name image phase reason < "$state/pods/$f"
    if [ "$phase" = New ]; then shown=Pending; else shown=$phase; fi
    if [ "$reason" = "-" ]; then
      status="\"state\": {{\"running\": {{}}}}"
    else
      message="Back-off pulling image \\\"$image\\\""
      status="\"state\": {{\"waiting\": {{\"reason\": \"$reason\", \"message\": \"$message\"}}}}"
    fi
    printf '%s{{"metadata": {{"namespace": "%s", "name": "%s"}}, ' "$sep" "$ns" "$name"
    printf '"spec": {{"containers": [{{"name": "main", "image": "%s"}}]}}, ' "$image"
    printf '"status": {{"phase": "%s", "containerStatuses": [{{"name": "main", "image": "%s", %s}}]}}}}' \
      "$shown" "$image" "$status"
    sep=", "
    # listed once as Pending, then it runs
    [ "$phase" = New ] && echo "$ns $name $image Running -" > "$state/pods/$f"
  done
  printf ']}}\n'
}}
export KUBECONFIG
case "$*" in
  "get --raw /readyz")
    if [ -e /etc/standin/never-ready ]; then echo "stand-in kubectl: the server is not ready" >&2; exit 1; fi
    echo ok ;;
  "get pods -A -o json"|"get pods --all-namespaces -o json") pods_json ;;
  "apply -f "*) shift 2; apply "$1" ;;
  *) echo "stand-in kubectl: not part of the node contract: kubectl $*" >&2; exit 1 ;;
esac
"""

_CRICTL = r"""#!/bin/sh
{banner}state={state}
case "$*" in
  "images -o json")
    printf '{{"images": ['
    sep=""
    while read -r image; do
      [ -n "$image" ] || continue
      id=$(echo "$image" | sha256sum | cut -c1-64)
      printf '%s{{"id": "sha256:%s", "repoTags": ["%s"], "repoDigests": [], "size": "1"}}' "$sep" "$id" "$image"
      sep=", "
    done < "$state/images"
    printf ']}}\n' ;;
  *) echo "stand-in crictl: not part of the node contract: crictl $*" >&2; exit 1 ;;
esac
"""


def make_standin_rootfs(dest: Path, *, operator_image: str | None = None, never_ready: bool = False,
                        system_images: Iterable[str] = SYSTEM_IMAGES) -> Path:
    """Lay out the stand-in node's rootfs in ``dest`` (created) and return it.

    ``operator_image``: what the stand-in operator pulls when a ``kind: StandinOperator``
    manifest is applied. ``never_ready``: ``kubectl get --raw /readyz`` never says ok (the
    node-not-ready test). The state folder is world-writable so an unprivileged ssh user can
    run the scripts in a chroot.
    """
    if not BUSYBOX.is_file():
        raise RuntimeError(f"{BUSYBOX} not found: install Debian's busybox-static (`make test` does)")
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("bin", "etc/standin", "etc/rancher/k3s", "tmp", "root", "usr/local/bin",
                   f"{STATE.lstrip('/')}/pods", f"{STATE.lstrip('/')}/applied"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin/busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet not in {"busybox", "kubectl", "crictl"} and not (dest / "bin" / applet).exists():
            (dest / "bin" / applet).symlink_to("busybox")
    for name, text in (("kubectl", _KUBECTL), ("crictl", _CRICTL), ("k3s", _K3S)):
        script = dest / "bin" / name
        script.write_text(text.format(banner=_BANNER, state=STATE), encoding="utf-8")
        script.chmod(0o755)
    (dest / "etc/rancher/k3s/k3s.yaml").write_text(f"{_BANNER}# a stand-in kubeconfig: nothing reads it\n")
    (dest / "etc/standin/operator-image").write_text(operator_image or "", encoding="utf-8")
    if never_ready:
        (dest / "etc/standin/never-ready").touch()
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n", encoding="utf-8")
    _system_state(dest / STATE.lstrip("/"), list(system_images))
    return dest


def _system_state(state: Path, system_images: list[str]) -> None:
    """The node's own images and their Running pods, there before any RUN (as k3s's are)."""
    (state / "images").write_text("".join(f"{image}\n" for image in system_images), encoding="utf-8")
    for number, image in enumerate(system_images):
        (state / "pods" / str(number)).write_text(f"kube-system system-{number} {image} Running -\n", encoding="utf-8")
    for folder in (state, state / "pods", state / "applied"):
        folder.chmod(0o777)
    for path in state.rglob("*"):
        if path.is_file():
            path.chmod(0o666)


def rootfs_tar(rootfs: Path, tar_path: Path) -> Path:
    """A tar of ``rootfs`` with paths relative to its root, as ``podman import`` takes it."""
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=os.path.relpath(path, rootfs), recursive=False)
    return tar_path


def import_node_image(rootfs: Path, name: str, work: Path, podman: str = "podman") -> str:
    """``podman import`` the stand-in rootfs as the node image ``name`` (entrypoint ``/bin/k3s``,
    as rancher/k3s's is); returns ``name``."""
    tar_path = rootfs_tar(rootfs, work / "standin-rootfs.tar")
    subprocess.run([podman, "import", "--change", f'ENTRYPOINT ["{ENTRYPOINT}"]', "--change", 'CMD ["server"]',
                    "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin", str(tar_path), name],
                   check=True, capture_output=True, text=True)
    tar_path.unlink()
    return name

#!/usr/bin/env python3
"""Checks deploy/'s configuration offline, for scripts/test-deploy.

  check_config.py compose deploy/compose.yaml
      The compose file against the Compose specification: the `compose_spec` parser (PyPI
      compose-spec: the Rust compose_spec crate, strict about every key and value) and the
      specification's JSON schema (its pydantic models), with YAML merge keys resolved first as
      Compose does; then what this deployment promises (read-only instances, a stop grace period
      above SHUTDOWN_DRAIN, named volumes defined, nginx's configuration present).
  check_config.py kustomize deploy/kubernetes > all.yaml
      Builds a kustomization the way `kubectl kustomize` does for what this one uses (resources
      and images), where no kustomize binary is installed.
  check_config.py kube-play all.yaml DIR PORT REDIS_URL PREFIX
      Writes DIR/kube-play.yaml and DIR/secret.json: the built manifests as podman 4's
      `kube play --network host` can run them on one machine (the ConfigMap, and the Deployment
      with one replica on the host's network: PORT instead of a containerPort, the test's Redis
      and prefix, the image switchyard:local, PREFIX without its colon as the Deployment's name);
      the Secret becomes a podman secret of that name (secret.json), which is what such a podman
      reads a secretRef from. Everything else is left as it is.
  check_config.py kubernetes all.yaml
      Every manifest against the Kubernetes API's JSON schemas (PyPI kubernetes-validate, strict:
      unknown fields are errors) of the oldest and newest versions it ships from 1.29, then what
      this deployment promises (probes, grace period, security context, resources, Secret keys,
      affinity annotations, PDB, HPA).

Prints what it checked; exits 1 with every problem found.
"""

import json
import re
import sys
from pathlib import Path

import yaml

problems: list[str] = []


def problem(message: str) -> None:
    problems.append(message)


def seconds(value) -> float:
    """A Compose or Switchyard duration (`15s`, `1m30s`, `500ms`, a number of seconds)."""
    if isinstance(value, (int, float)) or re.fullmatch(r"\d+(\.\d+)?", str(value)):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value)):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}[unit]
    return total


def check_compose(path: Path) -> None:
    from compose_spec import ComposeSpecification
    from compose_spec.compose_spec import PyCompose  # the Rust parser itself

    data = yaml.safe_load(path.read_text())  # resolves `<<: *anchor` merge keys, as Compose does
    # Top-level x- keys are fragments for anchors; Compose ignores them.
    plain = {k: v for k, v in data.items() if not k.startswith("x-")}
    try:
        PyCompose.from_json(json.dumps(plain)).validate()
    except ValueError as e:
        problem(f"{path}: compose_spec: {e}")
    try:
        ComposeSpecification.model_validate(plain)
    except Exception as e:  # pydantic.ValidationError
        problem(f"{path}: compose specification schema: {e}")

    services = data.get("services", {})
    volumes = set((data.get("volumes") or {}).keys())
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/")):
                if not (path.parent / source).exists():
                    problem(f"{path}: {name} mounts {source}, which does not exist")
            elif source and source not in volumes:
                problem(f"{path}: {name} uses volume {source}, not defined under volumes:")
    instances = {n: s for n, s in services.items() if "switchyard" in str(s.get("image", ""))}
    if len(instances) < 2:
        problem(f"{path}: expected two Switchyard instances, found {sorted(instances)}")
    for name, service in instances.items():
        env = service.get("environment", {})
        drain = seconds(env.get("SHUTDOWN_DRAIN", "5s"))
        if service.get("read_only") is not True:
            problem(f"{path}: {name} is not read_only")
        if seconds(service.get("stop_grace_period", "10s")) <= drain:
            problem(f"{path}: {name}'s stop_grace_period is not above SHUTDOWN_DRAIN ({drain} s)")
        if not any(str(v).endswith(":/data") for v in service.get("volumes", [])):
            problem(f"{path}: {name} has no volume on /data")
        if "REDIS_URL" not in env:
            problem(f"{path}: {name} has no REDIS_URL")
        if service.get("ports"):
            problem(f"{path}: {name} publishes a port; only nginx should")
    nginx = services.get("nginx", {})
    if "8080:8080" not in [str(p) for p in nginx.get("ports", [])]:
        problem(f"{path}: nginx does not publish 8080")
    if not problems:
        print(f"compose: {path}: {len(services)} services ({', '.join(services)}) valid")


def build_kustomization(directory: Path) -> str:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    supported = {"apiVersion", "kind", "resources", "images"}
    unsupported = set(kustomization) - supported
    if unsupported:
        sys.exit(f"check_config.py: kustomization uses {sorted(unsupported)}: build it with kubectl kustomize")
    images = {i["name"]: i for i in kustomization.get("images", [])}
    documents = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((directory / resource).read_text()):
            if not doc:
                continue
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name, _, tag = container["image"].partition(":")
                if name in images:
                    image = images[name]
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
            documents.append(doc)
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)


def check_kubernetes(path: Path) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions

    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    versions = [v for v in all_versions() if tuple(map(int, v.split(".")[:2])) >= (1, 29)]
    versions = sorted({versions[0], versions[-1]})
    for doc in documents:
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except Exception as e:
                problem(f"{doc['kind']}/{doc['metadata']['name']} against Kubernetes {version}: {getattr(e, 'message', e)}")
    by_kind: dict[str, list[dict]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
    for kind in ["Deployment", "Service", "PodDisruptionBudget", "Ingress", "HorizontalPodAutoscaler", "Secret", "ConfigMap"]:
        if kind not in by_kind:
            problem(f"no {kind}")
    if problems:
        return

    config = by_kind["ConfigMap"][0]["data"]
    secret = by_kind["Secret"][0]
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for key in ["JWT_SECRET", "API_KEYS", "REDIS_URL"]:
        if key not in secret_keys:
            problem(f"the Secret has no {key}")
        if key in config:
            problem(f"{key} is in the ConfigMap; it belongs in the Secret")
    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    probe_path = lambda p: container.get(p, {}).get("httpGet", {}).get("path")  # noqa: E731
    if probe_path("readinessProbe") != "/readyz":
        problem("the readiness probe is not /readyz")
    if probe_path("livenessProbe") != "/healthz":
        problem("the liveness probe is not /healthz")
    drain = seconds(config.get("SHUTDOWN_DRAIN", "5s"))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop_seconds = seconds(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= drain + pre_stop_seconds:
        problem(f"terminationGracePeriodSeconds {grace} is not above preStop {pre_stop_seconds} s + SHUTDOWN_DRAIN {drain} s")
    resources = container.get("resources", {})
    for part in ["requests", "limits"]:
        for what in ["cpu", "memory"]:
            if what not in resources.get(part, {}):
                problem(f"the container has no {what} {part[:-1]}")
    pod_security = pod.get("securityContext", {})
    security = container.get("securityContext", {})
    if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
        problem("runAsNonRoot is not set")
    if not security.get("readOnlyRootFilesystem"):
        problem("readOnlyRootFilesystem is not set")
    if security.get("allowPrivilegeEscalation") is not False:
        problem("allowPrivilegeEscalation is not false")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    data_volume = volumes.get(mounts.get("/data", ""), {})
    if not ("emptyDir" in data_volume or "persistentVolumeClaim" in data_volume):
        problem("/data is not an emptyDir or a PVC")
    env_from = [next(iter(e.values()))["name"] for e in container.get("envFrom", [])]
    if secret["metadata"]["name"] not in env_from:
        problem("the container does not take its environment from the Secret")
    annotations = by_kind["Ingress"][0]["metadata"].get("annotations", {})
    if annotations.get("nginx.ingress.kubernetes.io/affinity") != "cookie":
        problem("the Ingress has no cookie affinity (long-polling needs it)")
    selector = deployment["spec"]["selector"]["matchLabels"]
    for kind in ["Service", "PodDisruptionBudget"]:
        doc = by_kind[kind][0]
        chosen = doc["spec"]["selector"] if kind == "Service" else doc["spec"]["selector"]["matchLabels"]
        if chosen != selector:
            problem(f"the {kind}'s selector {chosen} is not the Deployment's {selector}")
    target = by_kind["HorizontalPodAutoscaler"][0]["spec"]["scaleTargetRef"]
    if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
        problem("the HPA does not scale the Deployment")
    if not problems:
        print(f"kubernetes: {len(documents)} manifests ({', '.join(sorted(by_kind))}) valid against Kubernetes {' and '.join(versions)}")


def kube_play(path: Path, directory: Path, port: str, redis_url: str, prefix: str) -> None:
    import base64

    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    name = prefix.rstrip(":")  # the Deployment's and the podman secret's name
    played = []
    for doc in documents:
        if doc["kind"] == "ConfigMap":
            doc["data"].update(PORT=port, HOST="127.0.0.1", REDIS_CHANNEL_PREFIX=prefix, TRUSTED_PROXIES="127.0.0.1")
            played.append(doc)
        elif doc["kind"] == "Secret":
            values = {k: v.encode() for k, v in doc.get("stringData", {}).items()}
            values.update({k: base64.b64decode(v) for k, v in doc.get("data", {}).items()})
            values["REDIS_URL"] = redis_url.encode()
            values["JWT_SECRET"] = base64.b64encode(__import__("os").urandom(36))
            secret = {k: base64.b64encode(v).decode() for k, v in values.items()}
            (directory / "secret.json").write_text(json.dumps(secret))
        elif doc["kind"] == "Deployment":
            doc["metadata"]["name"] = name
            doc["spec"]["replicas"] = 1
            pod = doc["spec"]["template"]["spec"]
            pod["hostNetwork"] = True
            container = pod["containers"][0]
            container["image"] = "localhost/switchyard:local"
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    source["secretRef"]["name"] = name
            container.pop("ports", None)  # a port mapping, which the host's network refuses
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    container[probe]["httpGet"]["port"] = int(port)
            played.append(doc)
    (directory / "kube-play.yaml").write_text(yaml.safe_dump_all(played, sort_keys=False))


def main() -> None:
    if len(sys.argv) == 7 and sys.argv[1] == "kube-play":
        kube_play(Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:7])
        return
    if len(sys.argv) != 3 or sys.argv[1] not in {"compose", "kustomize", "kubernetes"}:
        sys.exit(__doc__)
    what, target = sys.argv[1], Path(sys.argv[2])
    if what == "kustomize":
        sys.stdout.write(build_kustomization(target))
        return
    (check_compose if what == "compose" else check_kubernetes)(target)
    if problems:
        for p in problems:
            print(f"check_config.py: {p}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

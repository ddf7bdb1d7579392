"""What a schema cannot see in the Kubernetes manifests: each number's
StatefulSet runs exactly one pod of the image as its own non-root user, with a
read-only root, its data on its own claim at the image's data directory, its
secrets from its own Secret and its probes on the health route; its Service
selects that pod; no two numbers share a name.

    python3 check_manifests.py Containerfile manifest.yaml...
"""

import sys

import yaml

HEALTH_ROUTE = "/api/v1/health"


def containerfile(path):
    """The final stage's instructions as {KEYWORD: [args, ...]}."""
    instructions, pending = [], ""
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            instructions = []
        instructions.append((keyword.upper(), args.strip()))
    out = {}
    for keyword, args in instructions:
        out.setdefault(keyword, []).append(args)
    return out


def image_facts(path):
    final = containerfile(path)
    env = dict(pair.split("=", 1) for args in final["ENV"] for pair in args.split())
    return {
        "uid": int(final["USER"][0].split(":")[0]),
        "port": int(final["EXPOSE"][0]),
        "data_dir": env["DATA_DIR"],
    }


def check(condition, what):
    if not condition:
        raise SystemExit(f"check_manifests: FAILED: {what}")


def check_statefulset(sts, services, image):
    name = sts["metadata"]["name"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    selector = spec["selector"]["matchLabels"]
    check(spec["replicas"] == 1, f"{name}: one replica (one session, one writer)")
    check(selector.items() <= labels.items(), f"{name}: the selector matches its pods")

    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(list(ports.values()) == [image["port"]], f"{name}: serves the image's port")
    check(container.get("args") == ["serve"], f"{name}: runs serve")
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        check(get["path"] == HEALTH_ROUTE, f"{name}: {probe} on {HEALTH_ROUTE}")
        check(get["port"] in ports, f"{name}: {probe} on a declared port")

    security = pod["securityContext"]
    check(security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
    check(security.get("runAsUser") == image["uid"], f"{name}: the image's uid")
    check(security.get("fsGroup") == image["uid"], f"{name}: its volume writable by that uid")
    own = container["securityContext"]
    check(own.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
    check(own.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
    check(own.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drops all capabilities")

    resources = container["resources"]
    check({"cpu", "memory"} <= resources["requests"].keys(), f"{name}: requests cpu and memory")
    check("memory" in resources["limits"], f"{name}: a memory limit")

    secrets = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
    check(secrets == [name], f"{name}: its secrets from the Secret {name}")

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    check(mounts.get(image["data_dir"]) in claims, f"{name}: {image['data_dir']} on its own claim")
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    check(mounts.get("/tmp") in empty_dirs, f"{name}: a writable /tmp")

    service = services.get(spec["serviceName"])
    check(service is not None, f"{name}: its Service {spec['serviceName']} exists")
    check(service["spec"]["selector"] == selector, f"{name}: its Service selects its pod")
    for port in service["spec"]["ports"]:
        check(port["targetPort"] in ports, f"{name}: its Service targets a declared port")


def main(containerfile_path, *manifests):
    image = image_facts(containerfile_path)
    names, statefulsets, services = set(), [], {}
    for path in manifests:
        for doc in yaml.safe_load_all(open(path, encoding="utf-8")):
            key = (doc["kind"], doc["metadata"]["name"])
            check(key not in names, f"{key} is defined twice")
            names.add(key)
            if doc["kind"] == "StatefulSet":
                statefulsets.append(doc)
            elif doc["kind"] == "Service":
                services[doc["metadata"]["name"]] = doc
    check(statefulsets, "no StatefulSet found")
    for sts in statefulsets:
        check_statefulset(sts, services, image)
    print(f"check_manifests: {len(statefulsets)} numbers, {len(names)} resources consistent")


if __name__ == "__main__":
    main(*sys.argv[1:])

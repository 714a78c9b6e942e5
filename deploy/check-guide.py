"""Follows docs/operations.md's "Install order" without a cluster, and checks that it works.

Usage: check-guide.py REPO_ROOT KUBECTL

Runs the section's shell commands in order against a scratch copy of deploy/ and a pretend
cluster (a dict of objects): `cp` runs in the copy; `kubectl create secret|namespace` runs with
`--dry-run=client -o yaml` (offline) and records the object; `kubectl apply -k DIR` renders DIR
with `kubectl kustomize`; `kubectl apply -f - <<EOF` reads the here-document. Commands that need
a cluster, a database or a registry (`wait`, `docker`, `chimpsync ...`) are skipped and listed.

Fails when
  - an apply would replace a Secret that an earlier step created (the real credentials),
  - a pod refers to a Secret key, a Secret or a ConfigMap that the steps do not create,
  - a command of the guide is not one this script knows how to follow (so the guide and the
    script cannot drift apart silently),
and checks the opt-in component components/example-secret: an overlay with it renders the
placeholder Secret, with the keys the guide's Secret has.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

problems = []


def need(condition, what):
    if not condition:
        problems.append(what)


def install_section(doc):
    start = doc.index("\n## Install order")
    end = doc.index("\n## ", start + 1)
    return doc[start:end]


def commands(section):
    """The section's `sh` blocks as commands: continuation lines joined, here-documents kept."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        lines = [ln.strip() for ln in block.splitlines()]
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line:
                continue
            while line.endswith("\\") and i < len(lines):
                line = line[:-1] + " " + lines[i]
                i += 1
            heredoc = None
            m = re.search(r"<<'?(\w+)'?", line)
            if m:
                body = []
                while i < len(lines) and lines[i] != m.group(1):
                    body.append(lines[i])
                    i += 1
                i += 1
                # The block was indented as a whole in the Markdown list: re-read it unindented.
                raw = re.search(r"<<'?%s'?\n(.*?)\n\s*%s\n" % (m.group(1), m.group(1)), block, re.S)
                heredoc = dedent(raw.group(1)) if raw else "\n".join(body)
                line = line[: m.start()]
            out.append((shlex.split(line, comments=True), heredoc))
    return out


def dedent(text):
    lines = text.splitlines()
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
    return "\n".join(ln[indent:] for ln in lines)


def namespace_of(args):
    if "-n" in args:
        return args[args.index("-n") + 1]
    return None


class Cluster:
    def __init__(self):
        self.objects = {}  # (kind, namespace, name) -> (object, how it came)

    def add(self, obj, how, ns):
        kind = obj["kind"]
        name = obj["metadata"]["name"]
        if kind != "Namespace":
            ns = obj["metadata"].get("namespace") or ns or "default"
            obj["metadata"]["namespace"] = ns
        else:
            ns = None
        key = (kind, ns, name)
        if key in self.objects:
            before = self.objects[key][1]
            if how.startswith("create"):
                problems.append(f"`{how}`: {kind} {name} exists already (from `{before}`)")
            elif kind == "Secret":
                problems.append(
                    f"`{how}` would replace the Secret {ns}/{name} made by `{before}`")
        self.objects[key] = (obj, how)


def pod_specs(obj):
    kind = obj["kind"]
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        yield obj["spec"]["template"]["spec"]
    elif kind == "CronJob":
        yield obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def check_references(cluster):
    """Every Secret key and ConfigMap a pod names exists (a `-HASH` placeholder matches the
    generated name, as the guide tells the reader to look it up)."""
    def find(kind, ns, name):
        for (k, n, nm), (obj, _) in cluster.objects.items():
            if k != kind or n != ns:
                continue
            if nm == name or (name.endswith("-HASH") and nm.startswith(name[:-4])):
                return obj
        return None

    for (kind, ns, name), (obj, how) in cluster.objects.items():
        for spec in pod_specs(obj):
            where = f"{kind} {name}"
            refs = []
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                for e in c.get("env", []):
                    vf = e.get("valueFrom", {})
                    if "secretKeyRef" in vf:
                        refs.append(("Secret", vf["secretKeyRef"]["name"], vf["secretKeyRef"]["key"]))
                    if "configMapKeyRef" in vf:
                        refs.append(("ConfigMap", vf["configMapKeyRef"]["name"], vf["configMapKeyRef"]["key"]))
                for ef in c.get("envFrom", []):
                    if "configMapRef" in ef:
                        refs.append(("ConfigMap", ef["configMapRef"]["name"], None))
                    if "secretRef" in ef:
                        refs.append(("Secret", ef["secretRef"]["name"], None))
            for v in spec.get("volumes", []):
                if "configMap" in v:
                    refs.append(("ConfigMap", v["configMap"]["name"], None))
                if "secret" in v:
                    refs.append(("Secret", v["secret"]["secretName"], None))
            for ref_kind, ref_name, key in refs:
                target = find(ref_kind, ns, ref_name)
                if target is None:
                    problems.append(f"{where} needs {ref_kind} {ns}/{ref_name}, which the guide does not create")
                elif key is not None:
                    keys = set(target.get("data", {})) | set(target.get("stringData", {}))
                    need(key in keys, f"{where} needs key {key} of {ref_kind} {ns}/{ref_name}; it has {sorted(keys)}")


def main(root, kubectl):
    doc = open(os.path.join(root, "docs/operations.md")).read()
    steps = commands(install_section(doc))
    scratch = tempfile.mkdtemp(prefix="chimpsync-guide-")
    try:
        shutil.copytree(os.path.join(root, "deploy"), os.path.join(scratch, "deploy"))
        cluster = Cluster()
        skipped = []
        secret_keys = None
        applied_k = []
        for args, heredoc in steps:
            if not args:
                continue
            # Values stay out of messages: `--from-literal=KEY=...`.
            text = " ".join(re.sub(r"^(--from-literal=[^=]+=).*", r"\1...", a) for a in args)
            if args[0] == "cp":
                subprocess.run(args, cwd=scratch, check=True)
            elif args[0] == "docker" or "chimpsync" in args[0] or "=" in args[0]:
                skipped.append(text)
            elif args[0] == "kubectl":
                rest = args[1:]
                ns = namespace_of(rest)
                if ns:
                    i = rest.index("-n")
                    rest = rest[:i] + rest[i + 2:]
                verb = rest[0]
                if verb == "create":
                    out = subprocess.run(
                        [kubectl] + args[1:] + ["--dry-run=client", "-o", "yaml"],
                        cwd=scratch, check=True, capture_output=True, text=True).stdout
                    obj = yaml.safe_load(out)
                    cluster.add(obj, text, ns)
                    if obj["kind"] == "Secret":
                        secret_keys = set(obj.get("data", {}))
                elif verb == "apply" and rest[1] == "-k":
                    out = subprocess.run([kubectl, "kustomize", rest[2]], cwd=scratch,
                                         check=True, capture_output=True, text=True).stdout
                    for obj in yaml.safe_load_all(out):
                        if obj:
                            cluster.add(obj, text, ns)
                    applied_k.append(rest[2])
                elif verb == "apply" and rest[1:3] == ["-f", "-"] and heredoc is not None:
                    for obj in yaml.safe_load_all(heredoc):
                        if obj:
                            cluster.add(obj, text, ns)
                elif verb == "wait":
                    skipped.append(text)
                else:
                    problems.append(f"the guide runs `{text}`, which check-guide.py cannot follow")
            else:
                problems.append(f"the guide runs `{text}`, which check-guide.py cannot follow")

        need(secret_keys is not None, "the guide creates no Secret with kubectl")
        need(bool(applied_k), "the guide applies no overlay (kubectl apply -k)")
        check_references(cluster)
        need(not any(k == "Secret" and how.startswith("kubectl apply")
                     for (k, _, _), (_, how) in cluster.objects.items()),
             "an overlay the guide applies renders a Secret")
        for text in skipped:
            print(f"   skipped (needs a cluster, a database or a registry): {text}")
        print(f"   followed {len(steps) - len(skipped)} of {len(steps)} commands; "
              f"the pretend cluster holds {len(cluster.objects)} objects")

        # The opt-in placeholder Secret: the overlay the guide made, plus the component.
        if applied_k and secret_keys is not None:
            overlay = os.path.join(scratch, applied_k[0])
            with open(os.path.join(overlay, "kustomization.yaml"), "a") as f:
                f.write("\ncomponents:\n  - ../../components/example-secret\n")
            out = subprocess.run([kubectl, "kustomize", overlay], check=True,
                                 capture_output=True, text=True).stdout
            secrets = [o for o in yaml.safe_load_all(out) if o and o["kind"] == "Secret"]
            need(len(secrets) == 1 and secrets[0]["metadata"]["name"] == "chimpsync",
                 "components/example-secret renders the Secret chimpsync")
            if secrets:
                keys = set(secrets[0].get("stringData", {})) | set(secrets[0].get("data", {}))
                need(keys == secret_keys,
                     f"components/example-secret has keys {sorted(keys)}, the guide's Secret {sorted(secret_keys)}")
                need(all("CHANGE-ME" in v or set(v.split("-")[0]) == {"0"}
                         for v in secrets[0].get("stringData", {}).values()),
                     "components/example-secret holds placeholders only")
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main(*sys.argv[1:3])
    for p in problems:
        print(f"PROBLEM {p}")
    if problems:
        sys.exit(1)
    print("the install guide works as written, and leaves the Secret alone")

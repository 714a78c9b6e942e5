"""Checks what deploy/ promises beyond schema validity (docs/operations.md relies on it).

Usage: check-manifests.py RENDERED_OVERLAY.yaml PROMETHEUS_RULES.yaml HTTP_RS
Reads the rendered example overlay, the PrometheusRule and the metric names the binary
describes (crates/chimpsync/src/http.rs); exits non-zero naming every broken promise.
"""

import re
import sys

import yaml

SHUTDOWN_DEADLINE_DEFAULT = 20

problems = []


def need(condition, what):
    if not condition:
        problems.append(what)


def pod_specs(docs):
    for d in docs:
        kind = d["kind"]
        if kind == "Deployment" or kind == "Job":
            yield d, d["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield d, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def main(rendered, rules, http_rs):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ["Deployment", "Job", "CronJob", "ConfigMap", "Secret", "Service",
                 "PodDisruptionBudget", "ServiceAccount", "Namespace"]:
        need(kind in by_kind, f"no {kind} rendered")
    if problems:
        return

    # Every pod: restricted security context, read-only root, resources, the mapping mounted.
    for owner, spec in pod_specs(docs):
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        psc = spec.get("securityContext", {})
        need(psc.get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
        need(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0,
             f"{name}: numeric non-root runAsUser")
        need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp")
        need(spec.get("automountServiceAccountToken") is False, f"{name}: no API token")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            need(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
            need(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation")
            need(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drop ALL")
            need("requests" in c.get("resources", {}) and "limits" in c.get("resources", {}),
                 f"{name}: resources")
            env = env_of(c)
            need(env.get("CHIMPSYNC_CONFIG", {}).get("value") == "/etc/chimpsync/chimpsync.toml",
                 f"{name}: CHIMPSYNC_CONFIG")
            need(any(m["mountPath"] == "/etc/chimpsync" for m in c.get("volumeMounts", [])),
                 f"{name}: mapping file mounted")
            need("DATABASE_URL" in env, f"{name}: DATABASE_URL")

    deployment = by_kind["Deployment"][0]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = env_of(container)
    need(deployment["spec"]["replicas"] == 2, "Deployment: 2 replicas")
    need(container.get("args", [])[:1] == ["run"], "Deployment: runs `chimpsync run`")
    # Ordering: the worker waits for setup's schema and triggers rather than exiting (the Job
    # and the Deployment are applied together).
    waits = "--wait-for-schema" in container.get("args", []) or env.get(
        "CHIMPSYNC_WAIT_FOR_SCHEMA", {}).get("value", "").lower() in {"true", "1", "yes", "on"}
    need(waits, "Deployment: waits for the schema (run --wait-for-schema)")
    need(container["startupProbe"]["httpGet"]["path"] == "/healthz",
         "Deployment: the startup probe is /healthz (live while waiting for the schema)")
    need(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness on /healthz")
    need(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz")
    deadline = int(env.get("CHIMPSYNC_SHUTDOWN_DEADLINE_SECONDS", {}).get(
        "value", SHUTDOWN_DEADLINE_DEFAULT))
    need(spec["terminationGracePeriodSeconds"] > deadline,
         "terminationGracePeriodSeconds above the shutdown deadline")
    need("MAILCHIMP_API_KEY" in env and "valueFrom" in env["MAILCHIMP_API_KEY"],
         "Deployment: the API key comes from the Secret")
    need(env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL",
         "Deployment: the worker connects with the worker role's URL")

    job = by_kind["Job"][0]
    job_container = job["spec"]["template"]["spec"]["containers"][0]
    need(job_container["args"][0] == "setup", "Job: runs `chimpsync setup`")
    need("--worker-role" in job_container["args"], "Job: creates the worker role")
    # Re-run on every apply: gone soon after it finishes (its template is immutable), bounded.
    job_spec = job["spec"]
    ttl = job_spec.get("ttlSecondsAfterFinished")
    need(isinstance(ttl, int) and 0 <= ttl <= 900,
         "Job: ttlSecondsAfterFinished at most 900 (the next apply re-runs setup)")
    need(isinstance(job_spec.get("activeDeadlineSeconds"), int)
         and job_spec["activeDeadlineSeconds"] > 300,
         "Job: activeDeadlineSeconds above setup's own 300 s lock deadline")
    need(isinstance(job_spec.get("backoffLimit"), int) and job_spec["backoffLimit"] <= 5,
         "Job: a bounded backoffLimit")

    cron = by_kind["CronJob"][0]
    cron_container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    need(cron_container["args"] == ["run", "--once"], "CronJob: runs `run --once`")
    need(cron["spec"].get("concurrencyPolicy") == "Forbid", "CronJob: no overlapping runs")

    pdb = by_kind["PodDisruptionBudget"][0]["spec"]
    need(pdb.get("maxUnavailable") == 1 and "minAvailable" not in pdb,
         "PodDisruptionBudget: maxUnavailable 1 (cannot block a drain)")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    need(all(labels.get(k) == v for k, v in pdb["selector"]["matchLabels"].items()),
         "PodDisruptionBudget selects the worker pods")
    service = by_kind["Service"][0]["spec"]
    need(all(labels.get(k) == v for k, v in service["selector"].items()),
         "Service selects the worker pods")
    need(any(p["port"] == 9187 for p in service["ports"]), "Service: port 9187")
    secret = by_kind["Secret"][0]
    need({"DATABASE_URL", "MAILCHIMP_API_KEY"} <= set(secret.get("stringData", {})),
         "Secret example: DATABASE_URL and MAILCHIMP_API_KEY")
    config = by_kind["ConfigMap"][0]
    need("chimpsync.toml" in config["data"], "ConfigMap: chimpsync.toml")

    # The alert rules: well formed, the schema mismatch among them, and only about metrics the binary exports.
    exported = set(re.findall(r'describe_\w+!\(\s*"(chimpsync_\w+)"', open(http_rs).read()))
    need(len(exported) > 5, f"found the metric names in {http_rs}")
    rule_doc = yaml.safe_load(open(rules))
    need(rule_doc["kind"] == "PrometheusRule", "rules: kind PrometheusRule")
    alerts = {r.get("alert") for g in rule_doc["spec"]["groups"] for r in g["rules"]}
    need("ChimpsyncSchemaMismatch" in alerts, "rules: ChimpsyncSchemaMismatch")
    for group in rule_doc["spec"]["groups"]:
        for rule in group["rules"]:
            alert = rule.get("alert", "?")
            for key in ["alert", "expr", "for", "labels", "annotations"]:
                need(key in rule, f"rule {alert}: {key}")
            need(rule.get("labels", {}).get("severity") in {"info", "warning", "critical"},
                 f"rule {alert}: severity")
            need(expr_balanced(rule.get("expr", "")), f"rule {alert}: unbalanced brackets")
            for metric in re.findall(r"chimpsync_\w+", rule.get("expr", "")):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                need(base in exported, f"rule {alert}: {metric} is not a metric chimpsync exports")


def expr_balanced(expr):
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for ch in expr:
        if ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            if depth[closing[ch]] < 0:
                return False
    return all(v == 0 for v in depth.values())


if __name__ == "__main__":
    main(*sys.argv[1:4])
    for p in problems:
        print(f"PROBLEM {p}")
    if problems:
        sys.exit(1)
    print("manifests keep their promises")

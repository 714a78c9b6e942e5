"""Checks what deploy/ promises beyond schema validity (docs/operations.md relies on it).

Usage: check-manifests.py OVERLAY.yaml COMPONENTS.yaml RULES.yaml RULES_TESTS.yaml CRATES_DIR OPERATIONS_MD
Reads the rendered example overlay, the same overlay rendered with every component of
deploy/k8s/components, the PrometheusRule and its promtool unit tests, the metric names the
shipped crates export (exported_metrics.py) and the runbook's headings; exits non-zero naming
every broken promise.
"""

import re
import sys

import yaml

from exported_metrics import exported, problems_in_query

SHUTDOWN_DEADLINE_DEFAULT = 20
RUNBOOK_BASE = "https://github.com/chimpsync/chimpsync/blob/main/docs/operations.md#"
AGGREGATIONS = r"sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values"

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


def env_of(container, configmaps):
    """The container's environment: envFrom ConfigMaps first, `env` entries over them."""
    env = {}
    for ef in container.get("envFrom", []):
        ref = ef.get("configMapRef", {}).get("name")
        for k, v in configmaps.get(ref, {}).items():
            env[k] = {"name": k, "value": v}
    env.update({e["name"]: e for e in container.get("env", [])})
    return env


def anchors(markdown):
    """GitHub's anchors for the document's headings."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def main(rendered, components, rules, rule_tests, crates_dir, operations_md):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ["Deployment", "Job", "CronJob", "ConfigMap", "Service",
                 "PodDisruptionBudget", "ServiceAccount", "Namespace", "NetworkPolicy"]:
        need(kind in by_kind, f"no {kind} rendered")
    # The real Secret is made by hand or a secret manager; an apply must never replace it.
    need("Secret" not in by_kind, "the example overlay renders a Secret (it would replace the real one)")
    if problems:
        return
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind["ConfigMap"]}

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
            env = env_of(c, configmaps)
            need(env.get("CHIMPSYNC_CONFIG", {}).get("value") == "/etc/chimpsync/chimpsync.toml",
                 f"{name}: CHIMPSYNC_CONFIG")
            need(any(m["mountPath"] == "/etc/chimpsync" for m in c.get("volumeMounts", [])),
                 f"{name}: mapping file mounted")
            need("DATABASE_URL" in env, f"{name}: DATABASE_URL")

    deployment = by_kind["Deployment"][0]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = env_of(container, configmaps)
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
    # `run --once` exits 6 when it leaves rows parked or retrying: a retry would hide that.
    fail_on = [r for r in cron["spec"]["jobTemplate"]["spec"].get("podFailurePolicy", {}).get("rules", [])
               if r.get("action") == "FailJob"
               and 6 in r.get("onExitCodes", {}).get("values", [])
               and r.get("onExitCodes", {}).get("operator") == "In"]
    need(fail_on, "CronJob: exit 6 (partly done) fails the Job without a retry (podFailurePolicy)")
    # One environment for both: the settings come from the same ConfigMap, and neither names a
    # setting of its own (only the credentials, from the Secret).
    for name, c in [("Deployment", container), ("CronJob", cron_container)]:
        refs = [ef.get("configMapRef", {}).get("name") for ef in c.get("envFrom", [])]
        need(len(refs) == 1 and refs[0] in configmaps and refs[0].startswith("chimpsync-env"),
             f"{name}: its settings come from the ConfigMap chimpsync-env (envFrom)")
        need(all("valueFrom" in e for e in c.get("env", [])),
             f"{name}: no setting of its own beside chimpsync-env (only Secret references)")
    need([ef for ef in container.get("envFrom", [])] == [ef for ef in cron_container.get("envFrom", [])],
         "Deployment and CronJob share one environment")
    need(env_of(container, configmaps).get("CHIMPSYNC_CONCURRENCY")
         == env_of(cron_container, configmaps).get("CHIMPSYNC_CONCURRENCY"),
         "Deployment and CronJob: the same CHIMPSYNC_CONCURRENCY")

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
    need(any("chimpsync.toml" in data for data in configmaps.values()), "ConfigMap: chimpsync.toml")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    need(set(ports) == {"http", "webhooks"} and ports["http"] != ports.get("webhooks"),
         "Deployment: two container ports, `http` and `webhooks`")
    http_port = ports.get("http")
    webhook_port = ports.get("webhooks")
    # Each port is the one the worker listens on (the webhook route alone on its own port).
    for variable, port in [("CHIMPSYNC_HTTP_ADDR", http_port),
                           ("CHIMPSYNC_WEBHOOK_ADDR", webhook_port)]:
        addr = env.get(variable, {}).get("value", "")
        need(addr.rsplit(":", 1)[-1] == str(port),
             f"Deployment: {variable} ({addr!r}) listens on the container port {port}")
    need(all(p.get("targetPort") in ("http", http_port) for p in service["ports"]),
         "Service chimpsync-metrics: forwards to the `http` port only (never the webhook port)")

    # The NetworkPolicy: every chimpsync pod; in, the metrics port from one place and the
    # webhook port from another; out, Postgres, HTTPS, DNS.
    policy = by_kind["NetworkPolicy"][0]["spec"]
    need(policy["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": "chimpsync"},
         "NetworkPolicy: selects every chimpsync pod")
    need(set(policy.get("policyTypes", [])) == {"Ingress", "Egress"},
         "NetworkPolicy: restricts both ingress and egress")
    ingress_ports = [(p.get("port"), p.get("protocol", "TCP"))
                     for r in policy.get("ingress", []) for p in r.get("ports", [])]
    need(all(r.get("ports") for r in policy.get("ingress", [])),
         "NetworkPolicy: every ingress rule names its ports")
    need(all(r.get("from") for r in policy.get("ingress", [])),
         "NetworkPolicy: every ingress rule says where from")
    metrics_port, hook_port = ("http", http_port), ("webhooks", webhook_port)
    need(ingress_ports and all(port in metrics_port + hook_port for port, _ in ingress_ports),
         "NetworkPolicy: ingress to the `http` and `webhooks` ports only")
    for rule in policy.get("ingress", []):
        named = {p.get("port") for p in rule.get("ports", [])}
        need(not (named & set(metrics_port) and named & set(hook_port)),
             "NetworkPolicy: the metrics port and the webhook port are let in by separate rules "
             "(from different places)")
    egress = [(p.get("port"), p.get("protocol", "TCP"))
              for r in policy.get("egress", []) for p in r.get("ports", [])]
    need(all(r.get("ports") for r in policy.get("egress", [])),
         "NetworkPolicy: every egress rule names its ports")
    need(set(egress) == {(5432, "TCP"), (443, "TCP"), (53, "UDP"), (53, "TCP")},
         f"NetworkPolicy: egress to Postgres, HTTPS and DNS only (found {sorted(egress, key=str)})")

    check_components(components, labels, webhook_port)
    check_rules(rules, rule_tests, crates_dir, operations_md)


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_components(components, worker_labels, webhook_port):
    """Every optional component, rendered together on the example overlay."""
    docs = [d for d in yaml.safe_load_all(open(components)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    missing = [k for k in ["ServiceMonitor", "Ingress", "Secret", "Service", "Deployment"] if k not in by_kind]
    need(not missing, f"components: no {', '.join(missing)} rendered")
    if missing:
        return
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}

    # The ServiceMonitor scrapes the metrics Service and nothing else.
    monitor = by_kind["ServiceMonitor"][0]["spec"]
    scraped = [s for s in services.values()
               if selects(monitor["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
    need([s["metadata"]["name"] for s in scraped] == ["chimpsync-metrics"],
         f"ServiceMonitor: selects the Service chimpsync-metrics only (selects {[s['metadata']['name'] for s in scraped]})")
    need(all(e.get("port") == "http" and e.get("path", "/metrics") == "/metrics"
             for e in monitor["endpoints"]), "ServiceMonitor: /metrics on the port named http")

    # The Ingress forwards /webhooks/ and nothing else, to the worker's webhook port.
    for ingress in by_kind["Ingress"]:
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                need(path["path"] == "/webhooks/" and path["pathType"] == "Prefix",
                     f"Ingress: routes {path['path']} ({path['pathType']}); only the prefix /webhooks/ may be exposed")
                backend = path["backend"]["service"]
                svc = services.get(backend["name"])
                need(svc is not None, f"Ingress: no Service {backend['name']}")
                if svc is None:
                    continue
                need(selects(svc["spec"]["selector"], worker_labels),
                     f"Service {backend['name']}: selects the worker pods")
                port = next((p for p in svc["spec"]["ports"]
                             if p.get("name") == backend["port"].get("name")
                             or p["port"] == backend["port"].get("number")), None)
                need(port is not None and port["targetPort"] in ("webhooks", webhook_port),
                     f"Service {backend['name']}: forwards to the worker's `webhooks` port "
                     "(which serves the webhook route alone)")
        need("defaultBackend" not in ingress["spec"], "Ingress: no default backend (other paths 404)")
    # With the Ingress, the route is on: the worker takes its secret from the Secret.
    worker_env = {e["name"]: e for e in by_kind["Deployment"][0]["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    ref = worker_env.get("CHIMPSYNC_WEBHOOK_SECRET", {}).get("valueFrom", {}).get("secretKeyRef", {})
    need(ref.get("name") == "chimpsync" and ref.get("key") == "CHIMPSYNC_WEBHOOK_SECRET",
         "webhooks-ingress: the worker reads CHIMPSYNC_WEBHOOK_SECRET from the Secret chimpsync")



def check_rules(rules, rule_tests, crates_dir, operations_md):
    """The alert rules: well formed, aggregated by namespace, each with a runbook section and a
    unit test that fires it, and only about series the binary exports."""
    series = exported(crates_dir)
    need(len(series) > 5, f"found the metric names in {crates_dir}")
    guide = open(operations_md).read()
    runbook = anchors(guide)
    for link in sorted(set(re.findall(r"\]\(#([^)]+)\)", guide))):
        need(link in runbook, f"docs/operations.md links #{link}, which is no heading of it")
    rule_doc = yaml.safe_load(open(rules))
    need(rule_doc["kind"] == "PrometheusRule", "rules: kind PrometheusRule")
    tests = yaml.safe_load(open(rule_tests))
    fired = {t["alertname"] for case in tests["tests"]
             for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    alerts = {r.get("alert") for g in rule_doc["spec"]["groups"] for r in g["rules"]}
    need("ChimpsyncSchemaMismatch" in alerts, "rules: ChimpsyncSchemaMismatch")
    for group in rule_doc["spec"]["groups"]:
        for rule in group["rules"]:
            alert = rule.get("alert", "?")
            expr = rule.get("expr", "")
            for key in ["alert", "expr", "for", "labels", "annotations"]:
                need(key in rule, f"rule {alert}: {key}")
            need(rule.get("labels", {}).get("severity") in {"info", "warning", "critical"},
                 f"rule {alert}: severity")
            need(expr_balanced(expr), f"rule {alert}: unbalanced brackets")
            for p in problems_in_query(expr, series, f"rule {alert}"):
                problems.append(p)
            # One alert per namespace (one installation), whatever the number of replicas.
            for m in re.finditer(r"\b(%s)\s*(by|without)?\s*(\(([^()]*)\))?\s*\(" % AGGREGATIONS, expr):
                need(m.group(2) == "by" and "namespace" in (m.group(4) or ""),
                     f"rule {alert}: `{m.group(0)}` does not aggregate by (namespace)")
            url = rule.get("annotations", {}).get("runbook_url", "")
            anchor = "alert-" + alert.lower()
            need(url == RUNBOOK_BASE + anchor,
                 f"rule {alert}: runbook_url is {RUNBOOK_BASE + anchor}")
            need(anchor in runbook, f"rule {alert}: docs/operations.md has no section 'Alert: {alert}'")
            need(alert in fired, f"rule {alert}: no unit test in {rule_tests} expects it to fire")


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
    main(*sys.argv[1:7])
    for p in problems:
        print(f"PROBLEM {p}")
    if problems:
        sys.exit(1)
    print("manifests keep their promises")

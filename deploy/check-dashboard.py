"""Checks the Grafana dashboard deploy/grafana/chimpsync.json.

Usage: check-dashboard.py DASHBOARD.json CRATES_DIR [PROMTOOL]
The file parses as a dashboard; every panel query names only series and labels that chimpsync
exports (exported_metrics.py: read from the shipped crates), is scoped to the chosen
installation (namespace="$namespace") and uses the data source variable; the panels cover what
docs/operations.md promises. With PROMTOOL, every query is also parsed by Prometheus' own parser
(`promtool check rules` on the queries as recording rules, Grafana's variables filled in).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

from exported_metrics import exported, problems_in_query

# What an operator looks at first; each must be on some panel.
REQUIRED = {
    "chimpsync_queue_rows": "queue depth by state",
    "chimpsync_queue_oldest_pending_seconds": "oldest pending change",
    "chimpsync_rows_synced_total": "rows synced by result",
    "chimpsync_mailchimp_request_duration_seconds_bucket": "request latency",
    "chimpsync_throttled_total": "throttling",
    "chimpsync_slots_in_use": "slots in use",
    "chimpsync_parked_total": "parked rows",
    "chimpsync_last_synced_timestamp_seconds": "last sync",
}

problems = []


def need(condition, what):
    if not condition:
        problems.append(what)


def panels_of(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def main(path, crates_dir, promtool=None):
    dashboard = json.load(open(path))
    series = exported(crates_dir)
    for key in ["uid", "title", "panels", "schemaVersion", "templating"]:
        need(key in dashboard, f"dashboard: no {key}")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    need(variables.get("datasource", {}).get("type") == "datasource",
         "dashboard: a data source variable `datasource` (no data source uid is hard-coded)")
    ns_query = variables.get("namespace", {}).get("definition", "")
    need(bool(ns_query), "dashboard: a variable `namespace` (one installation at a time)")
    problems.extend(problems_in_query(ns_query, series, "variable namespace"))

    ids = set()
    queries = []
    for p in panels_of(dashboard):
        title = p.get("title", "?")
        need(p.get("id") not in ids, f"panel {title}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        need(all(k in g for k in "xywh") and g.get("x", 0) + g.get("w", 0) <= 24,
             f"panel {title}: gridPos inside the 24 columns")
        if p.get("type") == "row":
            continue
        need(p.get("datasource", {}).get("uid") == "${datasource}",
             f"panel {title}: uses the data source variable")
        need(bool(p.get("targets")), f"panel {title}: no query")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            where = f"panel {title} ({t.get('refId')})"
            need(bool(expr), f"{where}: empty query")
            problems.extend(problems_in_query(expr, series, where))
            for m in re.finditer(r"\bchimpsync_\w+\s*(\{[^}]*\})?", expr):
                need('namespace="$namespace"' in (m.group(1) or ""),
                     f"{where}: {m.group(0)} is not scoped to namespace=\"$namespace\"")
            queries.append((where, expr))

    used = {name for _, e in queries for name in re.findall(r"\bchimpsync_\w+", e)}
    for name, what in REQUIRED.items():
        need(name in used, f"dashboard: no panel shows {what} ({name})")

    if promtool and queries:
        check_syntax(promtool, queries)


def check_syntax(promtool, queries):
    """Prometheus' parser on every query (as recording rules; Grafana's variables filled in)."""
    fill = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": "ns"}
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (_, expr) in enumerate(queries):
        for k, v in fill.items():
            expr = expr.replace(k, v)
        lines += [f"      - record: dashboard:query{i}", f"        expr: {json.dumps(expr)}"]
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "dashboard.rules.yaml")
        open(f, "w").write("\n".join(lines) + "\n")
        r = subprocess.run([promtool, "check", "rules", f], capture_output=True, text=True)
        need(r.returncode == 0, f"promtool cannot parse a dashboard query:\n{r.stdout}{r.stderr}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
    for p in problems:
        print(f"PROBLEM {p}")
    if problems:
        sys.exit(1)
    print("the dashboard shows only series chimpsync exports")

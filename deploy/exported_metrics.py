"""The Prometheus series chimpsync exports, read from its Rust sources.

Used by check-manifests.py (alert rules) and check-dashboard.py (Grafana panels), so that
neither can name a series the binary does not have. A metric counts as exported when the
shipped crates record it (`counter!`, `gauge!`, `histogram!`) or describe it (`describe_*!`);
a histogram also exports `_bucket`, `_sum` and `_count`.
"""

import os
import re

# The crates of the shipped binary; the emulator, the demo, the bench and the tests export nothing
# chimpsync's operators scrape.
SHIPPED_CRATES = ["chimpsync", "worker", "store", "mailchimp", "secrets"]

# Labels Prometheus itself puts on every series of a target (Kubernetes service discovery and the
# Prometheus Operator), and `le` of histogram buckets.
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "endpoint", "container", "le"}

MACRO = re.compile(
    r'\b(describe_)?(counter|gauge|histogram)!\(\s*"(chimpsync_\w+)"((?:\s*,\s*"\w+"\s*=>\s*[^,)]+)*)')
LABEL = re.compile(r'"(\w+)"\s*=>')


def exported(crates_dir):
    """{series name: set of label names}, histogram series included."""
    kinds = {}
    labels = {}
    for crate in SHIPPED_CRATES:
        for dirpath, _, files in os.walk(os.path.join(crates_dir, crate, "src")):
            for f in files:
                if not f.endswith(".rs"):
                    continue
                text = open(os.path.join(dirpath, f)).read()
                for _, kind, name, label_part in MACRO.findall(text):
                    kinds[name] = kind
                    labels.setdefault(name, set()).update(LABEL.findall(label_part))
    series = {}
    for name, kind in kinds.items():
        series[name] = labels[name]
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                series[name + suffix] = labels[name]
    return series


SELECTOR = re.compile(r"\b(chimpsync_\w+)\s*(\{([^}]*)\})?")


def problems_in_query(expr, series, where):
    """What in `expr` names a series or a label chimpsync does not export."""
    out = []
    for name, _, matchers in SELECTOR.findall(expr):
        if name not in series:
            out.append(f"{where}: {name} is not a series chimpsync exports")
            continue
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
            if label not in series[name] and label not in TARGET_LABELS:
                out.append(f"{where}: {name} has no label {label}")
    return out

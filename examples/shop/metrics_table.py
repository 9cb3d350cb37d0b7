"""The demo's metrics: a service's duration histograms, as its console exporter printed them, turned
into a small table (count, p50, p99) per histogram and key attributes.

The services run with ``OTEL_METRICS_EXPORTER=console``: the SDK prints one JSON document when the
process exits. Percentiles are estimated from the histogram's buckets, as a metrics backend does
(linear within a bucket, bounded by the recorded min and max).
"""

# Attributes that name a row, per histogram; the other attributes are summed over.
ROW_KEYS = {
    "http.server.request.duration": (
        "http.request.method",
        "http.route",
        "http.response.status_code",
    ),
    "http.client.request.duration": (
        "http.request.method",
        "server.address",
        "http.response.status_code",
    ),
    "db.client.operation.duration": ("db.operation.name",),
}


def points(document: dict) -> list:
    """``(histogram name, row label, point)`` of each duration histogram point of ``document``."""
    found = []
    for resource in document.get("resource_metrics", ()):
        for scope in resource.get("scope_metrics", ()):
            for metric in scope.get("metrics", ()):
                keys = ROW_KEYS.get(metric["name"])
                if keys is None:
                    continue
                for point in metric["data"]["data_points"]:
                    attributes = point["attributes"]
                    label = " ".join(str(attributes[key]) for key in keys if key in attributes)
                    found.append((metric["name"], label, point))
    return found


def quantile(point: dict, q: float) -> float:
    """The ``q`` quantile (seconds) of a histogram point, estimated from its buckets."""
    counts, bounds = point["bucket_counts"], point["explicit_bounds"]
    low_limit, high_limit = point["min"], point["max"]
    rank = q * point["count"]
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = max(low_limit, bounds[index - 1] if index else low_limit)
            high = min(high_limit, bounds[index] if index < len(bounds) else high_limit)
            return low + (high - low) * (rank - seen) / count
        seen += count
    return high_limit


def table(document: dict) -> str:
    """The histograms of one service as text, or a line saying there were none."""
    rows = [
        (name, label, point["count"], quantile(point, 0.5), quantile(point, 0.99))
        for name, label, point in points(document)
    ]
    if not rows:
        return "  (no measurements)"
    rows.sort()
    width = max(len(f"{name}  {label}") for name, label, *_ in rows)
    lines = [f"  {'histogram':<{width}}  {'count':>5}  {'p50':>9}  {'p99':>9}"]
    for name, label, count, p50, p99 in rows:
        row = f"{name}  {label}"
        lines.append(f"  {row:<{width}}  {count:>5}  {p50 * 1e3:>6.2f} ms  {p99 * 1e3:>6.2f} ms")
    return "\n".join(lines)

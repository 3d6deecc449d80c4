"""GET /metrics: admin only, Prometheus text format 0.0.4 that a strict parser accepts, and numbers that
move: sandboxes by state, create and exec histograms, requests by route and code, and each live
sandbox's cgroup CPU and memory (which also fill the Sandbox `usage` of GET /v1/sandboxes/{id})."""
import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
HELP = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} and {family: type}; asserts on anything malformed."""
    assert text.endswith("\n")
    types, samples = {}, {}
    for line in text.splitlines():
        if HELP.match(line):
            continue
        m = TYPE.match(line)
        if m:
            assert m.group(1) not in types, f"TYPE twice: {line}"
            types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, raw_labels, raw_value = m.groups()
        labels = {}
        rest = raw_labels or ""
        while rest:
            lm = LABEL.match(rest)
            assert lm, f"bad labels: {line!r}"
            value = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), lm.group(2))
            assert lm.group(1) not in labels
            labels[lm.group(1)] = value
            rest = rest[lm.end():]
        value = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(raw_value)
        if value is None:
            value = float(raw_value)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
                family = name[: -len(suffix)]
        assert family in types, f"sample before its TYPE: {line}"
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"series twice: {line}"
        samples[key] = value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def series(samples, name):
    return {k[1]: v for k, v in samples.items() if k[0] == name}


def scrape(admin):
    r = admin.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain")
    return parse_metrics(r.body.decode())


def test_metrics_need_an_admin_key(daemon, new_key):
    r = daemon.client(None).get("/metrics")
    assert r.status == 401 and r.error_code == "unauthenticated"
    r = daemon.client(new_key(tenant="metrics-tenant")["secret"]).get("/metrics")
    assert r.status == 403 and r.error_code == "forbidden"


def test_metrics_parse_and_have_every_family(admin):
    samples, types = scrape(admin)
    assert types["airlock_sandboxes"] == "gauge"
    assert types["airlock_sandbox_create_seconds"] == "histogram"
    assert types["airlock_exec_seconds"] == "histogram"
    assert types["airlock_http_requests_total"] == "counter"
    assert types["airlock_sandbox_cpu_seconds_total"] == "counter"
    assert types["airlock_sandbox_memory_bytes"] == "gauge"
    assert types["airlock_sandbox_memory_peak_bytes"] == "gauge"
    assert types["airlock_agent_protocol_errors_total"] == "counter"
    assert types["process_resident_memory_bytes"] == "gauge"
    assert types["process_cpu_seconds_total"] == "counter"
    for state in ("starting", "running", "stopped", "terminated"):
        assert value(samples, "airlock_sandboxes", state=state) is not None
    assert value(samples, "process_resident_memory_bytes") > 1 << 20
    # Histogram buckets are cumulative and end with +Inf == count.
    for h in ("airlock_sandbox_create_seconds", "airlock_exec_seconds"):
        buckets = sorted(((float(dict(k)["le"]), v) for k, v in series(samples, h + "_bucket").items()))
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and buckets[-1][0] == math.inf
        assert buckets[-1][1] == value(samples, h + "_count")


def test_numbers_move_after_creating_and_running(admin, sandboxes):
    before, _ = scrape(admin)
    sid = sandboxes.create(admin, {"memory_mb": 256}).json["sandbox_id"]
    r = admin.post(f"/v1/sandboxes/{sid}/commands/run",
                   json={"cmd": "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; head -c 20000000 /dev/zero > /tmp/z; echo done"})
    assert r.status == 200 and r.json["stdout"] == "done\n", r
    after, _ = scrape(admin)

    assert value(after, "airlock_sandbox_create_seconds_count") == value(before, "airlock_sandbox_create_seconds_count") + 1
    assert value(after, "airlock_exec_seconds_count") == value(before, "airlock_exec_seconds_count") + 1
    assert value(after, "airlock_exec_seconds_sum") > value(before, "airlock_exec_seconds_sum")
    created = value(after, "airlock_http_requests_total", route="/v1/sandboxes", code="201")
    assert created == (value(before, "airlock_http_requests_total", route="/v1/sandboxes", code="201") or 0) + 1
    assert value(after, "airlock_sandboxes", state="running") >= 1

    cpu = value(after, "airlock_sandbox_cpu_seconds_total", sandbox_id=sid, tenant="default")
    memory = value(after, "airlock_sandbox_memory_bytes", sandbox_id=sid, tenant="default")
    peak = value(after, "airlock_sandbox_memory_peak_bytes", sandbox_id=sid, tenant="default")
    assert cpu is not None and cpu > 0
    assert memory is not None and memory > 0  # /tmp is the sandbox's tmpfs: charged to its cgroup
    assert peak >= memory

    usage = admin.get(f"/v1/sandboxes/{sid}").json["usage"]
    assert usage["cpu_seconds"] > 0 and usage["memory_bytes"] > 0
    assert usage["memory_peak_bytes"] >= usage["memory_bytes"] and usage["pids"] >= 1

    assert admin.delete(f"/v1/sandboxes/{sid}", timeout=60).status == 200
    gone, _ = scrape(admin)
    assert value(gone, "airlock_sandbox_cpu_seconds_total", sandbox_id=sid, tenant="default") is None
    assert value(gone, "airlock_sandboxes", state="terminated") == value(after, "airlock_sandboxes", state="terminated") + 1
    ended = admin.get(f"/v1/sandboxes/{sid}").json["usage"]
    assert ended["memory_bytes"] == 0  # the contract: 0 once ended


def test_errors_and_unmatched_requests_are_counted(admin):
    before, _ = scrape(admin)
    admin.get("/v1/no-such-route")
    admin.get("/v1/sandboxes/sb-0000000000000000")
    after, _ = scrape(admin)
    key = dict(route="unmatched", code="404")
    assert value(after, "airlock_http_requests_total", **key) == (value(before, "airlock_http_requests_total", **key) or 0) + 1
    key = dict(route="/v1/sandboxes/{sandbox_id}", code="404")
    assert value(after, "airlock_http_requests_total", **key) == (value(before, "airlock_http_requests_total", **key) or 0) + 1

#!/usr/bin/env python3
"""Cost per million accepted events, before and after issue 15, from measured usage.

    python3 benches/cost.py            # prints the table recorded in BENCHMARKS.md §7

Usage per event is what `postflow bench storm` measured on the AWS limits model (DynamoDB write/read
units from item sizes by DynamoDB's rules, Kinesis records and bytes), "before" with the previous
release's binary and "after" with this one (the commands are in BENCHMARKS.md §6). The per-event
figures the bench prints are per event *sent*; they are divided by the share answered 200 here.

Lambda duration cannot be measured on AWS from this machine. It is computed from the sequential AWS
calls each request makes (counted by the round-trip tests) times typical in-region latencies
(assumptions below), plus the CPU of the save pipeline, billed per started millisecond at the
template's 256 MB on arm64. The aggregation's invocations per event follow from the event-source
mapping: one invocation per shard and batching window that has records.
"""

import math

# List prices, us-east-1, as published by AWS in 2025 (not re-checked from this machine: it has no
# internet access). Monthly free tiers and fixed costs (stream-hours, shard-hours) are left out.
PRICES = {
    "ddb_write_per_million": 0.625,   # DynamoDB on-demand, per million write request units
    "ddb_read_per_million": 0.125,    # per million read request units
    "kinesis_in_per_gb": 0.08,        # Kinesis on-demand, data ingested (each record rounded up to 1 KB)
    "kinesis_out_per_gb": 0.04,       # data retrieved (the aggregation's event-source mapping)
    "lambda_per_million": 0.20,       # Lambda requests
    "lambda_gb_second": 0.0000133334, # arm64 duration
    "apigw_per_million": 1.00,        # HTTP API requests (first 300 million a month)
}
MEMORY_GB = 0.25

# Assumed in-region latencies (ms) and the save pipeline's CPU on a 256 MB Lambda (the bench's 50 µs
# on a full core, times ~6 for the fraction of a vCPU a 256 MB function gets).
LATENCY_MS = {"put": 5.0, "update": 5.0, "transact": 12.0, "put_records": 15.0, "read": 5.0}
CPU_MS = 0.3

# save-event's sequential calls per request (BENCHMARKS.md §2; warm Lambda, known group).
SAVE_CALLS = {
    "before_error": ["transact", "put_records", "update"],
    "before_transaction": ["put", "put_records", "update"],
    "after": ["put", "put_records"],
}

# Measured per event sent (bench storm), and the share of events answered 200.
SCENARIOS = [
    # name, design, bench flags, wcu, rcu, kinesis bytes, share answered 200, events/s, kind
    ("errors over 1,000 groups (10 events each)", "before", "--rate 100 --secs 100 --groups 1000", 6.10, 0.15, 5089, 0.95, 100, "error"),
    ("errors over 1,000 groups (10 events each)", "after", "--rate 100 --secs 100 --groups 1000", 4.10, 2.30, 5387, 1.0, 100, "error"),
    ("one-group storm", "before", "--rate 50 --secs 20 --groups 1 (the most it absorbs: ~67/s)", 5.02, 0.00, 5345, 1.0, 50, "error"),
    ("one-group storm", "after", "--rate 10000 --secs 5 --groups 1", 2.01, 0.01, 5377, 1.0, 10000, "error"),
    ("transactions", "before", "--rate 10000 --secs 5 --transactions", 2.00, 0.00, 3182, 1.0, 10000, "transaction"),
    ("transactions", "after", "--rate 10000 --secs 5 --transactions", 2.00, 0.00, 3182, 1.0, 10000, "transaction"),
]
SHARDS = 64


def billed_ms(calls):
    return math.ceil(sum(LATENCY_MS[c] for c in calls) + CPU_MS)


def aggregation(events_per_sec):
    """Invocations per event and billed ms per invocation of aggregate-events (1 s window, 64 shards)."""
    per_batch = max(events_per_sec / SHARDS, 1.0)
    invocations_per_event = min(SHARDS, events_per_sec) / events_per_sec
    claim_waves = math.ceil(per_batch / 32)  # claims run 32 at a time
    ms = claim_waves * LATENCY_MS["update"] + LATENCY_MS["read"] + LATENCY_MS["put"] + CPU_MS
    return invocations_per_event, math.ceil(ms)


def cost(design, wcu, rcu, nbytes, share, rate, kind):
    p = PRICES
    per = 1e6 / share  # events sent per million accepted
    nbytes = nbytes / share  # per accepted event
    kib = math.ceil(nbytes / 1024)
    out = {
        "DynamoDB": (wcu * p["ddb_write_per_million"] + rcu * p["ddb_read_per_million"]) * per / 1e6,
        "Kinesis": kib * 1e6 / 2**20 * p["kinesis_in_per_gb"],
    }
    calls = SAVE_CALLS["after"] if design == "after" else SAVE_CALLS[f"before_{kind}"]
    ms = billed_ms(calls)
    lam_req = per * p["lambda_per_million"] / 1e6
    lam_gbs = per * ms / 1000 * MEMORY_GB * p["lambda_gb_second"]
    if design == "after":
        out["Kinesis"] += nbytes * 1e6 / 2**30 * p["kinesis_out_per_gb"]
        inv, agg_ms = aggregation(rate)
        lam_req += 1e6 * inv * p["lambda_per_million"] / 1e6
        lam_gbs += 1e6 * inv * agg_ms / 1000 * MEMORY_GB * p["lambda_gb_second"]
    out["Lambda"] = lam_req + lam_gbs
    out["API Gateway"] = per * p["apigw_per_million"] / 1e6
    out["total"] = sum(out.values())
    return out, ms


def main():
    print("Cost per million accepted events (USD, us-east-1 list prices of 2025; see benches/cost.py)")
    print()
    cols = ["DynamoDB", "Kinesis", "Lambda", "API Gateway", "total"]
    print("| scenario | design | measured with `bench storm` | WCU / RCU per event | save-event billed ms | "
          + " | ".join(cols) + " |")
    print("|" + "---|" * (5 + len(cols)))
    for name, design, flags, wcu, rcu, nbytes, share, rate, kind in SCENARIOS:
        c, ms = cost(design, wcu, rcu, nbytes, share, rate, kind)
        print(f"| {name} | {design} | `{flags}` | {wcu / share:.2f} / {rcu / share:.2f} | {ms} | "
              + " | ".join(f"{c[k]:.2f}" for k in cols) + " |")
    print()
    print("Assumed latencies (ms):", LATENCY_MS, "; save pipeline CPU:", CPU_MS, "ms; memory:", MEMORY_GB, "GB")


if __name__ == "__main__":
    main()

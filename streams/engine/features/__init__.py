"""Rolling behavioural features: aggregations over time buckets, windows, per-customer state."""

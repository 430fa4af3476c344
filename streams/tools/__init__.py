"""Never imported by a worker: load generator, producer, demo, Prometheus scrape helpers."""

"""Faust wiring only: the topology (``topology.py``), the ingest and customer stages, timers,
envelopes, the state codec, the worker entry point, and every Faust internal we touch
(``faust_compat.py``)."""

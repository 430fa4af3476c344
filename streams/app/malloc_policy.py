"""glibc's allocator in the worker: no fastbins.

glibc keeps freed blocks of up to 160 bytes in *fastbins* and merges them all
(``malloc_consolidate``) whenever a block of 1,024 bytes or more is asked for while any are there.
The worker asks for one per tag change: orjson.dumps starts from a 1 KiB buffer (the tag topic's
record, ``streams/io/tag_topic.py``). Between two changes the C code around it (aiokafka's
buffers, hiredis, orjson's own) frees small blocks, so every change paid for a merge: in a py-spy
``--native`` profile of the 1,000-selective-tag worker (``benchmarks/profile_worker.py``)
orjson.dumps spent 1.2 s of 200,000 events inside malloc; with the fastbins off, 0.01 s
(benchmarks/RULES.md). ``mallopt(M_MXFAST, 0)`` turns them off for every block freed from then
on; ``TAGSTREAM_ENGINE__MALLOC_FASTBINS=true`` keeps glibc's default. Elsewhere than glibc
(musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

M_MXFAST = 1
"""glibc's mallopt parameter: the largest block size kept in fastbins (0: none)."""


def install(fastbins: bool) -> bool:
    """Turns glibc's fastbins off unless ``fastbins``; True when it did."""
    if fastbins or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_MXFAST, 0) != 1:
        log.warning("mallopt(M_MXFAST, 0) refused: glibc's fastbins stay on")
        return False
    return True

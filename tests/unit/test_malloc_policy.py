"""glibc's fastbins off in the worker (streams/app/malloc_policy.py, TAGSTREAM_ENGINE__MALLOC_FASTBINS)."""

from __future__ import annotations

import subprocess
import sys

from streams.settings import EngineSettings

PROBE = """
import ctypes, gc, sys
from streams.app import malloc_policy

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
libc.mallinfo2.restype = MallInfo2
installed = malloc_policy.install(sys.argv[1] == "true")
gc.disable()


def churn():
    blocks = [libc.malloc(32) for _ in range(1000)]
    for b in blocks[::2]:  # every other one: no two freed blocks adjacent, nothing to coalesce with
        libc.free(b)
    return libc.mallinfo2().fsmblks  # bytes in freed fastbin blocks


# A malloc of 1 KiB or more merges the fastbins (what the policy is about). The first rounds let the
# interpreter grow what the loop needs (its memory pools), so the last one asks for nothing that
# large between the frees and the count.
counts = [churn() for _ in range(5)]
print(installed, counts[-1])
"""


def probe(fastbins: bool) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, "true" if fastbins else "false"], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], int(out[1])


def test_the_worker_turns_glibcs_fastbins_off_by_default() -> None:
    assert EngineSettings().malloc_fastbins is False
    installed, parked = probe(fastbins=False)
    assert installed == "True" and parked == 0


def test_malloc_fastbins_true_keeps_them() -> None:
    installed, parked = probe(fastbins=True)
    assert installed == "False" and parked > 0

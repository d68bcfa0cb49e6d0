"""Suite-wide settings: small models run fastest single-threaded on a 2-core CI machine.

Also puts tests/ on sys.path so test files can share builders from the ``helpers`` package
(pytest's default import mode already does this; being explicit keeps other modes working).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

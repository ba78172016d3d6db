"""Corpus → model: vocabulary, network, data pipeline, training, model folders and evaluation.

Every submodule needs TensorFlow, so importing this package imports it, once, quietly: on a
machine without a GPU, TensorFlow 2.21 writes start-up lines that no setting turns off (absl
writes everything logged before ``absl::InitializeLog`` to stderr, ``TF_CPP_MIN_LOG_LEVEL``
included: ``cudart_stub.cc ... Could not find cuda drivers``, oneDNN and CPU-feature notices,
``failed call to cuInit``). A CPU-only machine is a supported setup, not an error, so the import
and the first device probe run with stderr captured, and every captured line that is not one of
those known notices is written back: a real error still reaches the user. A user who sets
``TF_CPP_MIN_LOG_LEVEL`` themselves gets TensorFlow's output untouched; ``-v`` keeps absl's Python
log (TensorFlow's retracing warnings and the like).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|^[IWE]\d{4} [\d:. ]+\d+ (?:port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_executor|cuda_dnn|cuda_fft|cuda_blas)\.cc:\d+\] "
    r"(?:oneDNN custom operations are on|Could not find cuda drivers|This TensorFlow binary is optimized"
    r"|failed call to cuInit|Unable to register cu)"
    r"|^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
)


@contextlib.contextmanager
def _known_notices_dropped() -> Iterator[None]:
    """fd 2 captured for the block; afterwards every captured line but the known notices is written back."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (a detached daemon): nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines() if not _NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe for GPUs without the start-up notices (see the module docstring)."""
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return  # already imported, or the user chose TensorFlow's own logging
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # after start-up: errors only (not tf.data teardown warnings)
    with _known_notices_dropped():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # initialises CUDA: "failed call to cuInit" comes here
    if not logging.getLogger("botkit").isEnabledFor(logging.INFO):
        logging.getLogger("absl").setLevel(logging.ERROR)


_import_tensorflow_quietly()

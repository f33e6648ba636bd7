"""The one place that imports Keras (and with it TensorFlow), quietly.

TensorFlow prints oneDNN, CUDA-stub and CPU-feature lines straight to file
descriptor 2 while it imports, whatever the environment says. Pointing fd 2 at
/dev/null for the duration of the import silences them and keeps oneDNN on.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_fd2():
    """Send what native code writes to file descriptor 2 to /dev/null for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_keras_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_fd2():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_logical_devices()  # device set-up (cuInit and friends) logs here too
    return keras


keras = _import_keras_quietly()

"""Corpus → model: vocabulary, network, data pipeline, training, weights folders and evaluation.

Submodules import TensorFlow/Keras where they need it. TensorFlow's runtime log lines (CUDA
probing on a CPU-only machine, tf.data generator teardown) are silenced unless the user set
``TF_CPP_MIN_LOG_LEVEL`` themselves: a CPU-only machine is a supported setup, not an error, and
botkit's own messages say what matters.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

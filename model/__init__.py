"""Recognition: tokenizer, network, preprocessing, decoding, inference, and the training code."""

import os

# OpenMP threads that spin while waiting lose badly whenever another process wants the same
# cores (a desktop always has one): measured here with 2 threads on 2 busy cores, training ran at
# 6 samples/s spinning and 21 passive.  Set before torch loads OpenMP; a user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

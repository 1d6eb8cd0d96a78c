"""Session-wide test settings.

The suite runs under pytest-xdist with one worker per core; letting each worker also use
several intra-op threads oversubscribes the machine and makes tiny-tensor tests ~10-50x
slower, so each test process uses one thread.
"""

import torch

torch.set_num_threads(1)

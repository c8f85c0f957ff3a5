"""The one place that measures: accuracy, sparsity (counted zeros), counts, bytes, MACs, latency."""

from .accuracy import Evaluation, evaluate, evaluate_batches, exact_float32
from .counts import Counts, count, dense_bytes, sparse_bytes, weight_density
from .latency import RUNTIMES, Latency, check_runtime, check_threads, forward_runner, latencies, latency
from .macs import Macs, macs

__all__ = ["RUNTIMES", "Counts", "Evaluation", "Latency", "Macs", "check_runtime", "check_threads", "count",
           "dense_bytes", "evaluate", "evaluate_batches", "exact_float32", "forward_runner", "latencies",
           "latency", "macs", "sparse_bytes", "weight_density"]

"""Run logging: JSONL metrics (plus optional TensorBoard/W&B/MLflow), a progress display, an HTML report.

`rlvr.logging.report.write_report` is imported from its module (it pulls in matplotlib).
"""

from rlvr.logging.metrics import MetricsLogger, read_jsonl
from rlvr.logging.progress import Progress

__all__ = ["MetricsLogger", "Progress", "read_jsonl"]

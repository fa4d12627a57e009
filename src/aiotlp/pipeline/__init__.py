"""Assembling a pipeline: the one place where the layers are put together from arguments and the environment.

``processing`` batches in front of any exporter and knows no disk queue; ``durable`` queues encoded requests
on disk in front of an :class:`~aiotlp.OTLPExporter` and knows no processing. This package reads the
switches that join them (``queue_dir=``, ``AIOTLP_QUEUE_DIR``) once, and builds the objects each layer takes:

```python
processor = aiotlp.BatchProcessor(OTLPExporter(...), Signal.TRACES, queue_dir="/var/lib/app/otlp")
```
"""

from ._assemble import BatchProcessor, with_disk_queue

__all__ = ["BatchProcessor", "with_disk_queue"]

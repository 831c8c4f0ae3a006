"""hybrid-router core: router runtime, cost model, decision record, backends and stores.

This package is the Lambda layer and the device runtime alike. It never imports torch.
"""

__version__ = "0.1.0"

"""charzoo: a Keras model zoo of character-level recurrent language models.

Importing `charzoo` is cheap: TensorFlow and Keras load on first use of the
functions below, so `charzoo --help` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from charzoo.errors import CharzooError

__version__ = "0.1.0"
__all__ = ["CharzooError", "__version__", "load", "pull", "push", "train", "finetune", "sample_text", "evaluate"]

if TYPE_CHECKING:  # pragma: no cover
    from charzoo.evaluation import evaluate
    from charzoo.finetuning import finetune
    from charzoo.hub import pull, push
    from charzoo.sampling import sample_text
    from charzoo.training import train
    from charzoo.zoo import load

_LAZY = {
    "load": "charzoo.zoo",
    "pull": "charzoo.hub",
    "push": "charzoo.hub",
    "train": "charzoo.training",
    "finetune": "charzoo.finetuning",
    "sample_text": "charzoo.sampling",
    "evaluate": "charzoo.evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'charzoo' has no attribute {name!r}")

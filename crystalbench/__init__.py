"""crystalbench: a plugin-based benchmark harness for ML on crystal structures.

What a plugin author imports::

    from crystalbench import hookimpl, ModelSpec, TaskSpec, DescriptorSpec, Dataset
"""

from .harness.dataset import Dataset, structure_key
from .harness.errors import BadInputError, CrystalbenchError, DataUnavailableError
from .harness.hookspecs import hookimpl
from .harness.specs import DescriptorSpec, Model, ModelContext, ModelSpec, SplitIds, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "hookimpl",
    "Dataset",
    "structure_key",
    "Model",
    "ModelContext",
    "ModelSpec",
    "TaskSpec",
    "DescriptorSpec",
    "SplitIds",
    "CrystalbenchError",
    "DataUnavailableError",
    "BadInputError",
    "__version__",
]

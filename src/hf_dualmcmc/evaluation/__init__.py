"""Evaluation suite: the paper's metrics, figures and tables on any exported :class:`~hf_dualmcmc.DualMCMCPipeline`
(one command: ``scripts/evaluate.py``, see ``docs/EVALUATION.md``). The public names of each module's ``__all__``."""

from . import analysis, domain, fid, frechet, images, model_index, ood
from .analysis import *  # noqa: F403
from .domain import *  # noqa: F403
from .fid import *  # noqa: F403
from .frechet import *  # noqa: F403
from .images import *  # noqa: F403
from .model_index import *  # noqa: F403
from .ood import *  # noqa: F403

__all__ = []
__all__ += analysis.__all__
__all__ += domain.__all__
__all__ += fid.__all__
__all__ += frechet.__all__
__all__ += images.__all__
__all__ += model_index.__all__
__all__ += ood.__all__

"""Evaluation built in: published results reproduced through the product's own paths.

Four tasks (`sts`, `retrieval`, `analogy`, `wordsim`), each run through the engine in this
process or, with an `HttpBackend`, through a running service's HTTP API. See README "Evaluation".
"""

from .backend import Backend, EngineBackend, Retrieved
from .loaders import DatasetError, load_analogies, load_beir, load_sts, load_word_pairs
from .report import EvalResult
from .tasks import evaluate_analogy, evaluate_retrieval, evaluate_sts, evaluate_wordsim

__all__ = [
    "Backend",
    "DatasetError",
    "EngineBackend",
    "EvalResult",
    "Retrieved",
    "evaluate_analogy",
    "evaluate_retrieval",
    "evaluate_sts",
    "evaluate_wordsim",
    "load_analogies",
    "load_beir",
    "load_sts",
    "load_word_pairs",
]

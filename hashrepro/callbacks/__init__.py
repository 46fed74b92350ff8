"""Callbacks: the retrieval evaluator, the run guard and the codes writer of ``predict``."""

from hashrepro.callbacks.codes_writer import CodesWriter
from hashrepro.callbacks.evaluator import RetrievalEvaluator
from hashrepro.callbacks.guard import DivergenceError, RunGuard

__all__ = ["CodesWriter", "DivergenceError", "RetrievalEvaluator", "RunGuard"]

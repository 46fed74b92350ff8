"""Callbacks: the retrieval evaluator (binarize codes, log mAP at epoch end) and the run guard."""

from hashrepro.callbacks.evaluator import RetrievalEvaluator
from hashrepro.callbacks.guard import DivergenceError, RunGuard

__all__ = ["DivergenceError", "RetrievalEvaluator", "RunGuard"]

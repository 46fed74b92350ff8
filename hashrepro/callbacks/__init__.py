"""Callbacks: the retrieval evaluator that binarizes codes and logs mAP at epoch end."""

from hashrepro.callbacks.evaluator import RetrievalEvaluator

__all__ = ["RetrievalEvaluator"]

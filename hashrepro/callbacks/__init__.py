"""Callbacks: the retrieval evaluator (mAP at epoch end) and the codes writer of ``predict``."""

from hashrepro.callbacks.codes_writer import CodesWriter
from hashrepro.callbacks.evaluator import RetrievalEvaluator

__all__ = ["CodesWriter", "RetrievalEvaluator"]

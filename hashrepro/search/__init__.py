"""``hashrepro search``: encode a query with a trained model and rank a codes file around it."""

from hashrepro.search.command import SearchResult, search_main

__all__ = ["SearchResult", "search_main"]

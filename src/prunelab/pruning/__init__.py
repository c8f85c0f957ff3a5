"""Pruning: pure scores (criteria), pure mask maths (masks), and the named methods that combine them."""

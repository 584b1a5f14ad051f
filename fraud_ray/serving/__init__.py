"""Serving: the decision pipeline (pure) and the Ray Serve graph around it."""

"""Monitoring: how the served model does once labels arrive, whether its inputs drift, and how a
challenger scored in shadow compares, all read from the decision log."""

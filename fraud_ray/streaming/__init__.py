"""Kafka in, decisions out: the ingestion pool that feeds transactions to the Serve graph.

``codec`` turns messages into transactions (or dead letters) and decisions into messages; ``loop``
is one consumer's poll-decide-write-commit cycle with no Ray in it; ``clients`` configures the
Kafka clients; ``pool`` runs loops in Ray actors; ``metrics`` exports their lag and throughput.
"""

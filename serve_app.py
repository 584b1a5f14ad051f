"""`serve run serve_app:graph`: the fraud-ray Serve application, built from the settings.

Settings come from ``configs/default.yaml`` (or ``FRAUD_RAY_CONFIG``) and ``FRAUD_RAY_*`` variables;
the registry must hold a model under ``serving.model_alias`` (``fraud-ray train`` registers one).
"""

from fraud_ray.serving.graph import build_graph
from fraud_ray.settings import load_settings

graph = build_graph(load_settings())

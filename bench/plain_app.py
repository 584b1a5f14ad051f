"""The baseline of bench/serve.py: the serving graph's three steps in one plain FastAPI process.

Same request models, same feature code, same model, same decision and rendering code as the Serve
graph, with no Ray at all: what is left between the two is what Ray Serve costs.
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Response

from fraud_ray.features.online import OnlineFeatures
from fraud_ray.features.state import MemoryState
from fraud_ray.registry import Registry
from fraud_ray.schema import ModelRef, Transaction
from fraud_ray.serving.api import BatchRequest
from fraud_ray.serving.pipeline import DecisionPipeline, ServingModel
from fraud_ray.settings import load_settings


def build_app() -> FastAPI:
    settings = load_settings()
    bundle, version = Registry(settings.mlflow).load(f"@{settings.serving.model_alias}")
    ref = ModelRef(name=version.name, version=str(version.version))
    steps = DecisionPipeline(
        OnlineFeatures(bundle.spec, MemoryState(bundle.spec)),
        ServingModel.for_settings(bundle, ref, bundle.spec, settings),
    )
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/predict/single")
    async def single(transaction: Transaction) -> Response:
        return Response(json.dumps(steps.decide([transaction])[0]), media_type="application/json")

    @app.post("/api/v1/predict/batch")
    async def batch(request: BatchRequest) -> Response:
        body = json.dumps({"decisions": steps.decide(request.transactions)})
        return Response(body, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8100)
    options = parser.parse_args()
    uvicorn.run(build_app(), host="127.0.0.1", port=options.port, log_level="warning")


if __name__ == "__main__":
    main()

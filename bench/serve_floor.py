"""Serve's own floor: the graph's shape with nothing in its steps.

An ingress that answers the same HTTP routes as the graph, passing the request's JSON through
``steps`` echo deployments over by-value handles, as the graph's ingress passes its work. With no
steps it is the cheapest Serve application; with three it costs what four deployments cost before
any feature, model or decision code runs. ``bench/serve.py`` measures it beside the graph, in the
same run, so the graph's figures can be read against what Serve itself takes on this machine.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations inside
Serve's ingress wrapper, as in ``fraud_ray.serving.graph``.
"""

from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.serve.handle import DeploymentHandle

api = FastAPI()


@serve.deployment
class Echo:
    async def __call__(self, payload: Any) -> Any:
        return payload


@serve.deployment
@serve.ingress(api)
class FloorIngress:
    def __init__(self, *steps: DeploymentHandle) -> None:
        self.steps = [step.options(_by_reference=False) for step in steps]

    async def _through(self, request: Request) -> Any:
        payload = await request.json()
        for step in self.steps:
            payload = await step.remote(payload)
        return payload

    @api.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/api/v1/predict/single")
    async def single(self, request: Request) -> Any:
        return await self._through(request)

    @api.post("/api/v1/predict/batch")
    async def batch(self, request: Request) -> Any:
        return await self._through(request)


def floor(steps: int) -> serve.Application:
    """Each replica asks for as few CPUs as the graph's steps do (a deployment's default is one,
    which two cores could not place four times)."""
    cpus = {"num_cpus": 0.1}
    echoes = [Echo.options(name=f"Echo{i}", ray_actor_options=cpus).bind() for i in range(steps)]
    return FloorIngress.options(ray_actor_options=cpus).bind(*echoes)

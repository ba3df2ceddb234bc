"""``/admin/weights``: see, swap and roll back the weights. ``Authorization: Bearer <UMI_ADMIN_TOKEN>``.

Without the token (or with a wrong one): 401. With no UMI_ADMIN_TOKEN configured the admin API
is disabled: 403.
"""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from umi.engines import EngineInfo
from umi.http_errors import HttpError, error_responses
from umi.roleapi import ModelInfo
from umi.service.swap import SwapProgress, SwapReport, WeightsManager
from umi.service.weights import WeightsRef


class WeightsSwapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="a model directory or hub id (full), or a LoRA adapter directory (lora)")
    kind: Literal["full", "lora"] = "full"
    version: str | None = Field(None, min_length=1, description="default: a fingerprint of the weight files")
    name: str | None = Field(None, min_length=1, description="default: the last part of the path")
    strategy: Literal["blue_green", "in_place"] | None = Field(
        None, description="full weights only (default: UMI_SWAP_STRATEGY)"
    )
    engine_url: str | None = Field(None, description="url engine: the server that serves the new weights")
    tokenizer: str | None = Field(None, description="default: the new model directory (full), the current one (lora)")
    drain_timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="default: UMI_DRAIN_TIMEOUT_S")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drain_timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    strategy: Literal["blue_green", "in_place"] | None = Field(
        None, description="full weights only (default: UMI_SWAP_STRATEGY); a fleet swap passes the one it swapped with"
    )


class WeightsStatus(BaseModel):
    role: str
    state: str
    model: ModelInfo | None
    weights: WeightsRef | None
    served_model: str | None
    in_flight: int
    engine: EngineInfo | None
    swap: SwapProgress | None  # the swap in progress
    last_swap: SwapReport | None
    history: list[WeightsRef]  # rollback goes to the last one


_SWAP_ERRORS = error_responses(409, 413, 422, 503)


def admin_router(manager: WeightsManager, token: str | None) -> APIRouter:
    def require_admin(request: Request) -> None:
        if token is None:
            raise HttpError(403, "admin_disabled", "the admin API is disabled: set UMI_ADMIN_TOKEN")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HttpError(
                401, "unauthorized", "send Authorization: Bearer <admin token>", headers={"WWW-Authenticate": "Bearer"}
            )

    router = APIRouter(
        prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=error_responses(401, 403, 500)
    )

    @router.get("/weights", response_model=WeightsStatus, summary="the weights now serving, and the swap state")
    async def get_weights() -> WeightsStatus:
        current = manager.current
        return WeightsStatus(
            role=manager.role,
            state=manager.state(),
            model=current.weights.model_info() if current else None,
            weights=current.weights if current else None,
            served_model=current.served_model if current else None,
            in_flight=current.in_flight if current else 0,
            engine=current.engine.info() if current else None,
            swap=manager.progress,
            last_swap=manager.last_swap,
            history=list(manager.history),
        )

    @router.post(
        "/weights", response_model=SwapReport, responses=_SWAP_ERRORS, summary="swap the weights (blue/green, in place, or LoRA)"
    )
    async def swap_weights(body: WeightsSwapRequest) -> SwapReport:
        return await manager.swap(
            path=body.path,
            kind=body.kind,
            version=body.version,
            name=body.name,
            strategy=body.strategy,
            engine_url=body.engine_url,
            tokenizer=body.tokenizer,
            drain_timeout_s=body.drain_timeout_s,
        )

    @router.post(
        "/weights/rollback", response_model=SwapReport, responses=_SWAP_ERRORS, summary="go back to the previous weights"
    )
    async def rollback(body: RollbackRequest | None = None) -> SwapReport:
        return await manager.rollback(body.drain_timeout_s if body else None, body.strategy if body else None)

    return router

"""The planner role service: ``POST /v1/plan`` -> the thought and the decision (caller, conclusion, give up)."""

from __future__ import annotations

from umi.format import parse_planner
from umi.roleapi import PlanRequest, PlanResponse
from umi.service.entry import serve_functions
from umi.service.roles import ResponseMeta, RoleSpec


def plan_response(generated: str, request: PlanRequest, meta: ResponseMeta) -> PlanResponse:
    out = parse_planner(generated)
    return PlanResponse(thought=out.thought, next=out.next, turn=out.text, **meta.fields())


ROLE = RoleSpec(
    role="planner",
    path="/v1/plan",
    request_model=PlanRequest,
    response_model=PlanResponse,
    build_response=plan_response,
    summary="planner: the thought of the next step and whose turn it is",
)


serve, serve_parser = serve_functions(ROLE)

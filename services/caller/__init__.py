"""The caller role service: ``POST /v1/call`` -> the tool name and its JSON arguments."""

from __future__ import annotations

from umi.format import CallerOutput, parse_caller
from umi.roleapi import CallRequest, CallResponse
from umi.service.entry import serve_functions
from umi.service.roles import ResponseMeta, RoleSpec


def call_fields(out: CallerOutput) -> dict:
    """The parsed call as CallResponse fields (also the ``call`` of the backbone's answer)."""
    return {
        "name": out.name,
        "arguments": out.arguments,
        "arguments_raw": out.arguments_raw,
        "valid": out.valid,
        "hallucinated": out.hallucinated,
        "error": out.error,
        "turn": out.text,
    }


def call_response(generated: str, request: CallRequest, meta: ResponseMeta) -> CallResponse:
    out = parse_caller(generated, [t.Name for t in request.tooldocs()])
    return CallResponse(**call_fields(out), **meta.fields())


ROLE = RoleSpec(
    role="caller",
    path="/v1/call",
    request_model=CallRequest,
    response_model=CallResponse,
    build_response=call_response,
    summary="caller: the API call for the planner's thought",
)


serve, serve_parser = serve_functions(ROLE)

"""The backbone service: the paper's single-model baseline, one model for every role.
``POST /v1/step`` -> the thought and a call, a conclusion, or giving up.
"""

from __future__ import annotations

from services.caller import call_fields
from umi.format import parse_backbone
from umi.roleapi import BackboneRequest, BackboneResponse, CallResponse
from umi.service.entry import serve_functions
from umi.service.roles import ResponseMeta, RoleSpec


def step_response(generated: str, request: BackboneRequest, meta: ResponseMeta) -> BackboneResponse:
    out = parse_backbone(generated, [t.Name for t in request.tooldocs()])
    call = CallResponse(**call_fields(out.call), **meta.fields()) if out.call is not None else None
    return BackboneResponse(thought=out.thought, next=out.next, call=call, answer=out.answer, **meta.fields())


ROLE = RoleSpec(
    role="backbone",
    path="/v1/step",
    request_model=BackboneRequest,
    response_model=BackboneResponse,
    build_response=step_response,
    summary="backbone: one model decides, calls and concludes (the single-LLM baseline)",
)


serve, serve_parser = serve_functions(ROLE)

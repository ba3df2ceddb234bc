"""The summarizer role service: ``POST /v1/summarize`` -> the final answer."""

from __future__ import annotations

from umi.format import parse_summarizer
from umi.roleapi import SummarizeRequest, SummarizeResponse
from umi.service.entry import serve_functions
from umi.service.roles import ResponseMeta, RoleSpec


def summarize_response(generated: str, request: SummarizeRequest, meta: ResponseMeta) -> SummarizeResponse:
    return SummarizeResponse(answer=parse_summarizer(generated).answer, **meta.fields())


ROLE = RoleSpec(
    role="summarizer",
    path="/v1/summarize",
    request_model=SummarizeRequest,
    response_model=SummarizeResponse,
    build_response=summarize_response,
    summary="summarizer: the final answer from the conversation",
)


serve, serve_parser = serve_functions(ROLE)

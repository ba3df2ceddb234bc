"""The trajectory viewer: ``/ui`` on the orchestrator (docs/observability.md).

    GET /ui                                    the viewer: one static page (HTML, CSS, JS; no build
                                               step, nothing from a CDN: it works offline)
    GET /ui/api/chats?status=&q=&offset=&limit=  the chat list (``ChatStore.list_chats``): the
                                               caller's chats (every chat for the admin token),
                                               newest first; ``q`` searches the query and chat id
    GET /ui/api/chats/{chat_id}                the chat document, its trace id and trace link
    GET /ui/api/chats/{chat_id}/prompt/{index} the exact prompt the role model saw at that step:
                                               the role service's ``POST /v1/render`` on the
                                               history before the step

The page reads the chat document and follows ``GET /chat/{chat_id}/events`` (SSE) while a chat
runs. Every data route takes the API's ``Authorization: Bearer <key>`` (the page keeps the key
in the tab's sessionStorage and sends it as that header, never in a URL): without a valid key,
when keys are set, they answer 401 and the page shows nothing. Errors are the API's error body.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from orchestrator.chats import Principal
from orchestrator.models import ChatDoc
from orchestrator.roles import encode_body
from orchestrator.state import ChatState
from orchestrator.store import LIST_LIMIT_MAX, ChatSummary
from umi.http_errors import HttpError, error_responses
from umi.roleapi import RenderResponse
from umi.tracing import with_trace

PAGE = Path(__file__).parent / "static" / "ui.html"
RENDER_TIMEOUT_S = 30.0


class ChatList(BaseModel):
    chats: list[ChatSummary]
    more: bool
    offset: int


class ChatView(BaseModel):
    chat: ChatDoc
    query: str
    trace_id: str | None = None
    trace_url: str | None = None
    """``UMI_TRACE_URL`` with the chat's trace id, when both are known."""


class StepPrompt(BaseModel):
    role: str
    url: str
    """The role service's render endpoint that answered."""
    render: RenderResponse


def ui_router(orch: Callable[[Request], Any], principal: Callable[[Request], Principal]) -> APIRouter:
    """The viewer's routes; ``orch`` and ``principal`` are the app's (``orchestrator.api``)."""
    router = APIRouter(tags=["viewer"])

    @router.get("/ui", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @router.get("/ui/api/chats", response_model=ChatList, responses=error_responses(401, 422, 500, 503))
    async def list_chats(
        request: Request,
        status: str | None = Query(default=None, description="only chats in this status"),
        q: str | None = Query(default=None, max_length=200, description="text in the query or the chat id"),
        offset: int = Query(default=0, ge=0),
        limit: int = Query(default=50, ge=1, le=LIST_LIMIT_MAX),
    ) -> ChatList:
        who = principal(request)
        page = await orch(request).store.list_chats(
            None if who.admin else who.owner, status=status or None, text=q or None, offset=offset, limit=limit
        )
        return ChatList(chats=page.chats, more=page.more, offset=offset)

    @router.get("/ui/api/chats/{chat_id}", response_model=ChatView, responses=error_responses(401, 404, 422, 500, 503))
    async def chat_view(chat_id: str, request: Request) -> ChatView:
        o = orch(request)
        chat = await o.chats.load_visible(chat_id, principal(request))
        trace_id = chat.trace.split("-")[1] if chat.trace.count("-") == 3 else None
        template = o.settings.trace_url
        return ChatView(
            chat=chat.to_doc(), query=chat.request.query, trace_id=trace_id,
            trace_url=template.replace("{trace_id}", trace_id) if template and trace_id else None,
        )  # fmt: skip

    @router.get(
        "/ui/api/chats/{chat_id}/prompt/{index}", response_model=StepPrompt, responses=error_responses(401, 404, 422, 500, 502, 503)
    )
    async def step_prompt(chat_id: str, index: int, request: Request) -> JSONResponse:
        o = orch(request)
        chat = await o.chats.load_visible(chat_id, principal(request))
        if not 0 <= index < len(chat.steps):
            raise HttpError(404, "not_found", f"chat {chat_id} has no step {index}", "index")
        step = chat.steps[index]
        if step.role == "observation" or step.usage is None and not o.settings.single_model:
            raise HttpError(422, "invalid_request", f"step {index} is a {step.role} step: no role model wrote it", "index")
        before = ChatState(chat_id=chat_id, request=chat.request, steps=chat.steps[:index])
        settings = o.settings
        if settings.single_model:
            role, base, tools, thought = "backbone", settings.backbone_url or "", True, None
        else:
            role = step.role
            base = {"planner": settings.planner_url, "caller": settings.caller_url, "summarizer": settings.summarizer_url}[role]
            tools = role != "summarizer"
            thought = (before.steps[-1].turn or "") if role == "caller" and before.steps else None
        body = encode_body(before.tools_json if tools else None, before.history, thought, False)
        url = base.rstrip("/") + "/v1/render"
        try:
            async with httpx.AsyncClient(timeout=RENDER_TIMEOUT_S) as client:
                response = await client.post(url, content=body, headers=dict(with_trace({"content-type": "application/json"})))
        except httpx.HTTPError as exc:
            raise HttpError(503, "unavailable", f"the {role} service at {url} is unreachable: {exc!r}") from None
        if response.status_code != 200:
            raise HttpError(502, "role_service", f"the {role} service answered {response.status_code}: {response.text[:500]}")
        out = StepPrompt(role=role, url=url, render=RenderResponse.model_validate_json(response.content))
        return JSONResponse(out.model_dump(mode="json"))

    return router

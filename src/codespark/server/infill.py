"""llama-server-compatible ``POST /infill`` (what llama.vim and llama.vscode call)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, RootModel

from codespark.engine.engine import Finished
from codespark.engine.fim import ExtraFile, FimRequest
from codespark.server.deps import Caller, State
from codespark.server.protocol import Infill, InfillChunk, InfillRequest, debug_data
from codespark.server.respond import respond
from codespark.services.fim import FimCall

router = APIRouter()


def _final(route: str, result: Finished, content: str) -> Infill:
    t = result.timings
    return Infill(
        content=content,
        model=route,
        stop_type="eos" if result.finish_reason == "stop" else "limit",
        finish_reason=result.finish_reason,
        tokens_predicted=t.completion_tokens,
        tokens_evaluated=t.prompt_tokens,
        tokens_cached=t.cached_tokens,
        timings=t.as_dict(),
    )


def _budget(body: InfillRequest) -> float | None:
    """The router's latency budget: ours, else llama.vim's prompt-time budget, else its predict budget.  A
    warm-up (``n_predict`` 0, llama.vim's ring updates send a 1 ms budget) warms the engine that keystrokes
    get, so it keeps the default budget."""
    if body.n_predict == 0:
        return body.max_latency_ms
    for budget in (body.max_latency_ms, body.t_max_prompt_ms, body.t_max_predict_ms):
        if budget is not None and budget >= 0:
            return budget
    return None


class Fields(RootModel[dict[str, Any]]):
    """llama-server's ``response_fields``: only the named fields, a nested one under its ``a/b`` path."""

    @classmethod
    def pick(cls, payload: BaseModel, paths: list[str]) -> Fields:
        data: dict[str, Any] = payload.model_dump(mode="json")
        out: dict[str, Any] = {}
        for path in paths:
            value: Any = data
            for key in path.split("/"):
                if not isinstance(value, dict) or key not in value:
                    break
                value = value[key]
            else:
                out[path] = value
        return cls(out)


@router.post("/infill", response_model=None)
async def infill(body: InfillRequest, request: Request, state: State, who: Caller) -> Response:
    body.log_unknown("/infill")
    settings = state.settings
    if body.n_predict is None or body.n_predict < 0:
        n_predict = settings.default_fim_max_tokens
    else:
        n_predict = settings.check_max_tokens(body.n_predict, "n_predict")
    fim = FimRequest(
        prefix=body.input_prefix + body.prompt,
        suffix=body.input_suffix,
        extra=tuple(ExtraFile(e.filename, e.text) for e in body.input_extra),
        filename=body.filename,
    )
    answer = await state.fim.complete(
        FimCall(
            fim,
            body.to_sampling_params(n_predict),
            tuple(body.stop),
            body.model,
            caller=who,
            modes=True,
            session=request.headers.get("X-Session") or body.session,
            t_max_predict_ms=body.t_max_predict_ms,
            budget_ms=_budget(body),
            min_indent=body.n_indent,
        )
    )
    route = answer.decision.route

    def final(result: Finished) -> Infill | Fields:
        payload = _final(route, result, result.text)
        if body.debug:
            payload.debug_data = debug_data(answer.context, result.monitor_trail)
        return Fields.pick(payload, body.response_fields) if body.response_fields else payload

    def last(result: Finished) -> list[Infill | Fields]:
        payload = _final(route, result, "")
        return [Fields.pick(payload, body.response_fields) if body.response_fields else payload]

    return await respond(
        request,
        answer.decision,
        answer.events,
        stream=body.stream,
        final=final,
        on_delta=lambda text: InfillChunk(content=text),
        on_finish=last,
    )

"""llama-server-compatible ``POST /infill`` (what llama.vim and llama.vscode call)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

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
            session=request.headers.get("X-Session") or body.session,
            t_max_predict_ms=body.t_max_predict_ms,
            budget_ms=body.max_latency_ms if body.max_latency_ms is not None else body.t_max_predict_ms,
        )
    )
    route = answer.decision.route

    def final(result: Finished) -> Infill:
        payload = _final(route, result, result.text)
        if body.debug:
            payload.debug_data = debug_data(answer.context)
        return payload

    return await respond(
        request,
        answer.decision,
        answer.events,
        stream=body.stream,
        final=final,
        on_delta=lambda text: InfillChunk(content=text),
        on_finish=lambda result: [_final(route, result, "")],
    )

"""llama-server-compatible ``POST /infill`` (what llama.vim and llama.vscode call)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Finished
from codespark.engine.fim import ExtraFile, FimRequest
from codespark.server.generation import route_headers, run_to_end, sse, timing_headers
from codespark.server.protocol import InfillRequest
from codespark.server.routing import check_max_tokens, debug_data, note_unknown_fields, plan_fim, settings_of

router = APIRouter()


def _final(route: str, result: Finished, content: str) -> dict[str, object]:
    t = result.timings
    return {
        "content": content,
        "model": route,
        "stop": True,
        "stop_type": "eos" if result.finish_reason == "stop" else "limit",
        "finish_reason": result.finish_reason,
        "tokens_predicted": t.completion_tokens,
        "tokens_evaluated": t.prompt_tokens,
        "tokens_cached": t.cached_tokens,
        "truncated": False,
        "timings": t.as_dict(),
    }


@router.post("/infill", response_model=None)
async def infill(body: InfillRequest, request: Request) -> Response:
    note_unknown_fields(body, "/infill")
    settings = settings_of(request)
    if body.n_predict is None or body.n_predict < 0:
        n_predict = settings.default_fim_max_tokens
    else:
        n_predict = check_max_tokens(settings, body.n_predict, "n_predict")
    fim = FimRequest(
        prefix=body.input_prefix + body.prompt,
        suffix=body.input_suffix,
        extra=tuple(ExtraFile(e.filename, e.text) for e in body.input_extra),
        filename=body.filename,
    )
    params = SamplingParams(
        max_tokens=n_predict,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        seed=body.seed,
    )
    budget = body.max_latency_ms if body.max_latency_ms is not None else body.t_max_predict_ms
    decision, events = await plan_fim(
        request, body.model, body.session, fim, params, tuple(body.stop), body.t_max_predict_ms, budget
    )
    if body.stream:
        return StreamingResponse(
            sse(
                events,
                lambda text: {"content": text, "stop": False},
                lambda result: [_final(decision.route, result, "")],
                None,
            ),
            media_type="text/event-stream",
            headers={**route_headers(decision), "Cache-Control": "no-cache"},
        )
    result = await run_to_end(request, events)
    if result is None:
        return Response(status_code=499)
    payload = _final(decision.route, result, result.text)
    if body.debug:
        payload["debug_data"] = debug_data(request)
    return JSONResponse(payload, headers=timing_headers(decision, result))

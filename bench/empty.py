"""The per-request floor: a FastAPI POST endpoint that reads the body and answers `{}`.

uvicorn bench.empty:app --port 8100
"""

from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.post("/empty")
async def empty(request: Request) -> Response:
    await request.body()
    return Response(b"{}", media_type="application/json")


@app.get("/ready")
async def ready() -> Response:
    return Response(b"{}", media_type="application/json")

"""The ceiling: a bare FastAPI app with no middleware, no auth and no database.

Served by the same uvicorn settings as Rampart's API (`python -m uvicorn
bench.bare_app:app ...`), so the difference between the two is Rampart's own work: its
middleware, auth, validation, logging, metrics and the Postgres transaction.
The POST parses and validates the same ~1 KB JSON body Rampart's POST gets.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictInt

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[str, StrictInt] = Field(max_length=200)
    context: str | None = Field(None, max_length=2000)


@app.get("/get")
async def get_small() -> dict:
    return {"id": "0b6c3a1e-7a7e-4d8e-9f59-2f1b0f1f6a42", "status": "completed", "score": 72}


@app.post("/post", status_code=202)
async def post_json(data: Payload) -> dict:
    return {"id": str(uuid.uuid4()), "status": "queued", "answers": len(data.answers)}

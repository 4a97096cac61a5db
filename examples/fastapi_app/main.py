"""A FastAPI app that sends its verification emails through envoi.

uvicorn examples.fastapi_app.main:app      # and `envoi worker` beside it
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, EmailStr

from envoi import Envoi


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One Envoi per process: its Redis and database connections are shared by every request.
    app.state.envoi = Envoi()
    try:
        yield
    finally:
        await app.state.envoi.close()


app = FastAPI(lifespan=lifespan)


def get_envoi(request: Request) -> Envoi:
    envoi: Envoi = request.app.state.envoi
    return envoi


EnvoiDep = Annotated[Envoi, Depends(get_envoi)]


class Signup(BaseModel):
    email: EmailStr
    first_name: str


@app.post("/signup", status_code=202)
async def signup(body: Signup, envoi: EnvoiDep) -> dict[str, str]:
    code = f"{secrets.randbelow(10**6):06d}"
    [result] = await envoi.notifications.send_verification_email(
        email=str(body.email), first_name=body.first_name, verification_token=code, locale="en"
    )
    return {"jobId": result.job_id, "mode": result.mode}

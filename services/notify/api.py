"""HTTP entrypoints of notify (thin: parse, authorise, call a handler)."""


from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from services.notify.adapters import UnsafeUrl
from services.notify.domain import SubscriberRequest
from services.notify.handlers import Notify
from shared.auth import Principal, Role
from shared.web import ApiError, Authenticator


class SubscriberCreated(BaseModel):
    subscriber_id: str
    secret: str  # the webhook signing secret, shown once


def build_router(auth: Authenticator, notify: Notify) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["subscribers"])
    Admin = Annotated[Principal, Depends(auth.require(Role.admin))]

    @router.post("/subscribers", status_code=201, response_model=SubscriberCreated)
    async def post_subscriber(request: SubscriberRequest, admin: Admin) -> SubscriberCreated:
        try:
            subscriber = await notify.register(request)
        except UnsafeUrl as exc:
            raise ApiError(422, "unsafe_url", str(exc), "channel.url") from exc
        return SubscriberCreated(subscriber_id=subscriber.subscriber_id, secret=subscriber.secret)

    return router

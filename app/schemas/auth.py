from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import EmailStr, Field

from app.schemas.common import Input, Output

Password = Field(min_length=10, max_length=256)


class RegisterIn(Input):
    email: EmailStr = Field(max_length=320)
    password: str = Password
    name: str = Field(min_length=1, max_length=200)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
            ]
        }
    }


class LoginIn(Input):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(Input):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutIn(Input):
    refresh_token: str | None = Field(default=None, max_length=200)


class PasswordChangeIn(Input):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Password


class TokenOut(Output):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserOut(Output):
    id: uuid.UUID
    email: str
    name: str
    attributes: dict[str, Any]
    created_at: datetime

"""The OpenAI chat-completions request and OpenAI's error body, as pydantic models: requests are
validated with them and the OpenAPI document (:mod:`vpagent.http.contract`) shows them.

Only what vpagent reads is constrained; OpenAI's other fields (``temperature``, a message's
``name``...) are accepted and unused. What JSON Schema cannot say is in the descriptions: the
question is the last user message, which needs exactly one ``image_url`` part holding a base64
data URL of an image, and some text.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class TextPart(BaseModel):
    """Text of a message."""

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    """Where the picture is: vpagent fetches nothing, so a base64 data URL."""

    model_config = ConfigDict(extra="allow")

    url: str = Field(description="data:image/png;base64,... (an http(s) URL is refused).")
    detail: str | None = Field(None, description="OpenAI's; accepted, unused.")


class ImagePart(BaseModel):
    """The picture of a message."""

    type: Literal["image_url"]
    image_url: ImageURL | str


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    """One message; vpagent reads the last one whose role is ``user``."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = Field(
        None, description="Text, or parts: the question's text and exactly one image_url."
    )


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """Every error of the OpenAI routes, in OpenAI's shape."""

    error: OpenAIErrorDetail

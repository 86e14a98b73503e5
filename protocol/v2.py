"""Open Inference Protocol (KServe V2) REST messages as pydantic models.

These document the wire format and serve the metadata and health endpoints. The infer hot path does
not validate bodies through them (see `protocol.v2_codec`): building models for every request would
cost more than the inference on small models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Parameters = dict[str, Any]

BINARY_EXTENSION = "binary_tensor_data"


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")


class MetadataTensor(BaseModel):
    """A tensor a model takes or returns; -1 marks a dimension of any size."""

    model_config = ConfigDict(frozen=True)

    name: str
    datatype: str
    shape: list[int]


class ServerMetadataResponse(_Message):
    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


class ServerLiveResponse(_Message):
    live: bool


class ServerReadyResponse(_Message):
    ready: bool


class ModelReadyResponse(_Message):
    name: str
    ready: bool


class ModelMetadataResponse(_Message):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)


class RequestInput(_Message):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class RequestOutput(_Message):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(_Message):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Message):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(_Message):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class ErrorResponse(BaseModel):
    """Every failure of every endpoint, V1 and V2 alike."""

    error: str

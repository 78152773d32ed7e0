"""A JSON answer asked of a Messages provider, for OpenAI's ``response_format`` (Chat
Completions) and ``text.format`` (Responses), and read back as the message's text.

A ``json_schema`` format goes as Anthropic's structured output (``output_config.format``)
where the route says the provider has it (``structured_output`` in the model's
configuration). Otherwise, and for ``json_object``, the answer is asked for as the
input of one tool, ``json_answer``, whose input schema is the format's: the provider
then returns a JSON object, and the way back turns that tool's input into the message's
text, as OpenAI returns it. With no tools of the client's, that tool is forced; beside
the client's tools, some tool is required (the model calls one of the client's, or
answers through ``json_answer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.catalogue import Route
from edge.relay.translate.common import refuse

JSON_TOOL = "json_answer"
_DESCRIPTION = "Give your final answer as this tool's input: it is returned to the user as JSON."


@dataclass(frozen=True, slots=True)
class JsonFormat:
    schema: dict[str, Any] | None  # None: any JSON object (json_object)


def from_response_format(value: Any) -> JsonFormat | None:
    """Chat Completions' ``response_format``; None for plain text."""
    if value is None or (isinstance(value, dict) and value.get("type") == "text"):
        return None
    if not isinstance(value, dict):
        raise refuse("response_format must be an object", "response_format")
    if value.get("type") == "json_object":
        return JsonFormat(None)
    spec = value.get("json_schema")
    if value.get("type") == "json_schema" and isinstance(spec, dict):
        return JsonFormat(_schema(spec.get("schema"), "response_format"))
    raise refuse("response_format must be text, json_object or json_schema with a schema", "response_format")


def from_text_format(text: Any) -> JsonFormat | None:
    """The Responses API's ``text.format``; None for plain text."""
    value = text.get("format") if isinstance(text, dict) else None
    if value is None or (isinstance(value, dict) and value.get("type") == "text"):
        return None
    if not isinstance(value, dict):
        raise refuse("text.format must be an object", "text")
    if value.get("type") == "json_object":
        return JsonFormat(None)
    if value.get("type") == "json_schema":
        return JsonFormat(_schema(value.get("schema"), "text"))
    raise refuse("text.format must be text, json_object or json_schema with a schema", "text")


def _schema(schema: Any, param: str) -> dict[str, Any]:
    if not isinstance(schema, dict) or schema.get("type") not in ("object", None):
        raise refuse("a JSON schema for the answer must describe an object", param)
    return schema


def ask(sent: dict[str, Any], wanted: JsonFormat, route: Route) -> bool:
    """Ask ``sent`` (a Messages request) for a JSON answer; True if it comes as the
    input of ``JSON_TOOL`` (False: as the text itself)."""
    if wanted.schema is not None and route.structured_output:
        sent["output_config"] = {**sent.get("output_config", {}), "format": {"type": "json_schema", "schema": wanted.schema}}
        return False
    tools = sent.get("tools") or []
    if any(tool.get("name") == JSON_TOOL for tool in tools):
        raise refuse(f"a tool may not be named {JSON_TOOL!r} when a JSON answer is asked for", "tools")
    schema = wanted.schema or {"type": "object", "additionalProperties": True}
    sent["tools"] = [*tools, {"name": JSON_TOOL, "description": _DESCRIPTION, "input_schema": schema}]
    choice = sent.get("tool_choice") or {"type": "auto"}
    parallel = {"disable_parallel_tool_use": True} if choice.get("disable_parallel_tool_use") else {}
    if not tools or choice.get("type") == "none":
        sent["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
    elif choice.get("type") == "auto":
        sent["tool_choice"] = {"type": "any", **parallel}
    return True

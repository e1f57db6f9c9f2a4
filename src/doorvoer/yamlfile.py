"""A YAML file validated by a pydantic model, with errors that name the file, the line
and the field (the process spec, an incident's file)."""

from __future__ import annotations

from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def _node_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location."""
    best = node
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                # A missing field: point at the mapping itself; an extra one at its key.
                key = next((k for k, _ in node.value if k.value == part), None)
                return key or best
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return best
            node = node.value[part]
        else:
            continue  # union branch names such as 'PickupTarget'
        best = node
    return best


def _field_path(loc: tuple[int | str, ...], tags: tuple[str, ...]) -> str:
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in tags:
            pass  # the union's tag; the field of the same name follows
        elif not (part[:1].isupper() or part.startswith("function-")):
            out += ("." if out else "") + part
        previous = part
    return out or "(top level)"


def parse_yaml(text: str, model: type[M], source: str, error: type[Exception],
               shape: str, tags: tuple[str, ...] = ()) -> M:
    """`text` as `model`; `error` with up to five lines `source: line N: field: why`
    otherwise. `shape` says what the top level must be; `tags` are a union's tags."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise error(f"{source}: {where}not valid YAML: {exc.problem}") from None
    except yaml.YAMLError:
        raise error(f"{source}: not valid YAML") from None
    if not isinstance(data, dict):
        raise error(f"{source}: line 1: {shape}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors()[:5]:
            loc = tuple(err["loc"])
            node = _node_at(root, loc)
            line = node.start_mark.line + 1 if node is not None else 1
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            messages.append(f"{source}: line {line}: {_field_path(loc, tags)}: {msg}")
        raise error("\n".join(messages)) from None

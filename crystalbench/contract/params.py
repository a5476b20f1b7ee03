"""Typed hyperparameters: one dataclass per model, validated once, unknown keys rejected.

A model declares its hyperparameters as a frozen dataclass::

    @dataclass(frozen=True)
    class CGCNNParams:
        epochs: int = 300
        lr: float = 1e-2
        pooling: Literal["mean", "sum", "atom-sum"] = "mean"

and passes it as `ModelSpec(params=CGCNNParams)`. `resolve_params` is the only
place that merges defaults < `--config` top-level keys < `[model]` table < CLI
flags, coerces numbers (``epochs = 5.0`` -> 5), checks `Literal` choices and
rejects unknown keys with the list of known ones. The result is what the job
identity hashes and what the record stores. A plugin that only gives
`ModelSpec(defaults={...})` gets a dataclass made from those defaults, so the
same rules apply to it.

Docs tables of defaults are generated from these classes (`params_table`), so
they cannot drift from the code. Tables and records list fields in reading
order (`ordered_fields`): a class's own hyperparameters first, then those it
inherits from a base that marks itself ``params_last`` (the shared training
recipe, `crystalbench.gnn.TrainingParams`), although dataclasses put inherited
fields first.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from crystalbench.contract.errors import BadInputError

__all__ = [
    "params_from_defaults", "resolve_params", "params_to_dict", "params_table", "field_choices", "ordered_fields",
    "POOLING_CHOICES", "Pooling", "pooling_choices",
]

# Every readout `--pooling` offers: the mean or the sum of the atom vectors before the output network, or
# "atom-sum", Gong et al.'s eq. 13, the output network applied to every atom and its outputs summed
# (`crystalbench.gnn.heads`). Declared once as the `Literal` a model's params annotate their `pooling` field
# with; `POOLING_CHOICES` (what the CLI offers) and each model's `ModelSpec.poolings` (via `field_choices`
# on its params) are derived from a Literal, so the choices are never restated.
Pooling = Literal["mean", "sum", "atom-sum"]
POOLING_CHOICES: tuple[str, ...] = get_args(Pooling)


def params_from_defaults(name: str, defaults: Mapping[str, Any]) -> type:
    """A frozen dataclass whose fields are `defaults` (types taken from the values)."""
    fields = []
    for key, value in defaults.items():
        typ: Any = type(value) if value is not None else Any
        if isinstance(value, (list, dict, set)):
            value_copy = value
            fields.append((key, typ, dataclasses.field(default_factory=lambda v=value_copy: v)))  # type: ignore[misc]
        else:
            fields.append((key, typ, dataclasses.field(default=value)))
    cls_name = "".join(p.capitalize() for p in name.replace("-", "_").split("_")) + "Params"
    return dataclasses.make_dataclass(cls_name, fields, frozen=True)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:
        return {f.name: f.type for f in dataclasses.fields(cls)}


def field_choices(cls: type, name: str) -> tuple[Any, ...] | None:
    """The allowed values of a `Literal[...]` field (None when the field is not a Literal)."""
    hint = _hints(cls).get(name)
    return _literal_args(hint)


def pooling_choices(params: type) -> tuple[str, ...]:
    """The readouts a model supports (its `ModelSpec.poolings`): the choices of its params' `pooling`
    Literal, so a model declares them once, where its hyperparameter is typed; () without such a field."""
    return tuple(field_choices(params, "pooling") or ())


def _literal_args(hint: Any) -> tuple[Any, ...] | None:
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out: list[Any] = []
        for arg in get_args(hint):
            if arg is type(None):
                out.append(None)
            elif get_origin(arg) is Literal:
                out.extend(get_args(arg))
            else:
                return None
        return tuple(out)
    return None


def _coerce(model: str, key: str, hint: Any, value: Any) -> Any:
    where = f"model {model!r}: hyperparameter {key!r}"
    choices = _literal_args(hint)
    if choices is not None:
        if value not in choices:
            raise BadInputError(f"{where} must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value
    base = hint
    if get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(get_args(hint)):
            return None
        base = args[0] if len(args) == 1 else Any
    if base is bool:
        if isinstance(value, bool):
            return value
        raise BadInputError(f"{where} must be true or false, not {value!r}")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):  # nan/inf too: never int(nan)
            raise BadInputError(f"{where} must be an integer, not {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) == float("inf") or value != value:
            raise BadInputError(f"{where} must be a finite number, not {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise BadInputError(f"{where} must be a string, not {value!r}")
        return value
    if get_origin(base) in (tuple, list) and isinstance(value, (list, tuple)):
        return tuple(value) if get_origin(base) is tuple else list(value)
    return value


def resolve_params(
    model: str,
    cls: type,
    *layers: Mapping[str, Any],
    strict_layers: tuple[int, ...] = (),
) -> Any:
    """Build `cls` from its defaults overridden by each mapping in `layers`, in order.

    Keys unknown to `cls` raise `BadInputError` naming them and the known ones,
    for the layers whose index is in `strict_layers`; other layers (the
    top-level keys of a config file, which apply "to every model that has
    that hyperparameter") only set the keys the model has.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"model {model!r}: params must be a dataclass, got {cls!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        for key, value in layer.items():
            if key not in known:
                if i in strict_layers:
                    raise BadInputError(
                        f"model {model!r}: unknown hyperparameter {key!r}; known: {', '.join(sorted(known)) or 'none'}"
                    )
                continue
            values[key] = _coerce(model, key, hints.get(key, Any), value)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"model {model!r}: {exc}") from None


def ordered_fields(cls: Any) -> list[dataclasses.Field[Any]]:
    """The dataclass fields of `cls` (a class or an instance) in reading order.

    Fields inherited from a base class that sets ``params_last = True`` in its
    own body come after all others, each group in dataclass order. Why: a model's
    params class extends the shared training recipe (`crystalbench.gnn.TrainingParams`),
    and dataclasses list a base's fields first; a reader of a model's table (or
    of a record's hyperparameters) looks for the architecture first and the
    recipe after it, as the tables always read.
    """
    typ = cls if isinstance(cls, type) else type(cls)
    last: set[str] = set()
    for base in typ.__mro__:
        if vars(base).get("params_last") is True and dataclasses.is_dataclass(base):
            last.update(f.name for f in dataclasses.fields(base))
    all_fields = dataclasses.fields(cls)
    return [f for f in all_fields if f.name not in last] + [f for f in all_fields if f.name in last]


def params_to_dict(params: Any) -> dict[str, Any]:
    """Plain JSON-ready dict of a params instance (tuples become lists), in `ordered_fields` order."""
    out = {}
    for f in ordered_fields(params):
        v = getattr(params, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def params_table(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, doc) rows for generated docs; the doc comes from field metadata 'doc'."""
    rows = []
    hints = _hints(cls)
    for f in ordered_fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        hint = hints.get(f.name, f.type)
        choices = _literal_args(hint)
        typ = " | ".join(map(repr, choices)) if choices else getattr(hint, "__name__", str(hint).replace("typing.", ""))
        rows.append((f.name, typ, repr(default), str(f.metadata.get("doc", ""))))
    return rows

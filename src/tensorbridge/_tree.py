"""Walking containers: dicts and other mappings, lists, tuples, namedtuples, dataclasses, and
every node type registered with optree (globally or in the ``"tensorbridge"`` namespace).

``walk`` is the hot path: no paths are built. When a leaf fails, the caller walks again with
``walk_with_paths`` to name the leaf's path (``obj["images"][3]``) in the error.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import optree
import torch

from . import _foreign
from ._kinds import CONTAINER_KINDS, NAMESPACE, Kind, kind_of, node_namespace

PathLeafFn = Callable[[Any, str, str], Any]
# Mappings whose type can be rebuilt from their items; any other comes back as a plain dict.
_REBUILT_MAPPINGS = (dict, collections.UserDict)


_KEY_TEXTS: dict[str, str] = {}  # the same keys come back call after call (state dicts)


def _key_text(key: Any) -> str:
    text = _KEY_TEXTS.get(key) if type(key) is str else None
    if text is not None:
        return text
    if type(key) is str and key.isprintable() and '"' not in key and "\\" not in key:
        text = '["' + key + '"]'
    else:
        text = f"[{json.dumps(key) if isinstance(key, str) else repr(key)}]"
    if type(key) is str:
        if len(_KEY_TEXTS) > 100_000:
            _KEY_TEXTS.clear()
        _KEY_TEXTS[key] = text
    return text


def children(obj: Any, kind: str) -> tuple[list[str], list[Any], Callable[[list[Any]], Any]]:
    """One level of a container: path suffixes, child values, and a function rebuilding it."""
    cls = type(obj)
    if cls is dict or kind is Kind.MAPPING:
        keys = list(obj.keys())
        values = [obj[k] for k in keys]

        def rebuild_mapping(new: list[Any]) -> Any:
            items = dict(zip(keys, new, strict=True))
            if cls is dict or not issubclass(cls, _REBUILT_MAPPINGS):
                return items  # ChainMap, mappingproxy, ...: a plain dict, never garbled
            try:
                return cls(items)
            except Exception:
                return items  # a subclass whose constructor takes other arguments

        return (
            [_key_text(k) if type(k) is str else f"[{k!r}]" for k in keys],
            values,
            rebuild_mapping,
        )
    if kind is Kind.SEQUENCE:
        return [f"[{i}]" for i in range(len(obj))], list(obj), cls
    if kind is Kind.FOREIGN_NODE:
        adapter = _foreign.adapter_for(cls)
        assert adapter is not None and adapter.children is not None
        return adapter.children(obj)
    if kind is Kind.DATACLASS:
        names = [f.name for f in dataclasses.fields(obj) if hasattr(obj, f.name)]

        def rebuild_dataclass(new: list[Any]) -> Any:
            out = copy.copy(obj)
            for name, value in zip(names, new, strict=True):
                object.__setattr__(out, name, value)  # frozen dataclasses too
            return out

        return [f".{n}" for n in names], [getattr(obj, n) for n in names], rebuild_dataclass
    # An optree node: dict subclasses, namedtuples, deques, the user's registered types.
    one = optree.tree_flatten_one_level(obj, namespace=node_namespace(cls) or NAMESPACE)
    fields = getattr(cls, "_fields", None)
    if isinstance(obj, tuple) and fields is not None:
        suffixes = [f".{fields[i]}" for i in one.entries]
    else:
        suffixes = [_key_text(e) for e in one.entries]

    def rebuild_node(new: list[Any]) -> Any:
        return one.unflatten_func(one.metadata, new)

    return suffixes, list(one.children), rebuild_node


_LEAF_TYPES = frozenset({torch.Tensor, np.ndarray})  # the common leaves, recognised first


def walk(obj: Any, fn: Callable[[Any], Any]) -> Any:
    """Rebuild ``obj`` with ``fn(leaf)`` applied to every non-container value."""
    cls = type(obj)
    if cls is dict:
        return {k: fn(v) if type(v) in _LEAF_TYPES else walk(v, fn) for k, v in obj.items()}
    if cls is list:
        return [fn(v) if type(v) in _LEAF_TYPES else walk(v, fn) for v in obj]
    if cls is tuple:
        return tuple([fn(v) if type(v) in _LEAF_TYPES else walk(v, fn) for v in obj])
    kind = kind_of(obj)
    if kind not in CONTAINER_KINDS:
        return fn(obj)
    _, values, rebuild = children(obj, kind)
    return rebuild([walk(v, fn) for v in values])


def walk_with_paths(obj: Any, fn: PathLeafFn, path: str = "obj") -> Any:
    """Like ``walk``, passing each leaf's path (``obj["images"][3]``) to ``fn``."""
    kind = kind_of(obj)
    if kind not in CONTAINER_KINDS:
        return fn(obj, kind, path)
    suffixes, values, rebuild = children(obj, kind)
    return rebuild(
        [walk_with_paths(v, fn, path + s) for s, v in zip(suffixes, values, strict=True)]
    )


def visit(obj: Any, fn: PathLeafFn, path: str = "obj") -> None:
    """Call ``fn(leaf, kind, path)`` for every non-container value of ``obj``, in walking order."""
    cls = type(obj)
    if cls is dict:
        for k, v in obj.items():
            sub = path + _key_text(k)
            if type(v) in _LEAF_TYPES:
                fn(v, kind_of(v), sub)
            else:
                visit(v, fn, sub)
        return
    kind = kind_of(obj)
    if kind not in CONTAINER_KINDS:
        fn(obj, kind, path)
        return
    suffixes, values, _ = children(obj, kind)
    for s, v in zip(suffixes, values, strict=True):
        visit(v, fn, path + s)

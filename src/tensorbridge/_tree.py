"""Flattening containers, once: the leaves in order, each leaf's path, and a rebuild function.

Containers are dicts and other mappings, lists, tuples (and their subclasses), namedtuples,
dataclasses, and node types registered with optree globally or in the ``"tensorbridge"``
namespace (read through optree's public ``tree_flatten_one_level``). Everything else is a leaf.
Conversions, ``explain``, ``to_python`` and the file formats all use ``flatten``; a leaf's path
(``obj["images"][3]``) or its key path (``("images", 3)``) is written only when asked for (an
error, ``explain``, a file's dotted tensor names).

>>> flat = flatten({"a": [1, 2], "b": 3})
>>> flat.leaves, flat.path(1), flat.rebuild([10, 20, 30])
([1, 2, 3], 'obj["a"][1]', {'a': [10, 20], 'b': 30})
"""

from __future__ import annotations

import bisect
import collections
import copy
import dataclasses
import json
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

import numpy as np
import optree
import torch

from . import _foreign
from ._errors import UnsupportedInputError
from ._kinds import CONTAINER_KINDS, NAMESPACE, Kind, kind_of

__all__ = ["Flat", "flatten"]

_LEAF_TYPES = frozenset({torch.Tensor, np.ndarray})  # the common leaves, recognised first
Builder = Callable[[Any], Any]  # takes an iterator over the new leaves, returns the rebuilt node
_FILE_NODES = (Mapping, list, tuple)  # the containers file formats nest (``is_leaf`` given)
# Mappings whose type can be rebuilt from their items; any other comes back as a plain dict.
_REBUILT_MAPPINGS = (dict, collections.UserDict)


class _Attr(str):
    """A path suffix naming an attribute (``.field``), not a key."""


_KEY_TEXTS: dict[str, str] = {}  # the same keys come back call after call (state dicts)


def key_text(key: Any) -> str:
    """The path suffix of one key: ``["name"]``, ``[3]``, ``.field``."""
    if type(key) is _Attr:
        return "." + key
    if type(key) is int:
        return f"[{key}]"
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


class Flat:
    """A flattened container: ``leaves`` in order, ``path(i)``, and ``rebuild(new_leaves)``."""

    __slots__ = ("_build", "_prefixes", "_root", "_segments", "_starts", "leaves")

    def __init__(
        self,
        leaves: list[Any],
        segments: list[Segment],
        build: Builder | None,
        root: type | None = None,
    ):
        self.leaves = leaves
        # Runs of leaves with one parent: (index of the first, the parent's entry, their keys).
        # A parent's entry is (its parent's entry, its key, its type), None at the root.
        self._segments = segments
        self._root = root  # the root container's type; None when the root is the one leaf
        self._starts: list[int] | None = None
        self._prefixes: dict[int, str] = {}  # a segment's parent path, written once
        self._build = build

    def path(self, i: int) -> str:
        """The path of leaf ``i``: ``obj["images"][3]``."""
        if self._starts is None:
            self._starts = [seg[0] for seg in self._segments]
        j = bisect.bisect_right(self._starts, i) - 1
        start, node, keys = self._segments[j]
        if keys is None:
            return "obj"  # the root itself is the one leaf
        prefix = self._prefixes.get(j)
        if prefix is None:
            parts = []
            while node is not None:
                node, key, _ = node
                parts.append(key_text(key))
            prefix = self._prefixes[j] = "obj" + "".join(reversed(parts))
        return prefix + key_text(keys[i - start])

    def key_path(self, i: int) -> tuple[Any, ...]:
        """The keys leading to leaf ``i``, as the containers hold them: ``("images", 3)``;
        a dataclass or namedtuple field is its name; ``()`` for a root that is itself the leaf."""
        if self._starts is None:
            self._starts = [seg[0] for seg in self._segments]
        j = bisect.bisect_right(self._starts, i) - 1
        start, node, keys = self._segments[j]
        if keys is None:
            return ()
        parts = [keys[i - start]]
        while node is not None:
            node, key, _ = node
            parts.append(key)
        return tuple(str(k) if type(k) is _Attr else k for k in reversed(parts))

    def containers(self) -> dict[tuple[Any, ...], type]:
        """The type of the root container (key path ``()``) and of each container below it that
        holds a leaf, by key path; read from what the walk recorded (no second walk).

        >>> flatten({"a": [1, (2,)]}).containers()
        {(): <class 'dict'>, ('a',): <class 'list'>, ('a', 1): <class 'tuple'>}
        """
        if self._root is None:
            return {}
        out: dict[tuple[Any, ...], type] = {(): self._root}
        known: dict[int, tuple[Any, ...]] = {}  # id of an entry → its key path
        for _, node, _ in self._segments:
            chain = []
            while node is not None and id(node) not in known:
                chain.append(node)
                node = node[0]
            prefix = () if node is None else known[id(node)]
            for entry in reversed(chain):
                _, key, cls = entry
                prefix = (*prefix, str(key) if type(key) is _Attr else key)
                known[id(entry)] = prefix
                out[prefix] = cls
        return out

    def rebuild(self, new: list[Any]) -> Any:
        """The container with its leaves replaced by ``new`` (same order)."""
        if self._build is None:
            return new[0]
        return self._build(iter(new))


Segment = tuple[int, Any, Any]


def flatten(
    obj: Any,
    *,
    split_nested: bool = False,
    plain: bool = False,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Flat:
    """Flatten ``obj`` in one pass. ``split_nested`` treats a top-level nested tensor as the list
    of its components (as ``to_numpy`` converts it; inside a container it is one leaf, which
    ``to_numpy`` turns into a list); ``plain`` rebuilds every mapping and dataclass as
    a ``dict`` and every other container as a ``list`` (JSON's shapes, for ``to_python``).

    ``is_leaf`` narrows what is walked to what the file formats nest: with it, only mappings,
    lists and tuples (subclasses too, a namedtuple by position) for which ``is_leaf`` is false
    are containers, everything else is a leaf. Such a ``Flat`` is for its leaves and key paths,
    not for ``rebuild``."""
    leaves: list[Any] = []
    segments: list[Segment] = []
    if split_nested and isinstance(obj, torch.Tensor) and obj.is_nested:
        leaves.extend(obj.unbind())
        return Flat(leaves, [(0, None, range(len(leaves)))], list, list)
    build = _node(obj, None, leaves, segments, plain, is_leaf)
    if build is None:
        segments.append((0, None, None))
        leaves.append(obj)
        return Flat(leaves, segments, None)
    return Flat(leaves, segments, build, type(obj))


def _children(obj: Any, kind: str) -> tuple[list[Any], list[Any], Callable[[list[Any]], Any]]:
    """One level of a container: keys, child values, and a function rebuilding it."""
    cls = type(obj)
    if kind is Kind.MAPPING:
        keys = list(obj.keys())

        def rebuild_mapping(new: list[Any]) -> Any:
            items = dict(zip(keys, new, strict=True))
            if not issubclass(cls, _REBUILT_MAPPINGS):
                return items  # ChainMap, mappingproxy, ...: a plain dict, never garbled
            try:
                return cls(items)
            except Exception:
                return items  # a subclass whose constructor takes other arguments

        return keys, [obj[k] for k in keys], rebuild_mapping
    if kind is Kind.SEQUENCE:
        return list(range(len(obj))), list(obj), cls
    if kind is Kind.FOREIGN_NODE:  # xarray.Dataset, h5py.Group, PackedSequence: their adapter
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

        return [_Attr(n) for n in names], [getattr(obj, n) for n in names], rebuild_dataclass
    # An optree node: dict subclasses, namedtuples, deques, the user's registered types.
    one = optree.tree_flatten_one_level(obj, namespace=NAMESPACE)
    fields = getattr(cls, "_fields", None)
    if isinstance(obj, tuple) and fields is not None:
        entries: list[Any] = [_Attr(fields[i]) for i in one.entries]
    else:
        entries = list(one.entries)

    def rebuild_node(new: list[Any]) -> Any:
        return one.unflatten_func(one.metadata, new)

    return entries, list(one.children), rebuild_node


def _node(
    obj: Any,
    at: Any,
    leaves: list[Any],
    segments: list[Segment],
    plain: bool,
    is_leaf: Callable[[Any], bool] | None,
) -> Builder | None:
    """Append ``obj``'s leaves (and where they are); return its builder, None for a leaf."""
    cls = type(obj)
    out_keys: Any = None  # the rebuilt mapping's keys, when they differ from the path keys
    if is_leaf is not None and (is_leaf(obj) or not isinstance(obj, _FILE_NODES)):
        return None
    if cls is dict:
        keys = list(obj)
        values = list(obj.values())
        kind = "dict"
    elif cls is list or cls is tuple:
        keys = range(len(obj))  # type: ignore[assignment]
        values = list(obj)
        kind = "seq"
    else:
        if is_leaf is not None:  # the file formats' nodes: any mapping, list or tuple
            kind = Kind.MAPPING if isinstance(obj, Mapping) else Kind.SEQUENCE
        else:
            kind = kind_of(obj)
            if kind not in CONTAINER_KINDS:
                return None
        keys, values, rebuild = _children(obj, kind)
        if plain and kind is not Kind.FOREIGN_NODE:  # a foreign node rebuilds plain itself
            if isinstance(obj, Mapping) or kind is Kind.DATACLASS:
                kind, cls = "dict", dict
                out_keys = [str(k) if type(k) is _Attr else k for k in keys]
            else:
                kind, cls = "seq", list
    if plain and cls is tuple:
        cls = list
    if out_keys is None:
        out_keys = keys
    if plain and kind == "dict":
        _check_json_keys(out_keys, at)
    n = len(values)
    builders: list[Builder | None] = []
    any_node = False
    if set(map(type, values)) <= _LEAF_TYPES:  # tensors and arrays only: one run
        if n:
            segments.append((len(leaves), at, keys))
            leaves.extend(values)
    else:
        for k, v in zip(keys, values):  # noqa: B905 - same length by construction
            b = (
                None
                if type(v) in _LEAF_TYPES
                else _node(v, (at, k, type(v)), leaves, segments, plain, is_leaf)
            )
            if b is None:
                segments.append((len(leaves), at, (k,)))
                leaves.append(v)
            else:
                any_node = True
            builders.append(b)
    if kind == "dict":
        if not any_node:
            return lambda it: dict(zip(out_keys, islice(it, n)))  # noqa: B905
        return lambda it: {
            k: next(it) if b is None else b(it)
            for k, b in zip(out_keys, builders)  # noqa: B905
        }
    if kind == "seq":
        if not any_node:
            return (
                (lambda it: list(islice(it, n)))
                if cls is list
                else (lambda it: tuple(islice(it, n)))
            )
        if cls is list:
            return lambda it: [next(it) if b is None else b(it) for b in builders]
        return lambda it: tuple([next(it) if b is None else b(it) for b in builders])
    if not any_node:
        return lambda it: rebuild(list(islice(it, n)))
    return lambda it: rebuild([next(it) if b is None else b(it) for b in builders])


_JSON_KEYS = (str, int, float, bool, type(None))


def _check_json_keys(keys: Any, at: Any) -> None:
    """``to_python``'s dicts must be JSON's: keys that ``json.dumps`` cannot write are refused."""
    for key in keys:
        if not isinstance(key, _JSON_KEYS):
            parts = []
            node = at
            while node is not None:
                node, k, _ = node
                parts.append(key_text(k))
            raise UnsupportedInputError(
                f"key {key!r} ({type(key).__name__}) has no JSON form (JSON keys are strings); "
                f"convert the keys to str first"
            ).at("obj" + "".join(reversed(parts)))

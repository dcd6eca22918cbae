"""Rule packs: extra rules and their copy, shipped as Python packages.

A pack is a distribution exposing an entry point in the group ``tend.rules``.
The entry point loads to one of:

* a callable taking no arguments that returns one of the forms below;
* a mapping ``{"rules": <path to a rules YAML file>, "copy": <path to a copy YAML file>
  or a mapping, optional}``;
* a ``(rules_path, copy_path)`` pair, or just the rules path (no copy).

The pack's rules are checked exactly like ``manifests/rules.yaml`` and added to the
default ruleset (``RuleSet.extended``): a rule id the ruleset already has is refused.
Its copy is a mapping with the catalogue's own top-level sections (``why``,
``practices``, ``messages``, ...) merged into ``plugin/delivery/copy.yaml``'s
catalogue; a pack may add keys but never redefine one. Every copy key a pack's
rules need (``why.<rule id>``, their message, their practice) must exist once
merged.

A pack that fails any of this is refused with one line naming it
(``PackError``, a ``ConfigError``): start-up stops, and nothing of any pack is
loaded, so a runtime never runs half a pack.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import yaml

from plugin.config import ConfigError

from .documents import read
from .engine import RuleSet
from .errors import RulesError

GROUP: Final = "tend.rules"


class PackError(ConfigError):
    """A rule pack that cannot be loaded; the message names the pack and its problem."""


@dataclass(frozen=True)
class Pack:
    name: str                       # entry point name
    distribution: str               # the distribution that ships it ("" when unknown)
    rules_path: Path
    copy: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"pack {self.name}" + (f" ({self.distribution})" if self.distribution and self.distribution != self.name else "")


#: Dotted copy keys added by packs in this process -> the pack that added them, so that
#: building a second runtime in the same process does not see a pack clash with itself.
_ADDED: dict[str, str] = {}


def entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)


def _fail(name: str, message: str) -> PackError:
    return PackError(f"rule pack {name!r} refused: {message}")


def _path(name: str, value: Any, what: str) -> Path:
    if not isinstance(value, (str, Path)):
        raise _fail(name, f"its {what} must be a path to a YAML file, got {type(value).__name__}")
    path = Path(value)
    if not path.is_file():
        raise _fail(name, f"its {what} file does not exist: {path}")
    return path


def _copy_mapping(name: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    path = _path(name, value, "copy")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _fail(name, f"its copy file is not valid YAML: {exc}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _fail(name, "its copy must be a YAML mapping of catalogue sections")
    return data


def load_pack(ep: metadata.EntryPoint) -> Pack:
    """Resolve one entry point to its files; raises ``PackError`` naming it."""
    name = ep.name
    dist = ep.dist.name if getattr(ep, "dist", None) is not None else ""
    try:
        target = ep.load()
        if callable(target):
            target = target()
    except Exception as exc:  # any import or call failure of third-party code
        raise _fail(name, f"its entry point {ep.value!r} failed: {type(exc).__name__}: {exc}") from None
    if isinstance(target, Mapping):
        if "rules" not in target:
            raise _fail(name, "its entry point must give a mapping with a `rules` path")
        unknown = set(target) - {"rules", "copy"}
        if unknown:
            raise _fail(name, f"unknown keys in its entry point's mapping: {', '.join(sorted(map(str, unknown)))}")
        rules, copy = target["rules"], target.get("copy")
    elif isinstance(target, (tuple, list)) and len(target) == 2:
        rules, copy = target
    else:
        rules, copy = target, None
    return Pack(name=name, distribution=dist, rules_path=_path(name, rules, "rules"), copy=_copy_mapping(name, copy))


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, dotted + ".")
        else:
            yield dotted, value


def _lookup(tree: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return True, node  # a sentence sits where the pack wants a section
        if part not in node:
            return False, None
        node = node[part]
    return True, node


def _merge_into(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = _copy.deepcopy(value)


def _copy_problems(pack: Pack, view: Mapping[str, Any], added_now: Mapping[str, str]) -> None:
    for dotted, _value in _leaves(pack.copy):
        if _reloaded(pack, dotted, added_now):
            continue
        if _lookup(view, dotted)[0]:
            owner = added_now.get(dotted) or _ADDED.get(dotted)
            where = f"pack {owner!r}" if owner else "plugin/delivery/copy.yaml"
            raise _fail(pack.name, f"its copy redefines {dotted!r}, already defined by {where}")


def _reloaded(pack: Pack, dotted: str, added_now: Mapping[str, str]) -> bool:
    """The key was merged by this same pack when an earlier runtime of this process loaded it."""
    return _ADDED.get(dotted) == pack.name and dotted not in added_now


def combine(base: RuleSet, packs: Iterable[Pack], catalogue: Mapping[str, Any]) -> tuple[RuleSet, dict[str, Any]]:
    """``base`` extended with every pack, and the copy they add; pure (nothing is applied)."""
    ruleset = base
    merged: dict[str, Any] = {}
    added_now: dict[str, str] = {}
    view = _copy.deepcopy(dict(catalogue))
    for pack in packs:
        try:
            doc = read(pack.rules_path)
        except OSError as exc:
            raise _fail(pack.name, f"cannot read {pack.rules_path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise _fail(pack.name, f"{pack.rules_path} is not valid YAML: {exc}".replace("\n", " ")) from None
        before = {r.id for r in ruleset.rules}
        try:
            ruleset = ruleset.extended([doc], origin=str(pack.rules_path))
        except RulesError as err:
            raise _fail(pack.name, str(err.problem)) from None
        _copy_problems(pack, view, added_now)
        for dotted, value in _leaves(pack.copy):
            if _reloaded(pack, dotted, added_now):
                continue
            _merge_into(view, dotted, value)
            _merge_into(merged, dotted, value)
            added_now[dotted] = pack.name
        for rule in ruleset.rules:
            if rule.id in before:
                continue
            for key in sorted(_rule_copy_keys(ruleset, rule.id)):
                if not _lookup(view, key)[0]:
                    raise _fail(pack.name, f"rule {rule.id} needs copy key {key!r}, which neither its copy nor the catalogue has")
    return ruleset, merged


def _rule_copy_keys(ruleset: RuleSet, rule_id: str) -> set[str]:
    rule = ruleset.rule(rule_id)
    keys = {rule.why_key}
    if rule.message:
        keys.add(rule.message)
    if rule.practice:
        keys.add(f"practices.{rule.practice}")
    return keys


def apply_copy(pack_copy: Mapping[str, Any], owners: Mapping[str, str]) -> None:
    """Merge packs' copy into the process's loaded catalogue (``plugin.delivery.copy``)."""
    from plugin.delivery import copy as catalogue_module

    tree = catalogue_module.catalogue()
    for dotted, value in _leaves(pack_copy):
        _merge_into(tree, dotted, value)
        _ADDED[dotted] = owners[dotted]


def load_ruleset(rules_path: str | Path | None = None, eps: Iterable[metadata.EntryPoint] | None = None) -> tuple[RuleSet, list[Pack]]:
    """The runtime's ruleset: the default file extended with every installed pack.

    Everything is checked before anything is applied: a broken pack raises
    ``PackError`` and no pack's rules or copy are loaded.
    """
    from plugin.delivery import copy as catalogue_module

    base = RuleSet.load(rules_path) if rules_path is not None else RuleSet.load()
    packs = [load_pack(ep) for ep in (entry_points() if eps is None else eps)]
    names = [p.name for p in packs]
    for name in names:
        if names.count(name) > 1:
            raise _fail(name, "two installed packs use this entry point name")
    if not packs:
        return base, []
    ruleset, added = combine(base, packs, catalogue_module.catalogue())
    owners = {dotted: pack.name for pack in packs for dotted, _ in _leaves(pack.copy)}
    apply_copy(added, owners)
    return ruleset, packs


def origins(ruleset: RuleSet, packs: Iterable[Pack]) -> dict[str, str]:
    """Rule id -> where it came from, in words (`tend rules list`)."""
    by_path = {str(p.rules_path): p for p in packs}
    out: dict[str, str] = {}
    for rule in ruleset.rules:
        pack = by_path.get(rule.origin)
        out[rule.id] = f"{pack.label}: {rule.origin}" if pack else rule.origin
    return out


def reset_for_tests() -> None:
    """Forget packs' copy (and reload the catalogue from disk on next use)."""
    from plugin.delivery import copy as catalogue_module

    _ADDED.clear()
    catalogue_module.catalogue.cache_clear()

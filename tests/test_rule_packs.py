"""Rule packs: a real (tiny) distribution found through ``importlib.metadata`` entry points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.delivery import copy
from plugin.rules import packs
from plugin.rules.packs import PackError, load_ruleset

FIXTURE = Path(__file__).parent / "fixtures" / "rulepack"
PACK_RULE = "example.selfcare.heavy-booking"


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Make a distribution with the given ``tend.rules`` entry points visible, as pip would."""
    packs.reset_for_tests()
    monkeypatch.syspath_prepend(str(FIXTURE / "src"))

    def _install(entry_points: dict[str, str], dist: str = "tend_rulepack_example") -> None:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist}-0.1.0.dist-info"
        info.mkdir(parents=True)
        info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.1.0\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        info.joinpath("entry_points.txt").write_text(f"[tend.rules]\n{lines}")
        monkeypatch.syspath_prepend(str(site))

    yield _install
    packs.reset_for_tests()


def test_no_pack_installed_leaves_the_default_ruleset(install) -> None:  # type: ignore[no-untyped-def]
    ruleset, found = load_ruleset()
    assert found == [] and PACK_RULE not in {r.id for r in ruleset.rules}


def test_a_good_pack_adds_its_rule(install) -> None:  # type: ignore[no-untyped-def]
    install({"example": "tend_rulepack_example:pack"})
    ruleset, found = load_ruleset()
    assert [p.name for p in found] == ["example"]
    assert ruleset.rule(PACK_RULE).origin.endswith("rules.yaml")
    assert "therapist.selfcare.overfull-day" in {r.id for r in ruleset.rules}


def test_a_good_pack_adds_its_copy(install) -> None:  # type: ignore[no-untyped-def]
    install({"example": "tend_rulepack_example:pack"})
    load_ruleset()
    assert copy.entry("practices.example_breathing_space")["duration_minutes"] == 1
    assert copy.text("why.example.selfcare.heavy-booking").startswith("Many hours")


def test_loading_the_same_pack_twice_in_one_process_is_fine(install) -> None:  # type: ignore[no-untyped-def]
    install({"example": "tend_rulepack_example:pack"})
    load_ruleset()
    ruleset, _ = load_ruleset()
    assert PACK_RULE in {r.id for r in ruleset.rules}


def test_a_pack_with_a_cel_error_is_refused_with_its_name(install) -> None:  # type: ignore[no-untyped-def]
    install({"broken": "tend_rulepack_example:broken_cel"})
    with pytest.raises(PackError, match=r"rule pack 'broken' refused: .*broken_cel.yaml:12:.*CEL"):
        load_ruleset()


def test_a_pack_that_reuses_a_rule_id_is_refused(install) -> None:  # type: ignore[no-untyped-def]
    install({"dupe": "tend_rulepack_example:duplicate_id"})
    with pytest.raises(PackError, match=r"rule pack 'dupe' refused: .*duplicate rule id"):
        load_ruleset()


def test_a_refused_pack_loads_nothing_of_any_pack(install) -> None:  # type: ignore[no-untyped-def]
    install({"example": "tend_rulepack_example:pack", "zz-broken": "tend_rulepack_example:broken_cel"})
    with pytest.raises(PackError):
        load_ruleset()
    with pytest.raises(copy.MissingCopy):
        copy.entry("practices.example_breathing_space")


def test_a_pack_that_redefines_a_copy_key_is_refused(install, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    module = tmp_path / "mod" / "clashing_pack.py"
    module.parent.mkdir()
    module.write_text(
        "from tend_rulepack_example import HERE\n"
        "def pack():\n"
        "    return {'rules': HERE / 'rules.yaml', 'copy': {**__import__('yaml').safe_load((HERE / 'copy.yaml').read_text()),"
        " 'analogies': {'garden': 'mine now'}}}\n"
    )
    import sys

    sys.path.insert(0, str(module.parent))
    try:
        install({"clash": "clashing_pack:pack"})
        with pytest.raises(PackError, match=r"rule pack 'clash' refused: its copy redefines 'analogies.garden'"):
            load_ruleset()
    finally:
        sys.path.remove(str(module.parent))
        sys.modules.pop("clashing_pack", None)


def test_a_pack_whose_entry_point_does_not_import_is_refused(install) -> None:  # type: ignore[no-untyped-def]
    install({"ghost": "no_such_module_for_tend:pack"})
    with pytest.raises(PackError, match=r"rule pack 'ghost' refused: its entry point .* failed: ModuleNotFoundError"):
        load_ruleset()


def test_the_replay_runtime_runs_pack_rules(install) -> None:  # type: ignore[no-untyped-def]
    install({"example": "tend_rulepack_example:pack"})
    from plugin.runtime import Runtime

    assert PACK_RULE in {r.id for r in Runtime.for_replay().rules}

"""No module outside promo/campaigns/ names a campaign kind (issue 16).

Services ask the campaign what it supports (promo/campaigns/kind.py: its redemption window,
low-stock threshold, terms, how its codes are issued, its console page) or fetch the one
kind they work on by its class (campaign_store.get_campaign_of(conn, slug, PurchaseOffer)).
A kind's name (`"purchase_offer"`), a comparison of a campaign's `.kind`, or a duck-typed
`hasattr(campaign, ...)` outside promo/campaigns/ is the string check this replaced."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import promo
from promo.campaigns import KINDS

PROMO = Path(promo.__file__).parent


def _attributes(kind: type) -> set[str]:
    return {n for n in dir(kind) if not n.startswith("_")} | {f.name for f in dataclasses.fields(kind)}


# What one kind has and another has not (a purchase offer's `redemption`, a program's
# `program_start`): asking whether a campaign has one is asking which kind it is.
_EACH = [_attributes(kind) for kind in KINDS.values()]
KIND_SPECIFIC = frozenset(set.union(*_EACH) - set.intersection(*_EACH))


def _duck_typed(node: ast.Call) -> bool:
    if not (isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2):
        return False
    attribute = node.args[1]
    return "campaign" in ast.unparse(node.args[0]) or (isinstance(attribute, ast.Constant) and attribute.value in KIND_SPECIFIC)


def kind_checks(source: str, names: frozenset[str] = frozenset(KINDS)) -> list[tuple[int, str]]:
    """(line, what) for each place in `source` that names a kind or checks one by hand."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            # The name itself, or quoted inside a longer string (SQL: kind = 'purchase_offer').
            found += [(node.lineno, f"names the kind {name!r}") for name in sorted(names)
                      if node.value.strip() == name or f"'{name}'" in node.value or f'"{name}"' in node.value]
        elif isinstance(node, ast.Compare):
            found += [(node.lineno, f"compares {ast.unparse(side)}") for side in (node.left, *node.comparators)
                      if isinstance(side, ast.Attribute) and side.attr == "kind" and "campaign" in ast.unparse(side.value)]
        elif isinstance(node, ast.Call) and _duck_typed(node):
            found.append((node.lineno, f"asks {ast.unparse(node)} instead of the campaign's kind"))
    return sorted(found)


def offences(package: Path) -> list[str]:
    """Every kind check in the package's modules outside its campaigns/ (where kinds live)."""
    out = []
    for path in sorted(package.rglob("*.py")):
        if package / "campaigns" in path.parents:
            continue
        out += [f"{path.relative_to(package)}:{line}: {what}" for line, what in kind_checks(path.read_text(encoding="utf-8"))]
    return out


def test_no_module_outside_campaigns_names_a_kind() -> None:
    assert offences(PROMO) == []


def test_every_registered_kind_is_looked_for() -> None:
    assert set(KINDS) == {"purchase_offer", "donation_program"}  # a new kind is found by the scan without editing it
    assert all(kind_checks(f"x = {name!r}") for name in KINDS)


@pytest.mark.parametrize(("planted", "what"), [
    ('OFFER = "purchase_offer"', "names the kind 'purchase_offer'"),
    ("ROWS = \"SELECT id FROM campaigns WHERE kind = 'donation_program'\"", "names the kind 'donation_program'"),
    ('back = f"/console/{slug}" if stored.campaign.kind == OFFER else "/console/nonprofit/"',
     "compares stored.campaign.kind"),
    ("window = getattr(stored.campaign, 'redemption', None)",
     "asks getattr(stored.campaign, 'redemption', None) instead of the campaign's kind"),
    ("has_window = hasattr(campaign, 'redemption')",
     "asks hasattr(campaign, 'redemption') instead of the campaign's kind"),
    ("opens = c.program_start if hasattr(c, 'program_start') else None",
     "asks hasattr(c, 'program_start') instead of the campaign's kind"),
])
def test_a_planted_kind_check_is_found(planted: str, what: str) -> None:
    lines = (PROMO / "stock.py").read_text(encoding="utf-8").splitlines()
    assert kind_checks("\n".join([*lines, planted])) == [(len(lines) + 1, what)]


def test_the_scan_reads_every_module_but_the_kinds_own(tmp_path: Path) -> None:
    package = tmp_path / "promo"
    (package / "views").mkdir(parents=True)
    (package / "campaigns").mkdir()
    (package / "campaigns" / "purchase_offer.py").write_text('KIND = "purchase_offer"\n', encoding="utf-8")
    (package / "views" / "pages.py").write_text('"""Pages."""\n\nif campaign.kind != "purchase_offer":\n    pass\n',
                                                 encoding="utf-8")
    assert offences(package) == ["views/pages.py:3: compares campaign.kind", "views/pages.py:3: names the kind 'purchase_offer'"]

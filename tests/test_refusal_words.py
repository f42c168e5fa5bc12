"""Issue 15, item 10: a refusal tells the customer in plain words, in their language, what was
wrong and what they can do next; the rule id is only a folded reference for customer
service. Every reason the engine can give is driven through the redeem form of a real
`promo serve` (in English, Danish and Norwegian) and read as a person reads the page."""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from promo.catalog import shipped_catalog
from promo.i18n import Localizer
from promo.views import refusals
from tests.support.offer_shop import Shop, account, served_shop
from tests.support.pagetext import RULE_ID, read_page
from tests.support.refusal_cases import CASES, LANGUAGES, refusal_pages

ROOT = Path(__file__).resolve().parent.parent
ENGINE = (ROOT / "promo" / "campaigns" / "purchase_offer.py", ROOT / "promo" / "redemption.py")
PRODUCTS = {s.sku: s for s in shipped_catalog()}


# Reasons the redeem form cannot produce on its own: a race caught by a UNIQUE constraint
# (tests/system/test_concurrency.py), and a draft, whose redeem form does not exist (404, below).
# held_for_review is no refusal but a 202 (a person decides); its page is tested through the form in
# tests/test_account_addresses.py (a sub-address of a mailbox that already redeemed, R-X12).
# The two countries apart (R-X2), a record out of order (R-X1) and a key with no account (R-X5) are
# driven through the engine in tests/test_redemption.py, tests/test_rules.py and tests/test_review_web.py;
# here only their words and next steps are checked (below).
NOT_THROUGH_THE_FORM = {"already_redeemed", "campaign_not_published", "held_for_review", "purchase_country_not_eligible",
                        "activation_country_not_eligible", "activation_before_purchase", "key_not_bound"}


def engine_reasons() -> set[str]:
    """Every reason a Failure is built with in the engine (f-strings matched against MESSAGES)."""
    found = set()
    for path in ENGINE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                     and isinstance(node.value, ast.Constant) for target in node.targets if isinstance(target, ast.Name)}
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Failure" and len(call.args) >= 2:
                reason = call.args[1]
                if isinstance(reason, ast.Constant):
                    found.add(str(reason.value))
                elif isinstance(reason, ast.Name) and reason.id in constants:  # a module constant (HELD_FOR_REVIEW)
                    found.add(str(constants[reason.id]))
                elif isinstance(reason, ast.Name):  # a loop over literal tuples: `for what, reason, c in ((…), …)`
                    loops = [(loop.target.elts, loop.iter.elts) for loop in ast.walk(tree) if isinstance(loop, ast.For)
                             and isinstance(loop.target, ast.Tuple) and isinstance(loop.iter, ast.Tuple)
                             and any(isinstance(t, ast.Name) and t.id == reason.id for t in loop.target.elts)]
                    assert loops, ast.dump(reason)
                    for targets, rows in loops:
                        at = [i for i, t in enumerate(targets) if isinstance(t, ast.Name) and t.id == reason.id][0]
                        found |= {str(row.elts[at].value) for row in rows if isinstance(row, ast.Tuple)}
                elif isinstance(reason, ast.Subscript):
                    continue  # a stored failure rebuilt (an idempotent replay): not a new reason
                else:
                    assert isinstance(reason, ast.JoinedStr), ast.dump(reason)
                    pattern = "".join(re.escape(str(v.value)) if isinstance(v, ast.Constant) else r"\w+" for v in reason.values)
                    matches = {r for r in refusals.MESSAGES if re.fullmatch(pattern, r)}
                    assert matches, f"no customer message matches the reason {pattern}"
                    found |= matches
    return found


def test_every_reason_the_engine_gives_is_driven_here_or_explained_why_not() -> None:
    reasons = engine_reasons()
    assert reasons == set(CASES) | NOT_THROUGH_THE_FORM, "a new refusal reason needs a case here (and words in refusals.py)"
    assert reasons <= set(refusals.MESSAGES) and reasons <= set(refusals.NEXT_STEPS)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with served_shop(tmp_path_factory.mktemp("refusals")) as served:
        yield served


@pytest.fixture(scope="module")
def pages(shop: Shop) -> dict[tuple[str, str], tuple[int, str]]:
    return refusal_pages(shop)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("reason", sorted(CASES))
def test_a_refusal_says_what_was_wrong_and_what_to_do_next_without_a_rule_id(
        pages: dict[tuple[str, str], tuple[int, str]], reason: str, lang: str) -> None:
    case = CASES[reason]
    status, page = pages[(reason, lang)]
    assert status == (429 if reason == "too_many_attempts" else 422)
    item = re.search(rf'<li data-reason="{reason}">(.*?)</li>', page, re.S)
    assert item, f"{reason} is not among the refusals shown"
    l10n = Localizer(lang)
    words = read_page(f'<html lang="{lang}">{item.group(1)}</html>')
    what = html.unescape(re.search(r'<p class="what">(.*?)</p>', item.group(1), re.S).group(1)).strip()  # type: ignore[union-attr]
    next_step = html.unescape(re.search(r'<p class="next-step">(.*?)</p>', item.group(1), re.S).group(1))  # type: ignore[union-attr]
    # What was wrong, in the reader's language, never "R-X4" or an English engine message.
    assert what and not RULE_ID.search(what)
    if lang != "en":
        message = refusals.MESSAGES[reason]
        english = [part.strip() for part in re.split(r"%\(\w+\)s", message) if len(part.strip()) > 8]
        assert l10n.gettext(message) != message and not any(part in what for part in english)
    # What to do next, in the reader's language, with the link that helps (if any).
    step, action = refusals.NEXT_STEPS[reason]
    assert l10n.gettext(step) in " ".join(next_step.split())
    links = {"offer": f'href="/offers/{case.offer}"', "review": f'href="/offers/{case.offer}/review?product_key=',
             "rewards": 'href="/rewards"'}
    if action:
        assert links[action] in item.group(1)
    # The rule id is a reference folded away for support: in <details>, nowhere else on the page.
    assert words.folded.endswith(case.rule)
    whole = read_page(page)
    assert not RULE_ID.search(whole.text), RULE_ID.findall(whole.text)
    assert case.rule in whole.folded
    # Customer service for the country chosen on the form (R-X16), on every refusal.
    # A country without its own contact gets the general one, never named as that country's (R-X16).
    own = {"DK": "da-dk/contactus", "NO": "nb-no/contactus", "GB": "en-gb/contactus", "SE": "sv-se/contactus"}.get(case.country)
    support = re.search(r'<p class="support">(.*?)</p>', page, re.S)
    assert support
    if own:
        assert own in support.group(1) and l10n.country(case.country) in support.group(1)
    else:
        assert "support.microsoft.com/contactus" in support.group(1) and l10n.country(case.country) not in support.group(1)
    # Products by their name in this language, never by SKU id.
    if case.sku:
        assert PRODUCTS[case.sku].name_in(lang) in what
    assert not any(sku in whole.text for sku in PRODUCTS), "a SKU id on a customer's page"


def test_a_draft_has_no_redeem_form_to_refuse_from(shop: Shop) -> None:
    response = shop.redeem("draft", 19, as_account=account("winner"))
    assert response.status_code == 404 and "Traceback" not in response.text


def test_the_decision_log_keeps_the_rule_ids(shop: Shop, pages: dict[tuple[str, str], tuple[int, str]]) -> None:
    """The words changed for customers; support and auditors still find each refusal by rule."""
    logged = {r[0] for r in shop.conn.execute("SELECT failed_rules FROM redemption_attempts WHERE outcome = 'refused'")}
    for case in CASES.values():
        assert any(f" {case.rule} " in rules for rules in logged), case.rule

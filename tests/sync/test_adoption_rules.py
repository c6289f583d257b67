"""The adoption rules, one by one: which SSM record made before the connector is which Sage record."""
from __future__ import annotations

from typing import Optional

from shared.sync import adoption
from shared.sync.adoption import AMBIGUOUS, UNIQUE, adoptable, company_name, match
from shared.sync.binder import external_id


class Tenant:
    """A match context: the tenant's custom fields and the dossier's accounts already in SSM."""

    def __init__(self, custom: Optional[dict[str, list[str]]] = None, accounts: Optional[dict[str, int]] = None):
        self.custom = custom or {}
        self.accounts = accounts or {}

    def custom_field(self, resource: str, hints: tuple[str, ...]) -> Optional[str]:
        return next((n for n in self.custom.get(resource, []) if any(h in n.casefold() for h in hints)), None)

    def account_id(self, account_key: str) -> Optional[int]:
        return self.accounts.get(account_key)


def sage_account(key: str, name: str = "Bijouterie Lefèvre", postcode: str = "25000", siret: Optional[str] = None,
                 vat: Optional[str] = None) -> dict:
    return {"key": key, "kind": "client", "name": name, "postcode": postcode, "siret": siret, "vat_number": vat}


def ssm_account(id: int, name: str = "Autre nom", postcode: Optional[str] = None, **fields) -> dict:
    return {"id": id, "name": name, "postcode": postcode, "deleted": False, **fields}


def only(matches: list) -> adoption.Match:
    assert len(matches) == 1, matches
    return matches[0]


def test_siret_matches_the_tenants_siret_custom_field_whatever_its_spacing():
    found = only(match("account", [sage_account("LEFEVRE", siret="76059600516537")],
                       [ssm_account(7, "Nom saisi à la main", Z_SIRET="760 596 005 16537"), ssm_account(8)],
                       Tenant({"accounts": ["Z_SIRET"]})))
    assert (found.rule, found.status, found.ssm_id) == ("siret", UNIQUE, 7)


def test_siret_is_not_compared_when_the_tenant_has_no_siret_field():
    assert match("account", [sage_account("LEFEVRE", siret="76059600516537", name="A", postcode="1")],
                 [ssm_account(7, Z_SIRET="76059600516537")], Tenant()) == []


def test_vat_number_matches_vatnumber_case_and_spaces_aside():
    found = only(match("account", [sage_account("ECRIN", vat="FR65568112344")],
                       [ssm_account(3, vatNumber="fr 65 568 112 344")], Tenant()))
    assert (found.rule, found.ssm_id) == ("vat", 3)


def test_siren_of_the_siret_matches_the_siren_inside_a_french_vat_number():
    found = only(match("account", [sage_account("RUBIS", siret="40658455600017")],
                       [ssm_account(4, vatNumber="FR16406584556")], Tenant()))
    assert (found.rule, found.ssm_id) == ("siren", 4)


def test_name_and_postcode_match_without_accents_case_punctuation_or_legal_form():
    found = only(match("account", [sage_account("DUPRE", name="Maison Dupré & Fils", postcode="45000")],
                       [ssm_account(5, "MAISON DUPRE ET FILS SARL", "45 000"), ssm_account(6, "Maison Dupré", "45000")],
                       Tenant()))
    assert (found.rule, found.ssm_id) == ("name_postcode", 5)
    assert company_name("L’Écrin d’Émeraude SAS") == "l ecrin d emeraude"


def test_same_name_and_postcode_but_another_vat_number_is_another_firm():
    assert match("account", [sage_account("DUPRE", name="Dupré", postcode="45000", vat="FR87018293786")],
                 [ssm_account(5, "Dupré", "45000", vatNumber="FR11111111111")], Tenant()) == []


def test_a_stronger_rule_decides_before_a_weaker_one():
    found = only(match("account", [sage_account("COEUR", name="Horlogerie du Cœur", postcode="30000",
                                                vat="FR77305619376")],
                       [ssm_account(1, "Horlogerie du Coeur", "30000"), ssm_account(2, "Horlogerie", vatNumber="FR77305619376")],
                       Tenant()))
    assert (found.rule, found.ssm_id) == ("vat", 2)


def test_two_ssm_candidates_are_ambiguous_never_guessed():
    found = only(match("account", [sage_account("SAPHIR", name="Atelier Saphir", postcode="33000")],
                       [ssm_account(10, "Atelier Saphir", "33000"), ssm_account(11, "ATELIER SAPHIR", "33000")],
                       Tenant()))
    assert (found.status, found.candidates, found.ssm_id) == (AMBIGUOUS, (10, 11), None)


def test_two_sage_records_claiming_one_ssm_record_are_both_ambiguous():
    matches = match("account", [sage_account("A1", name="Atelier Saphir", postcode="33000"),
                                sage_account("A2", name="Atelier  Saphir", postcode="33000")],
                    [ssm_account(10, "Atelier Saphir", "33000")], Tenant())
    assert [(m.sage_key, m.status, m.contested_by) for m in matches] == [("A1", AMBIGUOUS, ("A2",)),
                                                                          ("A2", AMBIGUOUS, ("A1",))]


def test_a_contact_matches_by_email_within_its_own_account_only():
    sage = [{"key": "1", "account_key": "LEFEVRE", "email": "Raphael.Benoit1@lefevre.fr"},
            {"key": "2", "account_key": "ECRIN", "email": "raphael.benoit1@lefevre.fr"}]
    ssm = [{"id": 30, "accountId": {"id": 7, "value": "Lefèvre"}, "email": "raphael.benoit1@lefevre.fr"},
           {"id": 31, "accountId": 9, "email": "someone@else.fr"}]
    found = only(match("contact", sage, ssm, Tenant(accounts={"LEFEVRE": 7, "ECRIN": 9})))
    assert (found.sage_key, found.rule, found.ssm_id) == ("1", "email", 30)


def test_a_contact_of_an_account_ssm_does_not_hold_matches_nothing():
    assert match("contact", [{"key": "1", "account_key": "NEW", "email": "a@b.fr"}],
                 [{"id": 30, "accountId": 7, "email": "a@b.fr"}], Tenant()) == []


def test_a_product_matches_by_reference_in_model_or_in_a_reference_custom_field():
    sage = [{"key": "BAAR01", "name": "Bague"}, {"key": "COPE01", "name": "Collier"}]
    ssm = [{"id": 40, "model": " baar01", "description": "Bague saisie à la main"},
           {"id": 41, "model": "Collier de perles", "Z_SKU": "COPE01"}]
    matches = match("product", sage, ssm, Tenant({"products": ["Z_SKU"]}))
    assert [(m.sage_key, m.ssm_id) for m in matches] == [("BAAR01", 40), ("COPE01", 41)]


def test_records_linked_deleted_or_carrying_our_ext_id_are_not_adoptable_another_tools_are():
    records = [{"id": 1}, {"id": 2, "deleted": True}, {"id": 3}, {"id": 4, "extId": external_id("BIJOU", "X")},
               {"id": 5, "extId": external_id("AUTRE_DOSSIER", "Y")}, {"id": 6, "extId": "ERP-0042"}]
    kept = adoptable(records, linked_ids={3}, dossiers=["BIJOU", "AUTRE_DOSSIER"])
    assert [r["id"] for r in kept] == [1, 6]

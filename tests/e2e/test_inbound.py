"""SSM → Sage through the whole local pipeline: a sales rep works in SSM (over HTTP, with their own
keys), `ssm-connector local --once` cycles run, and both Sage (through pyodbc) and SSM are checked."""
from __future__ import annotations

from agent.demo_builder import update_row
from local.simulator.user import SsmUserSession
from shared.state.records import IncidentState
from shared.sync.binder import external_id

D = "BIJOU"


def rep_of(p, dossier=D) -> tuple[str, str]:
    row = p.sage(dossier, "SELECT CO_No, CO_EMail FROM F_COLLABORATEUR WHERE CO_EMail IS NOT NULL ORDER BY CO_No")[0]
    return str(row["CO_No"]), row["CO_EMail"].strip()


def session(p, email: str) -> SsmUserSession:
    return SsmUserSession(p.simulator.base_url, *p.simulator.user_credentials(email), email=email)


def writes(p) -> list:
    return [c for c in p.simulator.calls if c.method in ("POST", "PUT", "DELETE") and c.resource != "login"]


def new_tiers(p, dossier=D) -> list:
    return p.sage(dossier, "SELECT * FROM F_COMPTET WHERE CT_Num LIKE 'SSM%' ORDER BY CT_Num")


def test_a_prospect_created_in_ssm_appears_in_sage_and_links_back(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    co_no, email = rep_of(p)
    with session(p, email) as rep:
        ssm_id = rep.create_account("Bijoux Nouvelle Vague", phone="01 45 00 00 00", city="Dijon",
                                    email="contact@nouvellevague.fr", postcode="21000")

    summary = p.run()

    assert summary.ok, summary.render()
    [tiers] = new_tiers(p)
    assert (tiers["CT_Intitule"], tiers["CT_Type"], tiers["CT_Prospect"]) == ("Bijoux Nouvelle Vague", 0, 1)
    assert (tiers["CT_Telephone"], tiers["CT_Ville"], tiers["CT_CodePostal"]) == ("01 45 00 00 00", "Dijon", "21000")
    assert str(tiers["CO_No"]) == co_no                                   # the SSM owner's collaborator
    assert p.sage(D, "SELECT CG_Num FROM F_COMPTETG WHERE CT_Num = ?", (tiers["CT_Num"],))
    assert p.sage(D, "SELECT LI_Ville FROM F_LIVRAISON WHERE CT_Num = ?", (tiers["CT_Num"],))[0][0] == "Dijon"
    account = p.simulator.record("accounts", ssm_id)
    assert account["extId"] == external_id(D, tiers["CT_Num"])            # Sage's answer is in SSM
    assert p.runtime.store.get_link(D, "account", tiers["CT_Num"]).ssm_id == ssm_id
    assert len([a for a in p.simulator.records("accounts") if a["name"] == "Bijoux Nouvelle Vague"]) == 1

    p.simulator.reset_calls()
    modified = p.sage(D, "SELECT MAX(cbModification) FROM F_COMPTET")[0][0]
    assert p.run().ok
    assert writes(p) == []                                                # nothing changed: no SSM write
    assert p.sage(D, "SELECT MAX(cbModification) FROM F_COMPTET")[0][0] == modified   # and no Sage write

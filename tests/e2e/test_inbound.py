"""SSM → Sage through the whole local pipeline: a sales rep works in SSM (over HTTP, with their own
keys), `ssm-connector local --once` cycles run, and both Sage (through pyodbc) and SSM are checked."""
from __future__ import annotations

from agent.demo_builder import update_row
from local.simulator.user import SsmUserSession
from shared.state.records import IncidentState
from shared.status.report import StatusQuery, StatusReader
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
    [status] = StatusReader(p.runtime.store).report(StatusQuery(dossier=D)).dossiers
    [inbound] = [r for r in status.runs if r.direction == "ssm_to_sage"]       # the pass is a run of its own
    assert (inbound.counts["read"], inbound.counts["created"]) == (1, 1)
    assert status.commands == []                                          # the agent answered the command

    p.simulator.reset_calls()
    modified = p.sage(D, "SELECT MAX(cbModification) FROM F_COMPTET")[0][0]
    assert p.run().ok
    assert writes(p) == []                                                # nothing changed: no SSM write
    assert p.sage(D, "SELECT MAX(cbModification) FROM F_COMPTET")[0][0] == modified   # and no Sage write


def prospect_of(p, dossier=D) -> tuple[str, int]:
    key = p.sage(dossier, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 1 AND CT_Sommeil = 0"
                          " ORDER BY CT_Num")[0][0]
    return key, p.ssm_id(dossier, "account", key)


def test_a_prospect_edited_on_both_sides_keeps_sages_name_and_ssms_phone(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    key, ssm_id = prospect_of(p)
    _, email = rep_of(p)
    update_row(p.databases[D], "F_COMPTET", {"CT_Num": key}, {"CT_Intitule": "Nom choisi dans Sage"})
    with session(p, email) as rep:
        rep.edit_account(ssm_id, name="Nom choisi dans SSM", phone="03 80 11 22 33")

    assert p.run().ok

    [row] = p.sage(D, "SELECT CT_Intitule, CT_Telephone FROM F_COMPTET WHERE CT_Num = ?", (key,))
    assert tuple(row) == ("Nom choisi dans Sage", "03 80 11 22 33")
    account = p.simulator.record("accounts", ssm_id)
    assert (account["name"], account["phone"]) == ("Nom choisi dans Sage", "03 80 11 22 33")
    conflicts = p.runtime.store.list_journal(D, event="conflict")
    assert [(c.key, c.detail["field"], c.detail["winner"]) for c in conflicts] == [(key, "name", "sage")]


def test_a_conversion_to_client_in_ssm_is_refused_and_one_in_sage_shows_a_read_only_client(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    key, ssm_id = prospect_of(p)
    _, email = rep_of(p)
    with session(p, email) as rep:
        rep.convert_prospect_to_client(ssm_id)

    assert p.run().ok
    assert p.simulator.record("accounts", ssm_id)["typeId"]["value"] == "Prospect"
    assert p.sage(D, "SELECT CT_Prospect FROM F_COMPTET WHERE CT_Num = ?", (key,))[0][0] == 1
    assert [e.key for e in p.runtime.store.list_journal(D, event="ssm-change-undone")] == [key]

    update_row(p.databases[D], "F_COMPTET", {"CT_Num": key}, {"CT_Prospect": 0})
    assert p.run().ok
    account = p.simulator.record("accounts", ssm_id)
    assert (account["typeId"]["value"], account["readOnly"]) == ("Client", True)


def test_an_account_created_in_ssm_as_a_client_becomes_a_prospect_in_both(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    _, email = rep_of(p)
    with session(p, email) as rep:
        ssm_id = rep.create_account("Client déclaré dans SSM", prospect=False)

    assert p.run().ok
    [tiers] = new_tiers(p)
    assert tiers["CT_Prospect"] == 1
    assert p.simulator.record("accounts", ssm_id)["typeId"]["value"] == "Prospect"
    assert [e.key for e in p.runtime.store.list_journal(D, event="created-as-prospect")] == [tiers["CT_Num"]]


def test_a_client_edited_in_ssm_is_put_back_to_sages_values(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    key = p.sage(D, "SELECT CT_Num, CT_Ville FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0 ORDER BY CT_Num")[0]
    ssm_id = p.ssm_id(D, "account", key[0])
    p.simulator.store.update("accounts", ssm_id, {"city": "Ville changée dans SSM"})   # by the integration keys
    assert p.run().ok
    assert p.simulator.record("accounts", ssm_id)["city"] == key[1]
    assert p.sage(D, "SELECT CT_Ville FROM F_COMPTET WHERE CT_Num = ?", (key[0],))[0][0] == key[1]
    assert [e.key for e in p.runtime.store.list_journal(D, event="ssm-change-undone")] == [key[0]]


def test_a_contact_created_edited_and_deleted_in_ssm(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    key, account_id = prospect_of(p)
    _, email = rep_of(p)
    with session(p, email) as rep:
        contact_id = rep.create_contact(account_id, first_name="Inès", last_name="Garnier", email="ines@exemple.fr",
                                        phone1="01 23 45 67 89")
    assert p.run().ok
    [row] = p.sage(D, "SELECT * FROM F_CONTACTT WHERE CT_EMail = 'ines@exemple.fr'")
    assert (row["CT_Num"], row["CT_Prenom"], row["CT_Nom"], row["CT_Telephone"]) == (key, "Inès", "Garnier",
                                                                                      "01 23 45 67 89")
    assert p.simulator.record("contacts", contact_id)["extId"] == external_id(D, str(row["CT_No"]))

    with session(p, email) as rep:
        rep.edit_contact(contact_id, phone1="06 00 00 00 01")
    assert p.run().ok
    assert p.sage(D, "SELECT CT_Telephone FROM F_CONTACTT WHERE CT_No = ?", (row["CT_No"],))[0][0] == "06 00 00 00 01"

    with session(p, email) as rep:
        rep.delete_contact(contact_id)
    assert p.run().ok
    assert p.sage(D, "SELECT COUNT(*) FROM F_CONTACTT WHERE CT_No = ?", (row["CT_No"],))[0][0] == 1   # stays
    assert [e.key for e in p.runtime.store.list_journal(D, event="ssm-deletion-ignored")] == [str(row["CT_No"])]


def test_a_value_sage_cannot_hold_is_an_incident_naming_the_field_and_sage_is_unchanged(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    key, ssm_id = prospect_of(p)
    _, email = rep_of(p)
    before = p.sage(D, "SELECT * FROM F_COMPTET WHERE CT_Num = ?", (key,))[0]
    with session(p, email) as rep:
        rep.edit_account(ssm_id, city="Saint-Rémy-en-Bouzemont-Saint-Genest-et-Isson")   # 45 characters > 35

    assert p.run().ok
    assert tuple(p.sage(D, "SELECT * FROM F_COMPTET WHERE CT_Num = ?", (key,))[0]) == tuple(before)
    [incident] = [i for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN) if i.key == key]
    assert "city" in incident.message and "35" in incident.message

    with session(p, email) as rep:
        rep.edit_account(ssm_id, city="Saint-Rémy")                       # fixed in SSM: sent again
    assert p.run().ok
    assert p.sage(D, "SELECT CT_Ville FROM F_COMPTET WHERE CT_Num = ?", (key,))[0][0] == "Saint-Rémy"
    assert not [i for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN) if i.key == key]


def test_two_dossiers_are_routed_by_branch_and_a_record_of_no_dossier_is_an_incident(make_pipeline):
    branches = {}

    def second_branch(simulator):
        branches["lyon"] = simulator.add_record("branches", {"descriptionFR": "Agence de Lyon",
                                                             "descriptionEN": "Lyon office"})
        branches["nice"] = simulator.add_record("branches", {"descriptionFR": "Agence de Nice",
                                                             "descriptionEN": "Nice office"})
    p = make_pipeline(companies=("BIJOU", "ATELIER"), before_start=second_branch,
                      dossier_settings={"BIJOU": {"ssm_branch": "Siège"}, "ATELIER": {"ssm_branch": "Agence de Lyon"}})
    assert p.run().ok
    _, email = rep_of(p)
    with session(p, email) as rep:
        rep.create_account("Prospect de Besançon")                        # the default branch: Siège
        rep.create_account("Prospect de Lyon", branchId=branches["lyon"])
        lost = rep.create_account("Prospect de Nice", branchId=branches["nice"])

    assert p.run().ok
    assert [r["CT_Intitule"] for r in new_tiers(p, "BIJOU")] == ["Prospect de Besançon"]
    assert [r["CT_Intitule"] for r in new_tiers(p, "ATELIER")] == ["Prospect de Lyon"]
    [incident] = p.runtime.store.list_incidents("_group", state=IncidentState.OPEN)
    assert incident.key == f"ssm:{lost}" and "Agence de Nice" in incident.message and "ssm_branch" in incident.message
    assert p.simulator.record("accounts", lost)["extId"] is None          # nothing written anywhere


def test_a_deactivated_dossiers_ssm_changes_wait_and_are_applied_once_it_is_active_again(make_pipeline):
    from tests.e2e.test_dossier_activation import agent_command
    p = make_pipeline()
    assert p.run().ok
    key, ssm_id = prospect_of(p)
    _, email = rep_of(p)
    assert agent_command(p.config_path, "deselect", D) == 0
    assert p.run().ok
    with session(p, email) as rep:
        rep.edit_account(ssm_id, phone="05 56 00 00 00")
        rep.create_account("Créé pendant la pause")

    assert p.run().ok
    assert p.sage(D, "SELECT CT_Telephone FROM F_COMPTET WHERE CT_Num = ?", (key,))[0][0] != "05 56 00 00 00"
    assert new_tiers(p) == []

    assert agent_command(p.config_path, "select", D) == 0
    assert p.run().ok and p.run().ok            # the realignment, then what waited in SSM
    assert p.simulator.record("accounts", ssm_id)["phone"] == "05 56 00 00 00"     # not overwritten
    assert p.sage(D, "SELECT CT_Telephone FROM F_COMPTET WHERE CT_Num = ?", (key,))[0][0] == "05 56 00 00 00"
    assert [r["CT_Intitule"] for r in new_tiers(p)] == ["Créé pendant la pause"]


def test_an_agent_killed_while_applying_a_command_leaves_one_tiers(make_pipeline, monkeypatch):
    p = make_pipeline()
    assert p.run().ok
    _, email = rep_of(p)
    with session(p, email) as rep:
        ssm_id = rep.create_account("Prospect au crash")
    real_send = type(p.runtime.bus).send

    def crash_after_the_sage_commit(bus, queue, messages):
        if queue == p.settings.bus.changes_queue and any("results" in m.application_properties for m in messages):
            raise KeyboardInterrupt("the agent is killed")               # Sage committed, nothing sent
        return real_send(bus, queue, messages)
    monkeypatch.setattr(type(p.runtime.bus), "send", crash_after_the_sage_commit)
    p.runtime.pass_ssm_changes()
    try:
        p.runtime.run_agent()
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert len(new_tiers(p)) == 1                                       # written once, its answer lost

    assert p.run().ok
    [tiers] = new_tiers(p)
    assert p.simulator.record("accounts", ssm_id)["extId"] == external_id(D, tiers["CT_Num"])
    assert len([a for a in p.simulator.records("accounts") if a["name"] == "Prospect au crash"]) == 1

"""Records that cannot be synced become incidents (or retries) while the others go on; a later
success resolves them; nothing is dropped."""
from __future__ import annotations

import datetime as dt

from shared.models import Entity
from shared.state.records import IncidentState
from tests.sync.records import client, contact, document, family, line, only, product, writes


def ssm_refuses_for_now(sim, resource: str) -> None:
    """SSM answers reads but fails every create of `resource` (503) until the faults are cleared."""
    sim.faults.fail_next(503, count=1000, method="POST", resource=resource)


def test_a_contact_whose_account_never_reached_the_cloud_is_an_incident_at_once_and_sent_with_the_account(
        sim, service, agent, store):
    start = agent.start()
    service.apply_batch(agent.batch(start))
    early = agent.changes(contact())

    outcome = service.apply_batch(early)

    assert not outcome.needs_redelivery and (outcome.waiting, outcome.retry) == (1, [])
    incident = store.get_incident("BIJOU", "contact", "7", "create")
    assert incident.state is IncidentState.OPEN and incident.next_attempt_at is None and incident.replay_at is None
    assert incident.message.startswith("Le contact « 7 » fait référence au compte « C001 », qui n'existe pas "
                                       "dans Sage")
    assert incident.waiting_for == "account:C001" and incident.parked["key"] == "7"
    assert sim.records("contacts") == []

    applied = service.apply_batch(agent.changes(client()))     # the account appears in Sage: sent, then its contact

    assert applied.applied == 1 and [i.key for i in applied.released] == ["7"]
    account = only(sim.records("accounts"), extId="BIJOU:C001")
    assert only(sim.records("contacts"), extId="BIJOU:7")["accountId"]["id"] == account["id"]
    assert store.get_incident("BIJOU", "contact", "7", "create").state is IncidentState.RESOLVED


def test_a_contact_whose_account_is_known_but_refused_waits_for_it_and_follows_its_fix_at_once(
        sim, service, agent, store):
    sim.reject_field("accounts", "name", lambda value: value == "Refusé SA", "Nom refusé")
    outcome = service.apply_batch(agent.run(client(name="Refusé SA"), contact()))  # one batch: the account first

    assert (outcome.failed, outcome.waiting, outcome.retry) == (1, 1, [])
    waiting = store.get_incident("BIJOU", "contact", "7", "create")
    assert waiting.message.startswith("Le contact « 7 » fait référence au compte « C001 », qui n'est pas encore "
                                      "dans SSM (voir son incident)")
    assert waiting.replay_at is not None                 # a temporary wait is also tried on the replay schedule

    sim.clear_rejections()
    fixed = service.apply_batch(agent.run(client(name="Corrigé SA")))

    assert fixed.applied == 1 and len(sim.records("contacts")) == 1
    assert store.list_incidents("BIJOU", state=IncidentState.OPEN) == []


def test_a_contact_whose_account_fails_for_now_in_the_same_batch_goes_with_the_batchs_redelivery(
        sim, service, agent, store):
    ssm_refuses_for_now(sim, "accounts")
    batch = agent.run(client(), contact())

    outcome = service.apply_batch(batch)

    assert [record[:2] for record in outcome.retry] == [("account", "C001"), ("contact", "7")]
    sim.faults.clear()
    again = service.apply_batch(batch, delivery_count=2)
    assert again.applied == 2 and not again.needs_redelivery
    assert store.list_incidents("BIJOU", state=IncidentState.OPEN) == []


def test_a_contact_and_its_account_in_one_batch_are_applied_in_dependency_order(sim, service, agent):
    outcome = service.apply_batch(agent.run(contact(), client()))
    assert outcome.applied == 2 and not outcome.retry


def test_an_order_whose_article_is_missing_is_an_incident_at_once_without_writing_half_a_document(
        sim, service, agent, store):
    service.apply_batch(agent.run(client()))
    sim.reset_calls()

    outcome = service.apply_batch(agent.run(document(Entity.ORDER, "BC5", [line("1", 1)])))

    assert outcome.waiting == 1 and not outcome.retry and writes(sim) == []
    [incident] = store.list_incidents("BIJOU", state=IncidentState.OPEN)
    assert (incident.entity, incident.waiting_for) == ("order", "product:BAG-OR-18")
    assert "l'article « BAG-OR-18 », qui n'existe pas dans Sage" in incident.message


def test_ssm_refusing_one_record_makes_an_incident_while_the_others_sync(sim, service, agent, store):
    sim.reject_field("accounts", "name", lambda v: v == "Refusé SA", "Le nom 'Refusé SA' est interdit")
    batch = agent.run(client("C1", "Alpha"), client("C2", "Refusé SA"), client("C3", "Gamma"))

    outcome = service.apply_batch(batch)

    assert (outcome.applied, outcome.failed, outcome.retry) == (2, 1, [])
    assert {r["extId"] for r in sim.records("accounts")} == {"BIJOU:C1", "BIJOU:C3"}
    incident = store.get_incident("BIJOU", "account", "C2", "create")
    assert incident.state is IncidentState.OPEN and "Refusé SA' est interdit" in incident.message
    run = store.get_run("BIJOU", agent.run_id)
    assert run.state.value == "partial" and run.counts["failed"] == 1

    sim.clear_rejections()
    later = service.apply_batch(agent.run(client("C2", "Refusé SA")))
    assert later.applied == 1
    assert store.get_incident("BIJOU", "account", "C2", "create").state is IncidentState.RESOLVED
    assert store.get_run("BIJOU", agent.run_id).state.value == "succeeded"


def test_a_row_the_agent_could_not_map_is_an_incident_with_the_agents_words(service, agent, store):
    outcome = service.apply_batch(agent.run(agent.invalid("account", "C9", "CT_EMail 'bad' is not an e-mail")))
    assert outcome.failed == 1
    incident = store.get_incident("BIJOU", "account", "C9", "read")
    assert incident.message == "CT_EMail 'bad' is not an e-mail"


def test_a_record_that_fails_validation_is_an_incident_naming_the_field(service, agent, store):
    bad = agent.upsert(client())
    bad = bad.model_copy(update={"record": {**bad.record, "name": "x" * 80}})
    outcome = service.apply_batch(agent.run(bad))
    assert outcome.failed == 1
    assert "name" in store.list_incidents("BIJOU")[0].message


def test_changes_of_a_dossier_the_store_does_not_know_connect_it_as_a_dossier_whose_state_was_lost(sim, service,
                                                                                                   store):
    from tests.sync.conftest import AgentScript
    ghost = AgentScript("GHOST")
    outcome = service.apply_batch(ghost.changes(client()))

    assert outcome.applied == 1 and [a["extId"] for a in sim.records("accounts")] == ["GHOST:C001"]
    assert store.list_incidents("_group") == []
    assert store.get_dossier("GHOST").active
    assert [e.event for e in store.list_journal("GHOST", event="state-lost")] == ["state-lost"]


def test_the_same_sage_key_in_two_dossiers_is_two_ssm_records(sim, service, store):
    from tests.sync.conftest import AgentScript
    for dossier in ("BIJOU", "ORFEVRE"):
        service.apply_batch(AgentScript(dossier).run(client("C001", f"Client de {dossier}")))

    names = {r["extId"]: r["name"] for r in sim.records("accounts")}
    assert names == {"BIJOU:C001": "Client de BIJOU", "ORFEVRE:C001": "Client de ORFEVRE"}
    assert store.get_link("BIJOU", "account", "C001").ssm_id != store.get_link("ORFEVRE", "account", "C001").ssm_id


def test_a_deactivated_dossier_applies_nothing_and_says_so(sim, service, agent, store):
    service.apply_batch(agent.run(client()))
    store.upsert_dossier(store.get_dossier("BIJOU").model_copy(update={"active": False}))
    sim.reset_calls()

    outcome = service.apply_batch(agent.run(client(city="Nice")))

    assert writes(sim) == [] and outcome.applied == 0 and outcome.ignored >= 1
    assert store.list_journal("BIJOU", event="dossier-inactive")


def test_the_run_start_registers_the_dossier_and_the_first_run_end_marks_the_first_load(service, agent, store):
    service.apply_batch(agent.batch(agent.start()))
    dossier = store.get_dossier("BIJOU")
    assert dossier.active and not dossier.first_load_done

    service.apply_batch(agent.batch(agent.end(read=0)))
    assert store.get_dossier("BIJOU").first_load_done
    assert store.get_run("BIJOU", agent.run_id).message == "relevé de l'agent : lus 0"


def test_a_run_end_behind_a_retry_waits_for_the_redelivery(sim, service, agent, store):
    ssm_refuses_for_now(sim, "accounts")
    outcome = service.apply_batch(agent.run(client()))
    assert outcome.needs_redelivery
    assert store.get_run("BIJOU", agent.run_id).ended_at is None
    assert not store.get_dossier("BIJOU").first_load_done


def test_a_dead_lettered_batch_leaves_incidents_for_what_was_not_applied(sim, service, agent, store):
    ssm_refuses_for_now(sim, "contacts")
    batch = agent.run(client(), contact("8"))
    outcome = service.apply_batch(batch)
    assert outcome.retry

    service.record_dead_letter(batch.to_bytes(), reason="MaxDeliveryCountExceeded")

    incident = store.get_incident("BIJOU", "contact", "8", "create")
    assert incident.dead_lettered and incident.state is IncidentState.OPEN
    assert incident.message.endswith(" Modification mise de côté après plusieurs tentatives, réessayée "
                                     "automatiquement, la première fois le "
                                     f"{incident.replay_at:%d/%m/%Y %H:%M} (UTC) ; une nouvelle modification dans "
                                     "Sage ou un réalignement l'envoie aussi.")
    assert incident.parked["key"] == "8" and incident.parked["record"]["account_key"] == "C001"
    assert abs(incident.replay_at - incident.last_seen - dt.timedelta(minutes=15)) < dt.timedelta(seconds=5)
    assert store.get_incident("BIJOU", "account", "C001", "create") is None
    run = store.get_run("BIJOU", agent.run_id)
    assert run.state.value == "partial" and run.ended_at is not None


def test_a_dead_lettered_body_that_is_not_a_batch_is_one_group_incident(service, store):
    service.record_dead_letter(b"\x00not json", reason="undecodable", description="bad bytes")
    [incident] = store.list_incidents("_group")
    assert incident.dead_lettered and "undecodable: bad bytes" in incident.message


def test_a_quote_from_sage_is_linked_when_ssm_has_it_else_left_alone_without_a_journal_line(sim, service, agent,
                                                                                               store):
    service.apply_batch(agent.run(client()))
    account = only(sim.records("accounts"), extId="BIJOU:C001")
    quote_id = sim.add_record("salesorders", {"reference": "Devis 1", "branchId": sim.branch_id,
                                              "salesRepId": sim.admin_id, "accountId": account["id"],
                                              "extId": "BIJOU:0:DE1"})
    sim.reset_calls()

    outcome = service.apply_batch(agent.run(document(Entity.QUOTE, "DE1"), document(Entity.QUOTE, "DE2")))

    assert writes(sim) == []
    assert store.get_link("BIJOU", "quote", "0:DE1").ssm_id == quote_id
    assert store.get_link("BIJOU", "quote", "0:DE2").ssm_id is None
    assert store.get_link("BIJOU", "quote", "0:DE2").base == {"_ignored": True}
    assert store.list_journal("BIJOU", entity="quote") == []          # no line per Sage quote: nothing to act on
    assert (outcome.applied, outcome.ignored) == (1, 1)
    sim.reset_calls()
    again = service.apply_batch(agent.changes(document(Entity.QUOTE, "DE1"), document(Entity.QUOTE, "DE2")))
    assert sim.call_count() == 0 and again.skipped_unchanged == 2


def test_a_realignment_after_lost_state_binds_existing_records_instead_of_duplicating(sim, service, agent,
                                                                                    make_store, make_service):
    service.apply_batch(agent.run(client(), contact(), family(), product(),
                                  document(Entity.ORDER, "BC1", [line("1", 1)])))
    account = only(sim.records("accounts"), extId="BIJOU:C001")
    sim.store.update("accounts", account["id"], {"city": "Ailleurs", "comment": "gardé"})
    fresh = make_service(make_store("restored.db"))
    sim.reset_calls()

    outcome = fresh.apply_batch(agent.run(client(), contact(), family(), product(),
                                          document(Entity.ORDER, "BC1", [line("1", 1)]), realignment=True))

    assert not outcome.retry and outcome.failed == 0
    for resource in ("accounts", "contacts", "productFamilies", "products", "salesorders"):
        assert len(sim.records(resource)) == 1, resource
    assert sim.call_count("POST", "accounts") == 0
    account = sim.record("accounts", account["id"])
    assert (account["city"], account["comment"]) == ("Paris", "gardé")


def test_a_realignment_recreates_a_contact_deleted_in_ssm(sim, service, agent, store):
    service.apply_batch(agent.run(client(), contact()))
    person = only(sim.records("contacts"), extId="BIJOU:7")
    sim.store.delete("contacts", person["id"])

    service.apply_batch(agent.run(client(), contact(phone="01 11 11 11 11")))
    assert only(sim.records("contacts"), extId="BIJOU:7", deleted=True)
    assert store.list_journal("BIJOU", event="ssm-deletion-ignored")

    service.apply_batch(agent.run(client(), contact(phone="01 11 11 11 11"), realignment=True))
    revived = only(sim.records("contacts"), extId="BIJOU:7")
    assert revived["id"] != person["id"] and revived["phone1"] == "01 11 11 11 11"


def test_a_redelivered_realignment_batch_writes_nothing_twice(sim, service, agent):
    service.apply_batch(agent.run(client(), family(), product()))
    batch = agent.run(client(), family(), product(), realignment=True)
    service.apply_batch(batch)
    sim.reset_calls()

    again = service.apply_batch(batch, delivery_count=2)

    assert writes(sim) == [] and sim.call_count("GET") == 0 and again.skipped_unchanged == 3

"""The SSM client against the simulator over real HTTP: paging, sessions, retries, errors, secrets."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from pydantic import SecretStr

from local.simulator import DROP, TIMEOUT
from shared.config import SsmSettings
from shared.errors import SsmAuthError, SsmMissingError, SsmRecordError, SsmRetryableError
from shared.ssm import SsmClient
from shared.ssm.client import iso_millis, quote, retry_after_seconds


def _seed_accounts(sim, count: int, prefix: str = "Compte") -> list[int]:
    return [sim.add_record("accounts", {"name": f"{prefix} {n:04d}", "branchId": sim.branch_id,
                                        "salesRepId1": sim.admin_id, "extId": f"D1:{prefix}{n}"})
            for n in range(count)]


# --- paging ---------------------------------------------------------------------------------
def test_list_reads_every_record_across_many_pages(sim, make_client):
    ids = _seed_accounts(sim, 523)
    client = make_client(page_size=50)

    rows = list(client.list("accounts"))

    assert [row["id"] for row in rows] == ids
    pages = [c for c in sim.calls if c.resource == "accounts"]
    assert [int(c.query["page"]) for c in pages] == list(range(11))   # 10 full pages + 23 records


def test_list_on_exact_multiple_stops_at_the_empty_page(sim, make_client):
    _seed_accounts(sim, 200)
    client = make_client(page_size=50)

    assert len(list(client.list("accounts"))) == 200
    assert sim.call_count("GET", "accounts") == 5          # 4 pages of 50, then the empty page


def test_list_is_not_fooled_by_a_server_that_caps_the_page_size(sim, make_client):
    ids = _seed_accounts(sim, 230)
    sim.max_page_size = 50              # SSM would answer 50 records whatever was asked
    client = make_client(page_size=100)

    assert [row["id"] for row in client.list("accounts")] == ids


def test_list_passes_where_and_order(sim, client):
    _seed_accounts(sim, 30)
    rows = list(client.list("accounts", where='name LIKE "Compte 001%"', order="name"))
    assert [r["name"] for r in rows] == [f"Compte {n:04d}" for n in range(19, 9, -1)]   # order: descending


def test_changed_since_returns_exactly_the_changed_records(sim, clock, client, account_body):
    untouched = [client.create("accounts", account_body(f"Old {n}")) for n in range(3)]
    edited = client.create("accounts", account_body("Edited"))
    deleted = client.create("accounts", account_body("Deleted"))
    since = clock()
    clock.advance(5)
    client.update("accounts", edited, {"phone": "01 02 03 04 05"})
    client.delete("accounts", deleted)
    created = client.create("accounts", account_body("New"))

    changed = {row["id"] for row in client.changed_since("accounts", since)}

    assert changed == {edited, deleted, created}
    assert not changed & set(untouched)


def test_changed_since_rounds_down_so_nothing_is_missed(sim, clock, client, account_body):
    record = client.create("accounts", account_body("Same millisecond"))
    created_at = sim.record("accounts", record)["dateCreated"]
    since = clock() + timedelta(microseconds=600)       # same millisecond as the creation
    assert iso_millis(since) == "2024-01-15T09:00:00.000Z" and created_at == "2024-01-15T09:00:00Z"
    clock.advance(0.001)
    client.update("accounts", record, {"city": "Lyon"})
    assert [r["id"] for r in client.changed_since("accounts", since)] == [record]


# --- reading and writing one record ---------------------------------------------------------
def test_create_get_partial_update_and_soft_delete(sim, client, account_body):
    sim.add_custom_field("accounts", "Z_Segment", "string")
    new_id = client.create("accounts", account_body("Durand SA", city="Paris", Z_Segment="PME"))
    client.update("accounts", new_id, {"city": "Lyon"})

    record = client.get("accounts", new_id)
    assert (record["name"], record["city"], record["Z_Segment"]) == ("Durand SA", "Lyon", "PME")

    client.delete("accounts", new_id)
    client.delete("accounts", new_id)              # already deleted: fine
    assert client.get("accounts", new_id)["deleted"] is True


def test_update_with_no_fields_sends_nothing(sim, client, account_body):
    new_id = client.create("accounts", account_body("Rien"))
    sim.reset_calls()
    client.update("accounts", new_id, {})
    assert sim.call_count() == 0


def test_an_unknown_id_answered_400_is_told_apart_from_a_refusal(sim, client, account_body):
    with pytest.raises(SsmMissingError) as caught:
        client.get("accounts", 999999)
    assert caught.value.status == 400                  # SSM's answer to an unknown id
    assert caught.value.user_message == "Le compte 999999 : aucune fiche dans SSM."
    with pytest.raises(SsmMissingError):
        client.update("accounts", 999999, {"city": "Lyon"})

    gone = client.create("accounts", account_body("Partie"))
    client.delete("accounts", gone)
    with pytest.raises(SsmMissingError) as caught:
        client.update("accounts", gone, {"city": "Lyon"})
    assert caught.value.user_message == f"Le compte {gone} : fiche supprimée dans SSM."

    live = client.create("accounts", account_body("Vivante"))
    with pytest.raises(SsmRecordError) as caught:
        client.update("accounts", live, {"city": 12})     # a refusal of a record that exists
    assert not isinstance(caught.value, SsmMissingError)


def test_delete_unknown_or_deleted_id_is_not_an_error(client, account_body):
    client.delete("contacts", 999999)
    gone = client.create("accounts", account_body("Partie"))
    client.delete("accounts", gone)
    client.delete("accounts", gone)


def test_find_by_ext_id_is_exact_and_sees_deleted_records(sim, client, account_body):
    quoted = client.create("accounts", account_body("L'Atelier", extId="D1:L'AT"))
    other_case = client.create("accounts", account_body("Lower", extId="d1:l'at"))
    sim.reset_calls()
    assert set(client.find_by_ext_ids("accounts", ["D1:L'AT", "d1:l'at", "D1:NONE"])) == {"D1:L'AT", "d1:l'at"}
    assert sim.call_count("GET", "accounts") == 1      # one read, the documented OR form
    assert client.find_by_ext_id("accounts", "D1:L'AT")["id"] == quoted
    assert client.find_by_ext_id("accounts", "d1:l'at")["id"] == other_case
    client.delete("accounts", quoted)
    found = client.find_by_ext_id("accounts", "D1:L'AT")
    assert found["id"] == quoted and found["deleted"] is True
    assert client.find_by_ext_id("accounts", "D1:NOPE") is None


def test_lookups_by_description_are_cached_per_client(sim, client):
    assert client.lookup_id("accountTypes", "Prospect") == sim.account_type_ids["Prospect"]
    assert client.lookup_id("accountTypes", "  client ") == sim.account_type_ids["Client"]
    assert client.lookup_id("salesorderStatuses", "Brouillon - En attente") == \
        sim.status_ids["Brouillon – En attente"]
    assert client.lookup_id("branches", "Siège") == sim.branch_id
    assert client.lookup_id("currencies", "EUR") == sim.currency_id    # by its isoCode
    assert sim.call_count("GET", "accountTypes") == 1

    with pytest.raises(SsmRecordError) as caught:
        client.lookup_id("accountTypes", "Fournisseur")
    assert "« Client »" in caught.value.user_message and "« Prospect »" in caught.value.user_message


# --- sessions -------------------------------------------------------------------------------
def test_logs_in_again_once_when_the_session_expires(sim, client, account_body):
    new_id = client.create("accounts", account_body("Session"))
    sim.expire_sessions()

    assert client.get("accounts", new_id)["name"] == "Session"
    assert sim.call_count("POST", "login") == 2
    assert client.stats.logins == 2


def test_logs_in_again_after_the_session_lifetime(sim, clock, client):
    sim.session_ttl_s = 60
    list(client.list("branches"))
    clock.advance(61)
    list(client.list("branches"))
    assert sim.call_count("POST", "login") == 2
    assert [c.status for c in sim.calls if c.resource == "branches"] == [200, 401, 200]


def test_a_401_right_after_a_fresh_login_is_an_auth_error(sim, client):
    sim.faults.fail_next(401, count=2, resource="accounts")
    with pytest.raises(SsmAuthError) as caught:
        client.get("accounts", 1)
    assert "clés d'intégration" in caught.value.user_message
    assert sim.call_count("POST", "login") == 2


def test_refused_keys_are_an_auth_error_without_retries(sim, make_client):
    client = make_client(private_key="not-the-key")
    with pytest.raises(SsmAuthError) as caught:
        list(client.list("accounts"))
    assert "vérifiez les clés publique et privée de SSM" in caught.value.user_message
    assert sim.call_count("POST", "login") == 1
    assert sim.call_count(resource="accounts") == 0


# --- transient failures ---------------------------------------------------------------------
def test_429_waits_for_retry_after_then_succeeds(sim, make_client, recording_sleep):
    client = make_client(sleep=recording_sleep)
    list(client.list("branches"))
    sim.faults.fail_next(429, count=2, resource="branches")

    assert len(list(client.list("branches"))) == 1
    assert recording_sleep.delays == [pytest.approx(1.0, abs=0.05)] * 2
    assert client.stats.throttled == 2


def test_rate_limit_window_is_honoured_over_real_time(sim, make_client, recording_sleep):
    sleep = recording_sleep
    sleep.real = True
    client = make_client(sleep=sleep)
    list(client.list("branches"))
    sim.faults.rate_limit_per_s = 3
    sim.reset_calls()

    results = [len(list(client.list("branches"))) for _ in range(6)]

    assert results == [1] * 6
    throttled = [c for c in sim.calls if c.status == 429]
    assert throttled and client.stats.throttled == len(throttled)
    assert any(0.5 < d <= 1.0 for d in sleep.delays)    # Retry-After: 1, waited as asked
    assert sim.call_count("GET", "branches") == 6 + len(throttled)


def test_client_rate_limiter_stays_under_the_server_limit(sim, make_client):
    client = make_client(rate_limit_per_s=4.0)
    list(client.list("branches"))
    sim.faults.rate_limit_per_s = 6
    for _ in range(7):
        list(client.list("branches"))
    assert client.stats.throttled == 0


def test_retry_after_as_http_date_and_as_seconds():
    from datetime import datetime, timezone
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Mon, 01 Jan 2024 12:00:07 GMT", now=now) == 7.0
    assert retry_after_seconds("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_5xx_storm_gives_up_after_bounded_retries_with_a_clear_message(sim, make_client, recording_sleep):
    client = make_client(max_retries=3, backoff_base_s=0.2, backoff_max_s=0.5, sleep=recording_sleep)
    list(client.list("branches"))
    sim.faults.error_rate = 1.0

    with pytest.raises(SsmRetryableError) as caught:
        client.get("branches", sim.branch_id)

    error = caught.value
    assert error.status in (500, 502, 503)
    assert error.user_message == f"SSM n'a pas répondu après 4 tentatives (HTTP {error.status})." or \
        error.user_message.startswith("SSM a signalé une erreur de base de données")
    assert sim.call_count("GET", "branches") == 1 + 4
    assert len(recording_sleep.delays) == 3
    assert all(0 <= d <= cap for d, cap in zip(recording_sleep.delays, (0.2, 0.4, 0.5)))


def test_5xx_at_30_percent_still_reads_everything(sim, make_client):
    ids = _seed_accounts(sim, 300)
    client = make_client(page_size=20, max_retries=8)
    sim.faults.error_rate = 0.3

    assert [row["id"] for row in client.list("accounts")] == ids
    assert client.stats.retries > 0
    assert client.stats.server_errors == client.stats.retries


def test_a_timeout_is_retried(sim, make_client):
    client = make_client(timeout_s=0.3)
    list(client.list("branches"))
    sim.faults.timeout_hold_s = 1.0
    sim.faults.fail_next(TIMEOUT, resource="branches")

    assert client.get("branches", sim.branch_id)["descriptionFR"] == "Siège"
    assert client.stats.timeouts == 1


def test_timeouts_at_every_attempt_end_in_a_clear_failure(sim, make_client):
    client = make_client(timeout_s=0.2, max_retries=1)
    list(client.list("branches"))
    sim.faults.timeout_hold_s = 0.6
    sim.faults.timeout_rate = 1.0

    with pytest.raises(SsmRetryableError) as caught:
        client.get("branches", sim.branch_id)
    assert caught.value.user_message == "SSM n'a pas répondu après 2 tentatives (aucune réponse en 0.2 s)."


def test_a_dropped_connection_is_retried(sim, client):
    list(client.list("branches"))
    sim.faults.fail_next(DROP, resource="branches")
    assert client.get("branches", sim.branch_id)["id"] == sim.branch_id


# --- no duplicates on retried creates -------------------------------------------------------
def test_create_whose_answer_was_lost_binds_to_the_record_ssm_created(sim, make_client, account_body):
    client = make_client(timeout_s=0.3)
    sim.faults.timeout_hold_s = 1.0
    sim.faults.fail_next(TIMEOUT, method="POST", resource="accounts")

    new_id = client.create("accounts", account_body("Perdu SARL", extId="D1:PERDU"))

    created = [r for r in sim.records("accounts") if r["extId"] == "D1:PERDU"]
    assert [r["id"] for r in created] == [new_id]
    assert sim.call_count("POST", "accounts") == 1
    assert client.stats.recovered_creates == 1


def test_creates_under_timeouts_and_5xx_never_duplicate(sim, make_client, account_body):
    client = make_client(timeout_s=0.15, max_retries=10)
    list(client.list("branches"))
    sim.faults.timeout_hold_s = 0.4
    sim.faults.methods = frozenset({"POST"})
    sim.faults.error_rate = 0.2
    sim.faults.timeout_rate = 0.3

    ids = {n: client.create("accounts", account_body(f"Lot {n}", extId=f"D1:LOT{n}")) for n in range(15)}

    by_ext = {}
    for record in sim.records("accounts"):
        by_ext.setdefault(record["extId"], []).append(record["id"])
    assert by_ext == {f"D1:LOT{n}": [ids[n]] for n in range(15)}
    assert client.stats.timeouts > 0 and client.stats.server_errors > 0


def test_reads_under_30_percent_timeouts_get_everything(sim, make_client):
    ids = _seed_accounts(sim, 120)
    client = make_client(timeout_s=0.15, max_retries=10, page_size=20)
    list(client.list("branches"))
    sim.faults.timeout_hold_s = 0.4
    sim.faults.timeout_rate = 0.3

    assert [row["id"] for row in client.list("accounts")] == ids
    assert client.stats.timeouts > 0


def test_create_refused_by_a_5xx_is_sent_again_once_checked(sim, client, account_body):
    sim.faults.fail_next(503, method="POST", resource="accounts")
    new_id = client.create("accounts", account_body("Retry SARL", extId="D1:RETRY"))
    assert [r["id"] for r in sim.records("accounts") if r["extId"] == "D1:RETRY"] == [new_id]
    assert sim.call_count("POST", "accounts") == 2


def test_create_without_ext_id_is_not_sent_twice_after_an_unclear_failure(sim, client, account_body):
    sim.faults.fail_next(502, method="POST", resource="accounts")
    with pytest.raises(SsmRetryableError) as caught:
        client.create("accounts", account_body("Sans extId"))
    assert "pour éviter un doublon" in caught.value.user_message
    assert sim.call_count("POST", "accounts") == 1


def test_create_after_a_429_is_simply_sent_again(sim, make_client, account_body, recording_sleep):
    client = make_client(sleep=recording_sleep)
    sim.faults.fail_next(429, method="POST", resource="accounts")
    client.create("accounts", account_body("Sans extId"))
    assert sim.call_count("POST", "accounts") == 2 and len(sim.records("accounts")) == 1


# --- errors SSM gives -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["message", "Message", "statusCode"])
def test_a_400_in_each_documented_shape_quotes_ssm(sim, client, shape):
    sim.error_shape = shape
    with pytest.raises(SsmRecordError) as caught:
        client.create("accounts", {"name": "Sans agence", "salesRepId1": sim.admin_id})
    assert caught.value.status == 400
    assert caught.value.user_message == "SSM a refusé le compte : « The field 'branchId' is required »"


def test_a_value_ssm_refuses_fails_only_that_record(sim, client, account_body):
    sim.reject_field("accounts", "phone", lambda v: not v.replace(" ", "").isdigit(),
                     "The phone number is not valid")
    with pytest.raises(SsmRecordError) as caught:
        client.create("accounts", account_body("Mauvais", phone="appeler Paul"))
    assert caught.value.user_message == "SSM a refusé le compte : « The phone number is not valid »"
    assert client.create("accounts", account_body("Bon", phone="01 02 03 04 05"))


def test_a_reference_to_a_missing_record_carries_code_910(sim, client):
    with pytest.raises(SsmRecordError) as caught:
        client.create("contacts", {"accountId": 999999, "firstName": "Jean", "lastName": "Orphelin",
                                   "salesRepId": sim.admin_id})
    assert caught.value.code == 910
    assert "la fiche renvoie à un élément que SSM n'a pas" in caught.value.user_message


def test_a_filter_ssm_cannot_run_is_code_901(client):
    with pytest.raises(SsmRecordError) as caught:
        list(client.list("accounts", where='nope="x"'))
    assert caught.value.code == 901
    assert caught.value.user_message.startswith("SSM n'a pas pu exécuter la requête sur « accounts »")


def test_writing_a_list_the_api_only_reads_is_refused(client):
    with pytest.raises(SsmRecordError) as caught:
        client.create("branches", {"descriptionFR": "Agence de Lyon"})
    assert caught.value.status == 400


# --- concurrency ----------------------------------------------------------------------------
def test_a_thread_pool_shares_one_client_within_its_concurrency_bound(sim, make_client, account_body):
    client = make_client(max_concurrency=2)
    sim.faults.latency_s = 0.02
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda n: client.create("accounts", account_body(f"T{n}", extId=f"D1:T{n}")),
                            range(24)))
    assert len(set(ids)) == 24
    assert sim.call_count("POST", "login") == 1
    assert sim.max_in_flight <= 2
    assert client.stats.per_resource["accounts"] == 24


# --- secrets --------------------------------------------------------------------------------
def test_neither_private_key_nor_token_reaches_logs_errors_or_repr(sim, make_client, caplog, account_body):
    caplog.set_level(logging.DEBUG)
    client = make_client(max_retries=1)
    errors = []
    client.create("accounts", account_body("Log"))
    sim.expire_sessions()
    sim.faults.fail_next(503, resource="accounts")
    list(client.list("accounts"))
    for call in (lambda: client.create("accounts", {"name": "x"}),
                 lambda: client.get("accounts", 424242)):
        with pytest.raises(SsmRecordError) as caught:
            call()
        errors.append(caught.value)
    sim.faults.error_rate = 1.0
    with pytest.raises(SsmRetryableError) as caught:
        client.get("accounts", 1)
    errors.append(caught.value)
    sim.faults.error_rate = 0.0
    bad = make_client(private_key=sim.private_key + "-wrong")
    with pytest.raises(SsmAuthError) as caught:
        bad.get("accounts", 1)
    errors.append(caught.value)

    secrets = [sim.private_key, sim.private_key + "-wrong", *sim.issued_tokens()]
    assert len(sim.issued_tokens()) == 2
    texts = [caplog.text, repr(client), repr(bad), *(str(e) for e in errors),
             *(repr(e) for e in errors), *(e.detail or "" for e in errors)]
    for secret in secrets:
        assert all(secret not in text for text in texts)


def test_from_settings(sim):
    settings = SsmSettings(base_url=sim.base_url, public_key=sim.public_key,
                           private_key=SecretStr(sim.private_key), page_size=1000, max_concurrency=3)
    with SsmClient.from_settings(settings) as client:
        assert client.page_size == 500
        assert client.lookup_id("branches", "Siège") == sim.branch_id
        assert sim.private_key not in repr(client)


def test_custom_fields_come_from_the_extrafields_schema(sim, client):
    sim.add_custom_field("accounts", "Z_Potentiel", "number")
    assert "Z_Potentiel" in client.custom_fields("accounts")
    assert "Z_Potentiel" not in client.schema("accounts")["properties"]
    assert client.custom_fields("salesordersLines") == frozenset()      # not a resource with custom fields


def test_quote_writes_the_documented_double_quoted_literal_and_refuses_what_it_cannot_write():
    assert quote("L'Atelier d'Anne") == '"L\'Atelier d\'Anne"'
    with pytest.raises(ValueError):
        quote('Le "Diamant"')

"""Envelopes: deterministic ids, versioned JSON, batches under the Service Bus limit."""
from __future__ import annotations

import json

import pytest

from shared.envelope import (MAX_MESSAGE_BYTES, Envelope, EnvelopeBatch, EnvelopeKind, Op, content_hash, pack_batches)


def change(key: str, **record) -> Envelope:
    return Envelope.change(dossier="BIJOU", run_id="r1", entity="account", key=key, record=record or None)


def test_ids_depend_on_dossier_entity_key_and_content_only():
    a = change("C1", name="Bijou", city="Besançon")
    assert a.id == change("C1", city="Besançon", name="Bijou").id, "key order does not matter"
    assert Envelope.change(dossier="BIJOU", run_id="another run", entity="account", key="C1",
                           record={"name": "Bijou", "city": "Besançon"}).id == a.id
    assert a.id != change("C1", name="Bijou", city="Dole").id
    assert a.id != change("C2", name="Bijou", city="Besançon").id
    assert a.id != Envelope.change(dossier="ATELIER", run_id="r1", entity="account", key="C1",
                                   record={"name": "Bijou", "city": "Besançon"}).id
    assert change("C1").op is Op.DELETE and change("C1").id != a.id
    assert len(a.id) <= 128


def test_content_hash_is_stable_and_none_for_deletions():
    assert content_hash({"b": 1, "a": "é"}) == content_hash({"a": "é", "b": 1})
    assert content_hash(None) == ""


def test_run_markers_are_identified_by_their_run():
    start = Envelope.run_marker(dossier="BIJOU", run_id="r1", start=True, realignment=True)
    end = Envelope.run_marker(dossier="BIJOU", run_id="r1", start=False, counts={"read": 3})
    assert start.id != end.id and start.record == {"realignment": True} and end.counts == {"read": 3}
    assert Envelope.run_marker(dossier="BIJOU", run_id="r2", start=True).id != start.id


def test_batches_round_trip_and_stay_under_the_message_limit():
    envelopes = [change(f"C{i:05}", name="Bijouterie « Élégance » " * 8, n=i) for i in range(3000)]
    batches = list(pack_batches(envelopes))
    assert len(batches) > 1
    assert [e for b in batches for e in b.envelopes] == envelopes, "order and content kept"
    for batch in batches:
        body = batch.to_bytes()
        assert len(body) < MAX_MESSAGE_BYTES
        assert EnvelopeBatch.from_bytes(body) == batch
    assert len({b.message_id for b in batches}) == len(batches)


def test_one_envelope_too_large_to_send_is_refused_by_name():
    with pytest.raises(ValueError, match="account 'HUGE' is too large"):
        list(pack_batches([change("HUGE", notes="x" * MAX_MESSAGE_BYTES)]))


def test_batches_hold_one_dossier():
    other = Envelope.change(dossier="ATELIER", run_id="r1", entity="account", key="C1", record={"a": 1})
    with pytest.raises(ValueError, match="one dossier"):
        list(pack_batches([change("C1", a=1), other]))


@pytest.mark.parametrize("body, message", [
    (b'{"v": 4, "dossier": "BIJOU", "envelopes": []}', "unsupported envelope batch version"),
    (b'[1, 2]', "unsupported envelope batch version"),
    (json.dumps({"v": 1, "dossier": "BIJOU", "envelopes": [
        json.loads(Envelope.change(dossier="ATELIER", run_id="r", entity="account", key="C1",
                                   record={"a": 1}).to_json())]}).encode(), "carries envelopes of"),
])
def test_bodies_that_are_not_batches_are_refused(body, message):
    with pytest.raises(ValueError, match=message):
        EnvelopeBatch.from_bytes(body)


def test_invalid_rows_travel_with_their_error():
    envelope = Envelope.invalid(dossier="BIJOU", run_id="r1", entity="account", key="C9",
                                error="name: is required but empty in Sage", raw_hash="abc")
    again = EnvelopeBatch.from_bytes(EnvelopeBatch(dossier="BIJOU", envelopes=(envelope,)).to_bytes()).envelopes[0]
    assert again.op is Op.INVALID and again.error == envelope.error and again.record is None


def test_an_upsert_with_warnings_is_of_version_3_and_its_batch_too():
    warnings = [{"column": "CT_EMail", "field": "email", "reason": "email", "value": "a(at)b.fr"}]
    with pytest.raises(ValueError, match="schema version 1"):
        Envelope(kind=EnvelopeKind.CHANGE, dossier="BIJOU", run_id="r", entity="account", key="C1", op=Op.UPSERT,
                 hash="h", record={"a": 1}, warnings=warnings)
    envelope = Envelope(v=3, kind=EnvelopeKind.CHANGE, dossier="BIJOU", run_id="r", entity="account", key="C1",
                        op=Op.UPSERT, hash="h", record={"a": 1}, warnings=warnings)
    batch = EnvelopeBatch(dossier="BIJOU", envelopes=(envelope,))
    assert batch.v == 3 and EnvelopeBatch.from_bytes(batch.to_bytes()).envelopes[0].warnings == warnings

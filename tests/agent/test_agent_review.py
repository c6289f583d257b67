"""Review scenarios of the agent: records that must neither be lost, duplicated nor block a
dossier, on demo Sage 100 databases read through pyodbc (`Driver=SQLite3`) and the real
`LocalBus`; what reached the bus and the agent's state are asserted."""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

from agent import demo_builder as sage
from agent.odbc import sqlite_connection_string
from agent.relay import open_sage100, sync_dossier
from shared.envelope import MAX_MESSAGE_BYTES, Op
from shared.models import Entity

from agent_support import QUEUE, T0, minutes


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def test_a_record_with_thousands_of_problems_is_reported_and_the_dossier_goes_on(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    # A Sage version whose DL_Design is wider than SSM accepts: every line of the invoice is refused.
    piece = sage.insert_document(bijou, doc_type=6, tiers="RUBIS", at=T0 + minutes(5),
                                 lines=[{"AR_Ref": "BAAR01", "DL_Qte": 1, "DL_Design": "Bague gravée " + "x" * 70}
                                        for _ in range(4000)])
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Ville": "Besançon"}, at=T0 + minutes(5))
    sage.set_clock(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.ok, result.error
    [invalid] = delivered.changes(Op.INVALID)
    assert invalid.key == f"F:{piece}" and "dépasse les 69 caractères" in invalid.error
    assert len(invalid.to_json().encode("utf-8")) < MAX_MESSAGE_BYTES // 8
    assert "autre(s) problème(s)" in invalid.error
    assert delivered.keys(Op.UPSERT, "account") == {"ECRIN"}
    with agent.checkpoint() as checkpoint:
        assert checkpoint.pending("BIJOU") is None
        assert checkpoint.shadow_lookup("BIJOU", "invoice", [f"F:{piece}"])[f"F:{piece}"].invalid
    assert agent.run("BIJOU").ok and agent.drain("BIJOU").changes() == []


def test_an_overlap_shorter_than_a_minute_still_reads_a_change_stamped_to_the_minute(agent, bijou):
    """Sage versions whose cbModification is a smalldatetime stamp the nearest minute: a change
    made right after a run read the accounts can carry a time before that run's watermark."""
    overlap = seconds(15)
    agent.run("BIJOU", overlap=overlap)
    agent.drain("BIJOU")
    # 09:01:35: RUBIS saved (stamped 09:02); the run starting at 09:01:20 reads it.
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Ville": "Morteau"}, at=T0 + minutes(2))
    sage.set_clock(bijou, T0 + minutes(1) + seconds(20))
    first = agent.run("BIJOU", overlap=overlap)
    assert agent.drain("BIJOU").keys(Op.UPSERT, "account") == {"RUBIS"} and first.ok
    # 09:01:29, committed once that run had read the accounts: ECRIN saved, stamped 09:01.
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Ville": "Pontarlier"}, at=T0 + minutes(1))
    sage.set_clock(bijou, T0 + minutes(10))

    second = agent.run("BIJOU", overlap=overlap)
    delivered = agent.drain("BIJOU")

    assert second.ok and not second.realignment
    assert [(e.key, e.record["city"]) for e in delivered.changes()] == [("ECRIN", "Pontarlier")]


class ChangingBetweenScans:
    """The real reader; a Sage user saves `change()` right after the contacts' keys were read."""

    def __init__(self, reader, change):
        self.reader, self.change = reader, change

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def keys(self, entity, spans=None):
        yield from self.reader.keys(entity, spans)
        if Entity(entity) is Entity.CONTACT:
            self.change()


def test_contacts_saved_between_the_key_scan_and_the_change_scan_are_neither_lost_nor_deleted(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    sage.set_clock(bijou, T0 + minutes(10))

    def change():
        sage.insert_row(bijou, "F_CONTACTT", {"CT_Num": "RUBIS", "CT_No": 7000, "CT_Nom": "ENTRE-DEUX"},
                        at=T0 + minutes(10))
        assert sage.delete_row(bijou, "F_CONTACTT", {"CT_No": 3}, at=T0 + minutes(10)) == 1

    real = open_sage100(sqlite_connection_string(bijou))

    @contextmanager
    def source():
        with real() as (connection, reader):
            yield connection, ChangingBetweenScans(reader, change)

    with agent.checkpoint() as checkpoint:
        during = sync_dossier("BIJOU", checkpoint=checkpoint, bus=agent.bus, queue=QUEUE, open_source=source)
    first = agent.drain("BIJOU")
    after = agent.run("BIJOU")
    second = agent.drain("BIJOU")

    assert during.ok and after.ok and not after.realignment
    assert [(e.op, e.key) for e in first.changes()] == [(Op.UPSERT, "7000")]
    assert [(e.op, e.key) for e in second.changes()] == [(Op.DELETE, "3")]
    with agent.checkpoint() as checkpoint:
        assert set(checkpoint.shadow_lookup("BIJOU", "contact", ["3", "7000"])) == {"7000"}

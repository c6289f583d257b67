"""The pure parts of the core: the 3-way merge, the dependency plan, the binder's race."""
from __future__ import annotations

import pytest

from shared.envelope import Envelope
from shared.sync.binder import Binder, BindingRaceError
from shared.sync.dependencies import plan
from shared.sync.merge import diff, merge, realign, same

BASE = {"name": "Saphir", "phone": "01", "city": "Lyon", "salesRepId1": 10, "typeId": 2}


def test_merge_sends_sage_changes_leaves_ssm_changes_and_lets_sage_win_conflicts():
    sage = {**BASE, "name": "Saphir & Fils", "city": "Bron"}
    ssm = {**BASE, "name": "Saphir SSM", "phone": "02"}

    result = merge(sage, ssm, BASE)

    assert result.to_ssm == {"name": "Saphir & Fils", "city": "Bron"}
    assert [(c.field, c.winner) for c in result.conflicts] == [("name", "sage")]
    assert result.changed_in_ssm == ["phone"]
    assert result.base["phone"] == "01"          # still SSM's own change for the next merge


def test_merge_keeps_the_owner_changed_in_ssm_and_undoes_a_conversion_made_there():
    sage = {**BASE, "salesRepId1": 11}
    ssm = {**BASE, "salesRepId1": 12, "typeId": 1}

    result = merge(sage, ssm, BASE, ssm_keeps=frozenset({"salesRepId1"}), sage_only=frozenset({"typeId"}))

    assert result.to_ssm == {"typeId": 2}
    assert [(c.field, c.winner) for c in result.conflicts] == [("salesRepId1", "ssm")]
    assert [r.field for r in result.refused] == ["typeId"]


def test_an_echo_is_no_change():
    assert merge(dict(BASE), dict(BASE), BASE).to_ssm == {}
    both = {**BASE, "city": "Bron"}
    result = merge(both, both, BASE)
    assert result.to_ssm == {} and result.conflicts == [] and result.base["city"] == "Bron"


def test_values_compare_as_ssm_returns_them():
    assert same({"id": 4, "value": "Client"}, 4)
    assert same(1249.9, "1249.90") is False and same(1249.9, 1249.90)
    from decimal import Decimal
    assert same(Decimal("14.0"), 14) and same("", None) and not same(True, 1)


def test_diff_and_realign():
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3}).to_ssm == {"b": 2}
    assert diff({"a": 1}, {"a": 1, "Z_tarif_2": 5}, names=["a", "Z_tarif_2"]).to_ssm == {"Z_tarif_2": None}
    result = realign({"a": 1, "owner": 5}, {"a": 2, "owner": 9}, None, ssm_keeps=frozenset({"owner"}))
    assert result.to_ssm == {"a": 1} and result.changed_in_ssm == ["owner"]


def _change(entity, key, n):
    return Envelope.change(dossier="D", run_id="r", entity=entity, key=key, record={"n": n})


def test_the_plan_orders_entities_by_dependency_and_keeps_the_newest_envelope_per_key():
    envelopes = [_change("contact", "1", 1), _change("invoice", "6:F", 1), _change("account", "A", 1),
                 _change("contact", "1", 2), _change("user", "U", 1)]

    waves, superseded = plan(envelopes)

    assert [w.entity for w in waves] == ["user", "account", "contact", "invoice"]
    assert [e.record["n"] for e in waves[2].envelopes] == [2]
    assert [e.record["n"] for e in superseded] == [1]


def test_losing_a_binding_race_is_a_retry_naming_the_orphan(store):
    winner = Binder(store, "D", "account")
    winner.bind("C1", 100, base={})
    with pytest.raises(BindingRaceError) as raised:
        Binder(store, "D", "account").bind("C1", 200, base={})
    assert raised.value.orphan_id == 200
    assert store.get_link("D", "account", "C1").ssm_id == 100

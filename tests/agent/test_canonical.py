"""The agent's fast canonical forms agree with the shared definitions on every demo record and on
every kind of invalid value: same JSON text and hash as `shared.envelope`, same record as
pydantic's `model_dump(mode="json")`, and for an invalid record the same pydantic error."""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from pydantic import ValidationError

from agent import canonical
from agent.canonical import CanonicalForm
from agent.demo_builder import build_demo_dossier
from agent.sage100 import reader as reader_module
from agent.sage100.reader import Sage100Reader
from shared import envelope
from shared.models import MODEL_BY_ENTITY, Entity, describe_validation_error, parse_record


class RecordingForm(CanonicalForm):
    """The reader's canonical form, keeping the mapped data it is given."""

    seen: dict[Entity, list[dict]] = {}

    def record(self, data):
        RecordingForm.seen.setdefault(self.entity, []).append(data)
        return super().record(data)


@pytest.fixture(scope="module")
def mapped_data(tmp_path_factory) -> dict[Entity, list[dict]]:
    """The data the reader maps from a demo dossier with bad rows, per entity."""
    path = tmp_path_factory.mktemp("canonical") / "BIJOU.db"
    build_demo_dossier(path, size="small", seed=5, bad_rows=True)
    from agent.odbc import connect, sqlite_connection_string

    connection = connect(sqlite_connection_string(path))
    patch = pytest.MonkeyPatch()
    patch.setattr(reader_module, "CanonicalForm", RecordingForm)
    RecordingForm.seen = {}
    try:
        reader = Sage100Reader(connection)
        for entity in reader.entities():
            assert list(reader.changed(entity, None))
    finally:
        patch.undo()
        connection.close()
    return RecordingForm.seen


def outcome(function, *args):
    """('ok', canonical JSON), ('error', readable sentence) or what else a canonical form raises."""
    try:
        return "ok", envelope.canonical_json(function(*args))
    except ValidationError as exc:
        return "error", describe_validation_error(exc, entity="record", key="k")
    except Exception as exc:
        return type(exc).__name__, str(exc)


def pydantic_form(entity: Entity, data: dict) -> dict:
    return parse_record(entity, data).model_dump(mode="json")


def test_every_entity_has_a_fast_form():
    assert all(CanonicalForm(entity).fast for entity in Entity)


def test_the_fast_form_is_pydantics_on_every_demo_record(mapped_data):
    assert set(mapped_data) == set(Entity)
    for entity, records in mapped_data.items():
        fast = CanonicalForm(entity, verify_every=0)
        for data in records:
            assert outcome(fast.record, data) == outcome(pydantic_form, entity, data), (entity, data.get("key"))
        assert fast.fast, entity


ODD_VALUES = [
    None, "", " ", " padded ", "x", "x" * 13, "x" * 18, "x" * 36, "x" * 70, "é" * 20, "a\x1fb", "\x1fab",
    "\u00a0x", "x\u2028", "x\ud800", "a@b.fr", "not-an-email", "a b@c.fr", ("x" * 60) + "@exemple.fr", 0, 1, -1,
    2 ** 63, True, False, 1.5, float("nan"), Decimal("1.500000"), Decimal("0E-6"), Decimal("-0.000000"),
    Decimal("1E+2"), Decimal("NaN"), Decimal("Infinity"), "1.5", dt.date(2024, 2, 29),
    dt.datetime(2024, 2, 29, 10, 0), dt.datetime(2024, 2, 29), "2024-02-29", "client", "prospect",
    "quote", Entity.QUOTE, Entity.USER, [], (), {}, b"bytes",
]


def variants(data: dict, fields) -> list[dict]:
    """`data` with each field in turn set to each odd value, removed, or joined by an unknown field."""
    out = [{**data, "unknown_field": 1}]
    for name in fields:
        out.append({key: value for key, value in data.items() if key != name})
        out += [{**data, name: value} for value in ODD_VALUES]
    return out


def test_odd_values_get_pydantics_record_or_pydantics_error(mapped_data):
    checked = 0
    for entity, records in mapped_data.items():
        model = MODEL_BY_ENTITY[entity]
        samples = records[:2] + [data for data in records if data.get("lines") or data.get("tariffs")][:2]
        for data in samples:
            cases = variants(data, [name for name in model.model_fields if name != "entity"])
            for child in ("lines", "tariffs"):
                if data.get(child):
                    first, *rest = data[child]
                    cases += [{**data, child: [item, *rest]} for item in variants(first, first)]
                    cases.append({**data, child: [first, first, *rest]})
                    cases.append({**data, child: [None, *rest]})
            for case in cases:
                form = CanonicalForm(entity, verify_every=0)
                assert outcome(form.record, case) == outcome(pydantic_form, entity, case), (entity, case)
                checked += 1
    assert checked > 2000


def test_a_fast_form_that_disagrees_with_pydantic_hands_over_to_pydantic(mapped_data, caplog):
    entity = Entity.ACCOUNT
    data = mapped_data[entity][0]
    form = CanonicalForm(entity)
    form._fast = lambda data: {**pydantic_form(entity, {key: value for key, value in data.items()
                                                        if key != "entity"}), "name": "wrong"}
    assert form.record(data) == pydantic_form(entity, data)
    assert not form.fast and "differs from pydantic's" in caplog.text
    assert form.record(data) == pydantic_form(entity, data)


def test_a_record_pydantic_refuses_is_refused_even_if_the_fast_form_accepted_it(mapped_data, caplog):
    entity = Entity.PRODUCT_FAMILY
    form = CanonicalForm(entity)
    form._fast = lambda data: {"entity": entity.value, "key": data["key"], "name": data["name"]}
    with pytest.raises(ValidationError):
        form.record({"key": "BAGUES", "name": "x" * 70})
    assert not form.fast and "differs from pydantic's" in caplog.text


def test_canonical_json_and_hash_are_the_shared_ones(mapped_data):
    values = [{"é": "L’Écrin «Cœur» \"quoted\" \\ \n\t\x00", "b": [1, 2.5, None, True], "a": Decimal("1.50"),
               "d": dt.date(2024, 1, 2), "t": dt.datetime(2024, 1, 2, 3, 4, 5, 6), "e": Entity.QUOTE,
               "s": frozenset({"b", "a"}), "n": {"z": 1, "y": {"x": []}}},
              {"big": 2 ** 70, "small": -0.0, "float": 1e16, "tiny": 5e-324}]
    values += [data for records in mapped_data.values() for data in records]
    for value in values:
        assert canonical.canonical_json(value) == envelope.canonical_json(value)
        assert canonical.content_hash(value) == envelope.content_hash(value)
    assert canonical.content_hash(None) == envelope.content_hash(None) == ""
    with pytest.raises(TypeError):
        canonical.canonical_json({"x": object()})


def test_the_reader_records_are_pydantics(tmp_path):
    """End to end: each record the reader yields is exactly pydantic's form of it."""
    path = tmp_path / "BIJOU.db"
    build_demo_dossier(path, size="tiny", bad_rows=True)
    from agent.odbc import connect, sqlite_connection_string

    connection = connect(sqlite_connection_string(path))
    try:
        reader = Sage100Reader(connection)
        for entity in reader.entities():
            for row in itertools.islice(reader.changed(entity, None), 50):
                if row.record is not None:
                    assert parse_record(entity, row.record).model_dump(mode="json") == row.record
    finally:
        connection.close()

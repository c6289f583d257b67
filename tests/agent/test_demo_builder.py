"""The demo Sage 100 dossier: deterministic, realistic, consistent, and changeable like Sage."""
from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from agent import demo_builder as sage
from agent.demo_builder import SIZES, build_demo_dossier
from agent.normalize import decimal
from agent.sage100.schema import TABLE_NAMES

T = dt.datetime(2025, 6, 2, 9, 0)


def digest(connection) -> str:
    """A hash of every Sage table's content, read through pyodbc."""
    sha = hashlib.sha256()
    cursor = connection.cursor()
    for table in TABLE_NAMES:
        cursor.execute(f"SELECT * FROM {table} ORDER BY cbMarq")
        while rows := cursor.fetchmany(1000):
            for row in rows:
                sha.update(repr((table, tuple(row))).encode("utf-8"))
    cursor.close()
    connection.rollback()
    return sha.hexdigest()


def rows(connection, query: str, *parameters) -> list:
    cursor = connection.cursor()
    try:
        return cursor.execute(query, *parameters).fetchall()
    finally:
        cursor.close()
        connection.rollback()


def value(connection, query: str, *parameters):
    return rows(connection, query, *parameters)[0][0]


def test_same_seed_same_content_other_seed_other_content(tmp_path, open_sage):
    first = build_demo_dossier(tmp_path / "a.db", size="small", seed=7)
    second = build_demo_dossier(tmp_path / "b.db", size="small", seed=7)
    other = build_demo_dossier(tmp_path / "c.db", size="small", seed=8)
    assert first.counts == second.counts
    assert digest(open_sage(first.path)) == digest(open_sage(second.path))
    assert digest(open_sage(first.path)) != digest(open_sage(other.path))


def test_tiny_and_small_sizes(tmp_path):
    tiny = build_demo_dossier(tmp_path / "tiny.db")
    assert tiny.counts["F_COMPTET"] == 20 and tiny.counts["F_COLLABORATEUR"] == 5
    assert tiny.counts["F_DOCENTETE"] == 24 and tiny.counts["F_DOCLIGNE"] > 24
    with_bad = build_demo_dossier(tmp_path / "bad.db", bad_rows=True)
    assert with_bad.counts["F_COMPTET"] == 22 and with_bad.counts["F_CONTACTT"] == tiny.counts["F_CONTACTT"] + 2
    small = build_demo_dossier(tmp_path / "small.db", size="small")
    assert small.counts["F_COMPTET"] == 500 and small.counts["F_DOCENTETE"] == 1500
    assert small.counts["F_ARTICLE"] == 200 and small.counts["F_DOCLIGNE"] > 3 * 1500
    with pytest.raises(ValueError, match="unknown demo size"):
        build_demo_dossier(tmp_path / "x.db", size="huge")


@pytest.mark.slow
def test_medium_size(tmp_path):
    medium = build_demo_dossier(tmp_path / "medium.db", size="medium")
    assert medium.counts["F_COMPTET"] == 10_000 and medium.counts["F_DOCLIGNE"] >= 100_000


def test_large_size_is_declared_for_a_million_lines():
    large = SIZES["large"]
    assert large.tiers >= 100_000
    assert large.documents * (1 + large.max_lines) / 2 >= 1_000_000


def test_the_company_looks_like_a_french_jeweller(tmp_path, open_sage):
    stats = build_demo_dossier(tmp_path / "BIJOU.db", size="small")
    connection = open_sage(stats.path)
    texts = []
    for table in TABLE_NAMES:
        for row in rows(connection, f"SELECT * FROM {table}"):
            texts += [item for item in row if isinstance(item, str)]
    joined = "\n".join(texts)
    joined.encode("cp1252")  # everything fits the code page of a French SQL Server
    for character in ("€", "œ", "Œ", "’", "«", "»", "–", "é", "è", "ç", "ô", "ë", "‰"):
        assert character in joined, character
    assert value(connection, "SELECT COUNT(*) FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 1") > 0
    assert value(connection, "SELECT COUNT(*) FROM F_COMPTET WHERE CT_Type = 0 AND CT_Sommeil = 1") > 0
    assert value(connection, "SELECT COUNT(*) FROM F_COMPTET WHERE CT_Type = 1") > 0
    assert value(connection, "SELECT COUNT(*) FROM F_FAMILLE WHERE FA_Type <> 0") == 2
    assert value(connection, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_DateLivr = ?", dt.datetime(1753, 1, 1)) == 1500
    assert value(connection, "SELECT COUNT(*) FROM F_COMPTET WHERE CT_DateCreate = ?", dt.datetime(1753, 1, 1)) > 0
    assert value(connection, "SELECT COUNT(*) FROM F_ARTSTOCK WHERE AS_QteSto > 0") > 0
    assert value(connection, "SELECT COUNT(*) FROM F_ARTCLIENT WHERE AC_Categorie = 0 AND CT_Num IS NOT NULL") > 0
    assert value(connection, "SELECT COUNT(*) FROM F_TARIFQTE") > 0
    assert value(connection, "SELECT D_RaisonSoc FROM P_DOSSIER") == "BIJOU SA"


def test_document_totals_match_their_lines(tmp_path, open_sage):
    stats = build_demo_dossier(tmp_path / "BIJOU.db", size="small", seed=5)
    connection = open_sage(stats.path)
    lines: dict[tuple, list] = {}
    for domain, doc_type, piece, ht, ttc in rows(connection, "SELECT DO_Domaine, DO_Type, DO_Piece, DL_MontantHT,"
                                                             " DL_MontantTTC FROM F_DOCLIGNE"):
        lines.setdefault((domain, doc_type, piece), []).append((decimal(ht), decimal(ttc)))
    headers = rows(connection, "SELECT DO_Domaine, DO_Type, DO_Piece, DO_TotalHT, DO_TotalTTC, DO_NetAPayer FROM F_DOCENTETE")
    assert len(headers) == 1500 and set(lines) == {tuple(header[:3]) for header in headers}
    for domain, doc_type, piece, total_ht, total_ttc, net in headers:
        mine = lines[(domain, doc_type, piece)]
        assert decimal(total_ht) == sum((ht for ht, _ in mine), Decimal(0))
        assert decimal(total_ttc) == sum((ttc for _, ttc in mine), Decimal(0)) == decimal(net)
    numbering = dict(((d, t), p) for d, t, p in rows(connection, "SELECT DC_Domaine, DC_IdCol, DC_Piece FROM F_DOCCURRENTPIECE"))
    taken = {piece for _, doc_type, piece, *_ in headers if doc_type in (6, 7)}
    assert numbering[(0, 6)] == numbering[(0, 7)] and numbering[(0, 6)] not in taken


def test_helpers_act_like_a_sage_user(dossier, open_sage):
    connection = open_sage(dossier)
    sage.set_clock(dossier, T)
    assert sage.update_row(dossier, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Ville": "Versailles"}) == 1
    assert value(connection, "SELECT cbModification FROM F_COMPTET WHERE CT_Num = 'ECRIN'") == T
    later = T + dt.timedelta(minutes=5)
    assert sage.touch_rows(dossier, "F_ARTICLE", {"AR_Ref": "BAAR01"}, at=later) == 1
    assert value(connection, "SELECT cbModification FROM F_ARTICLE WHERE AR_Ref = 'BAAR01'") == later
    assert value(connection, "SELECT ES_Clock FROM EMU_SERVER") == T  # `at` leaves the clock as it was
    marq = sage.insert_row(dossier, "F_CONTACTT", {"CT_Num": "ECRIN", "CT_No": 500, "CT_Nom": "Roussel"})
    created = rows(connection, "SELECT cbMarq, cbModification, cbCreation FROM F_CONTACTT WHERE CT_No = 500")[0]
    assert tuple(created) == (marq, T, T)
    assert sage.delete_row(dossier, "F_CONTACTT", {"CT_No": 500}) == 1
    sage.set_clock(dossier, None)
    sage.touch_rows(dossier, "F_FAMILLE", {"FA_CodeFamille": "BAGUES"})
    assert value(connection, "SELECT cbModification FROM F_FAMILLE WHERE FA_CodeFamille = 'BAGUES'") > T


def test_deleting_a_stock_row_resaves_the_article(dossier, open_sage):
    connection = open_sage(dossier)
    sage.delete_row(dossier, "F_ARTSTOCK", {"AR_Ref": "BRAR10", "DE_No": 1}, at=T)
    assert value(connection, "SELECT cbModification FROM F_ARTICLE WHERE AR_Ref = 'BRAR10'") == T
    assert value(connection, "SELECT COUNT(*) FROM F_ARTSTOCK WHERE AR_Ref = 'BRAR10' AND DE_No = 1") == 0


def test_documents_entered_and_transformed_like_sage(dossier, open_sage):
    connection = open_sage(dossier)
    next_quote = value(connection, "SELECT DC_Piece FROM F_DOCCURRENTPIECE WHERE DC_Domaine = 0 AND DC_IdCol = 0")
    piece = sage.insert_document(dossier, doc_type=0, tiers="LEFEVRE", at=T,
                                 lines=[{"AR_Ref": "BAAR01", "DL_Qte": 3}, {"AR_Ref": "GOAR01", "DL_Qte": 1}])
    assert piece == next_quote
    header = rows(connection, "SELECT DO_TotalHT, DO_TotalTTC, cbModification FROM F_DOCENTETE WHERE DO_Type = 0"
                              " AND DO_Piece = ?", piece)[0]
    assert decimal(header[0]) == Decimal("344.70") and decimal(header[1]) == Decimal("413.64") and header[2] == T
    line_ids = [row[0] for row in rows(connection, "SELECT DL_No FROM F_DOCLIGNE WHERE DO_Piece = ? ORDER BY DL_Ligne", piece)]
    order = sage.transform_document(dossier, doc_type=0, piece=piece, to_type=1, at=T)
    assert value(connection, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_Type = 0 AND DO_Piece = ?", piece) == 0
    moved = rows(connection, "SELECT DL_No, DL_PieceDE, DO_Type FROM F_DOCLIGNE WHERE DO_Piece = ? ORDER BY DL_Ligne", order)
    assert [row[0] for row in moved] == line_ids and {(row[1], row[2]) for row in moved} == {(piece, 1)}
    assert decimal(value(connection, "SELECT DO_TotalHT FROM F_DOCENTETE WHERE DO_Type = 1 AND DO_Piece = ?", order)) \
        == Decimal("344.70")


def test_refuses_to_replace_a_file_that_is_not_sqlite(tmp_path):
    precious = tmp_path / "compta.db"
    precious.write_text("not a database")
    with pytest.raises(FileExistsError):
        build_demo_dossier(precious)
    assert precious.read_text() == "not a database"

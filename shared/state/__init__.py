"""Per-dossier state: links, cursors, runs, journal, incidents, dossiers.

`protocol.TableStore` is the small key/value-table contract both backends implement (SQLite, the
embedded default, and Azure Table Storage); `repository.StateStore` gives the typed records of
`records` on top of any of them.
"""

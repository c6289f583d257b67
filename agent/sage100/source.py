"""The Sage 100 entry of the source registry (`agent.sources`): how a Sage 100 dossier is opened
for reading (ODBC, `Sage100Reader`, shared full reads) and for writing the cloud's commands
(`Sage100Writer`, quotes priced by `quote_pricing`), and where the run's signpost comes from
(the SQL Server clock)."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from agent.detection import server_now


def open_sage100(odbc_connection_string: str, *, batch_rows: int = 1000, read_workers: int = 1,
                 delivery_addresses: bool = True):
    """A source opener for a Sage 100 database reached through ODBC; with `read_workers` above 1,
    full reads of large tables are shared among that many reader processes
    (`agent.sage100.parallel`). Without `delivery_addresses`, `F_LIVRAISON` is not read."""
    @contextlib.contextmanager
    def opener() -> Iterator[tuple[object, object]]:
        from agent.odbc import connect
        from agent.sage100.parallel import ParallelReader
        from agent.sage100.reader import Sage100Reader
        from agent.sage100.spec import sage100_spec

        connection = connect(odbc_connection_string)
        try:
            spec = sage100_spec(delivery_addresses=delivery_addresses)
            with ParallelReader(Sage100Reader(connection, batch_rows=batch_rows, spec=spec), odbc_connection_string,
                                workers=read_workers, batch_rows=batch_rows) as reader:
                yield connection, reader
        finally:
            try:
                connection.rollback()
            finally:
                connection.close()
    return opener


def open_dossier(settings, dossier: str):
    """The opener of one configured (or server-listed) Sage 100 dossier."""
    from agent.catalog import connection_string_for

    configured = next((d for d in settings.dossiers if d.id == dossier), None)
    return open_sage100(connection_string_for(settings, dossier), batch_rows=settings.agent.batch_rows,
                        read_workers=min(settings.agent.read_workers, os.cpu_count() or 1),
                        delivery_addresses=configured.syncs_delivery_addresses if configured else True)


class CommandWriter:
    """The writer `agent.commands` drives: `Sage100Writer` on the dossier's writing connection."""

    def __init__(self, connection, prospect_prefix: str, stock_depot: str = "all"):
        from agent.sage100.writer import Sage100Writer

        self.connection = connection
        self.stock_depot = stock_depot
        self.writer = Sage100Writer(connection, prospect_prefix=prospect_prefix)

    def apply(self, command_id, op, record, command=None):
        return self.writer.apply(command_id, op, record)

    def price(self, record):
        from agent.sage100.quote_pricing import price_command

        return price_command(self.connection, record, stock_depot=self.stock_depot)

    def close(self) -> None:
        self.connection.close()


def open_writer(settings, dossier: str):
    """A function opening the dossier's command writer (the `odbc_writer` login, else the reader's)."""
    from agent.catalog import writer_connection_string_for
    from agent.odbc import connect

    configured = next((d for d in settings.dossiers if d.id == dossier), None)
    prefix = configured.prospect_prefix if configured else "SSM"
    depot = configured.stock_depot if configured else "all"
    return lambda: CommandWriter(connect(writer_connection_string_for(settings, dossier)), prefix, depot)


def before_run(settings, bus, dossier: str) -> None:
    """Nothing to confirm before a Sage 100 run: its writes answer at once."""


def signpost_clock(connection):
    """The SQL Server's clock (the SQLite stand-in's), as `cbModification` is written."""
    return server_now(connection)

"""The on-premise agent: reads each Sage company database, detects what changed and relays it.

It runs beside Sage, opens only outbound connections, and imports nothing but `shared` from
the rest of the connector. Sage access goes through ODBC (`agent.odbc`); each Sage product has
its source adapter declared as data (`agent.sage100`).
"""
